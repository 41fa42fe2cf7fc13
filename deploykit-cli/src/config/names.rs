//! Names from the config that become path segments: the environment (journal,
//! lock and backup file names), the PM2 app, the Compose project and services.
//!
//! They are checked when the file loads, so a name like `../x` is a config error
//! naming its key before anything runs, rather than a refusal half-way through a
//! deploy after a release was staged and a journal written outside `journal/`.
//! Adapters keep their own, stricter checks (Compose wants lowercase); this is the
//! floor every such name must pass.

use deploykit_core::release::validate_name;

use super::{BackupConfig, Config, MigrationsConfig, TargetConfig};

/// Longest environment name: it is part of run ids, file names and labels.
const MAX_ENV: usize = 64;
/// Longest app, project or service name.
const MAX_NAME: usize = 63;

/// A TOML key as it must be written: bare when it can be, quoted otherwise, so a
/// key path like `environments."prod.eu".database.url` names one key unambiguously.
pub fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// Every name in `config` that becomes a path segment, checked; the error names the
/// key holding the first bad one.
pub fn check(config: &Config) -> Result<(), String> {
    for (env, e) in &config.environments {
        let at = format!("environments.{}", key_segment(env));
        segment(&at, "environment name", env, MAX_ENV)?;
        match &e.target {
            Some(TargetConfig::Pm2(p)) => {
                let key = match (p.app.is_empty(), p.apps.is_empty()) {
                    (false, false) => {
                        return Err(format!(
                            "{at}.target: set either `app` (one app) or `apps` (several), not both"
                        ))
                    }
                    (true, true) => {
                        return Err(format!(
                            "{at}.target: set `app = \"<name>\"` or `apps = [\"web\", \"worker\"]` (the PM2 app names in the ecosystem file)"
                        ))
                    }
                    (false, true) => "app",
                    (true, false) => "apps",
                };
                for name in p.app_names() {
                    segment(
                        &format!("{at}.target.{key}"),
                        "pm2 app name",
                        &name,
                        MAX_NAME,
                    )?;
                }
            }
            Some(TargetConfig::Compose(c)) => {
                segment(
                    &format!("{at}.target.project"),
                    "compose project name",
                    &c.project,
                    MAX_NAME,
                )?;
                c.check_services(&format!("{at}.target"))?;
                let key = if c.services.is_some() {
                    "services"
                } else {
                    "service"
                };
                for service in c.service_names() {
                    segment(
                        &format!("{at}.target.{key}"),
                        "compose service name",
                        service,
                        MAX_NAME,
                    )?;
                }
            }
            Some(TargetConfig::Local { .. }) | None => {}
        }
        if let Some(BackupConfig::ComposeExec { service, .. }) = &e.backup {
            segment(
                &format!("{at}.backup.service"),
                "compose service name",
                service,
                MAX_NAME,
            )?;
        }
        if let Some(MigrationsConfig::ComposeRun {
            service: Some(service),
            ..
        }) = &e.migrations
        {
            segment(
                &format!("{at}.migrations.service"),
                "compose service name",
                service,
                MAX_NAME,
            )?;
        }
    }
    Ok(())
}

fn segment(key: &str, what: &'static str, value: &str, max: usize) -> Result<(), String> {
    validate_name(what, value, max).map_err(|e| {
        format!("{key}: {e}; it becomes a file or directory name, so rename it (nothing was run)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm2(lines: &str) -> Result<(), String> {
        let text = format!(
            "[environments.s.target]\nkind = \"pm2\"\nhosts = [\"local\"]\ndeploy_to = \"/srv/a\"\nrepo = \"r\"\n{lines}"
        );
        check(&toml::from_str(&text).unwrap())
    }

    #[test]
    fn exactly_one_of_app_and_apps_names_the_apps() {
        assert!(pm2("app = \"web\"\n").is_ok());
        assert!(pm2("apps = [\"web\", \"worker\"]\n").is_ok());
        let both = pm2("app = \"web\"\napps = [\"web\", \"worker\"]\n").unwrap_err();
        assert!(both.contains("not both"), "{both}");
        let none = pm2("").unwrap_err();
        assert!(none.contains("apps = ["), "{none}");
        let bad = pm2("apps = [\"web\", \"../w\"]\n").unwrap_err();
        assert!(bad.contains("environments.s.target.apps"), "{bad}");
    }

    #[test]
    fn keys_that_need_quotes_get_them() {
        assert_eq!(key_segment("prod"), "prod");
        assert_eq!(key_segment("prod.eu"), "\"prod.eu\"");
        assert_eq!(key_segment("../x"), "\"../x\"");
    }
}
