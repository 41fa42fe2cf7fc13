//! `deploykit secrets check`: the seeds' pre-deploy checklist as a command — no
//! default or placeholder values, minimum lengths (32 for JWT secrets, 15 for
//! database and cache passwords). Values are never printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::SecretsCheckArgs;
use crate::config::{self, ConfigError, SecretsConfig};
use crate::exit;
use crate::render::Mode;

/// Values that mean "nobody set this".
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "change_me",
    "change-me",
    "password",
    "secret",
    "example",
    "default",
    "placeholder",
    "todo",
    "xxx",
    "123456",
    "admin",
    "test",
    "your_secret_here",
    "replace_me",
    "postgres",
];

/// One broken rule, naming the key, never the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The variable.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// Built-in minimum length for a key, from the seeds' rules.
pub fn builtin_min_length(key: &str) -> Option<usize> {
    let k = key.to_ascii_uppercase();
    if k.contains("JWT") && (k.contains("SECRET") || k.contains("KEY")) {
        Some(32)
    } else if k.contains("PASSWORD") {
        Some(15)
    } else {
        None
    }
}

fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["SECRET", "PASSWORD", "TOKEN", "KEY", "PASS"]
        .iter()
        .any(|w| k.contains(w))
}

fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    PLACEHOLDERS.contains(&v.as_str())
        || (v.starts_with('<') && v.ends_with('>'))
        || v.starts_with("your-")
        || v.starts_with("your_")
        || v.contains("changeme")
        || v.contains("change_me")
        || (v.len() >= 4 && v.chars().all(|c| c == v.chars().next().unwrap_or('x')))
}

/// Checks `values` against the rules.
pub fn check(values: &BTreeMap<String, String>, rules: &SecretsConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    for key in &rules.required {
        if values.get(key).is_none_or(|v| v.trim().is_empty()) {
            findings.push(Finding {
                key: key.clone(),
                problem: "is required and missing or empty".into(),
            });
        }
    }
    for (key, value) in values {
        if !is_sensitive(key) && !rules.min_length.contains_key(key) {
            continue;
        }
        if value.trim().is_empty() {
            if !rules.required.contains(key) {
                findings.push(Finding {
                    key: key.clone(),
                    problem: "is empty".into(),
                });
            }
            continue;
        }
        if is_placeholder(value) {
            findings.push(Finding {
                key: key.clone(),
                problem: "holds a default or placeholder value".into(),
            });
            continue;
        }
        let min = rules
            .min_length
            .get(key)
            .copied()
            .or_else(|| builtin_min_length(key));
        if let Some(min) = min {
            let len = value.chars().count();
            if len < min {
                findings.push(Finding {
                    key: key.clone(),
                    problem: format!("is {len} characters; at least {min} required"),
                });
            }
        }
    }
    findings
}

/// Runs the check; exit 1 if any rule is broken.
pub fn run(config_path: &Path, args: &SecretsCheckArgs, mode: Mode) -> Result<u8> {
    let (rules, file): (SecretsConfig, Option<PathBuf>) = match &args.env {
        Some(env) => {
            let loaded = config::load(config_path)?;
            let rules = loaded.env(env)?.secrets.clone();
            let file = rules.env_file.as_ref().map(|f| loaded.resolve(f));
            (rules, file)
        }
        None => (SecretsConfig::default(), None),
    };
    let file = args.file.clone().or(file).ok_or_else(|| {
        ConfigError("say which file to check: --file PATH, or --env with [secrets] env_file".into())
    })?;
    let environment: BTreeMap<String, String> = std::env::vars().collect();
    let values: BTreeMap<String, String> = config::dotenv::read(&file, &environment)
        .map_err(|e| ConfigError(e.to_string()))?
        .into_iter()
        .collect();
    let findings = check(&values, &rules);
    if mode == Mode::Json {
        crate::render::json::print_event(
            serde_json::json!({"event": "secrets", "file": file, "ok": findings.is_empty(), "findings": findings}),
        );
    } else if findings.is_empty() {
        println!(
            "{}: {} variable(s) checked, no problems",
            file.display(),
            values.len()
        );
    } else {
        println!("{}: {} problem(s):", file.display(), findings.len());
        for f in &findings {
            println!("  {} {}", f.key, f.problem);
        }
    }
    Ok(if findings.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn seeds_rules_for_lengths_and_placeholders() {
        let v = vals(&[
            ("JWT_SECRET", "a".repeat(10).as_str()),
            ("POSTGRES_PASSWORD", "short-pw"),
            ("REDIS_PASSWORD", "changeme"),
            ("APP_NAME", "x"),
            ("OK_TOKEN", "a-long-enough-random-token-value-123"),
        ]);
        let f = check(&v, &SecretsConfig::default());
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["JWT_SECRET", "POSTGRES_PASSWORD", "REDIS_PASSWORD"]
        );
        assert!(f[1].problem.contains("at least 15"));
        assert!(
            f.iter().all(|f| !f.problem.contains("short-pw")),
            "values are never printed"
        );
    }

    #[test]
    fn required_and_custom_minimums() {
        let rules = SecretsConfig {
            env_file: None,
            required: vec!["STRIPE_KEY".into()],
            min_length: BTreeMap::from([("API_KEY".to_string(), 20)]),
        };
        let f = check(&vals(&[("API_KEY", "abcdefghijk-12345")]), &rules);
        assert_eq!(f.len(), 2);
        assert!(f.iter().any(|x| x.key == "STRIPE_KEY"));
        assert!(f
            .iter()
            .any(|x| x.key == "API_KEY" && x.problem.contains("at least 20")));
    }
}
