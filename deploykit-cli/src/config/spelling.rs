//! Old spellings of values, still read, with a warning that names the new one.
//!
//! Every value in deploykit.toml is snake_case (`pg_dump`, `compose_exec`,
//! `plain_gzip`). The Compose `strategy` was the one kebab-case value
//! (`start-first`, Docker's own spelling); a file that uses it keeps working, and
//! the warning says what to write, so a later release can drop the old form.

use toml::{Table, Value};

/// `(key, old value, new value)` pairs, for keys of an environment's `target`.
const TARGET_RENAMES: &[(&str, &str, &str)] = &[
    ("strategy", "stop-first", "stop_first"),
    ("strategy", "start-first", "start_first"),
];

/// Rewrites old spellings in `doc` (after `[defaults]` is merged) and returns one
/// warning per place that used one.
pub fn modernize(doc: &mut Table) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(Value::Table(envs)) = doc.get_mut("environments") else {
        return warnings;
    };
    for (env, table) in envs.iter_mut() {
        let Some(Value::Table(target)) = table.get_mut("target") else {
            continue;
        };
        for (key, old, new) in TARGET_RENAMES {
            if target.get(*key).and_then(Value::as_str) == Some(*old) {
                target.insert(key.to_string(), Value::String(new.to_string()));
                warnings.push(format!(
                    "environments.{}.target.{key} = \"{old}\" is the old spelling: write \"{new}\" \
                     (every value is snake_case); \"{old}\" will stop being read in a later release",
                    super::names::key_segment(env)
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kebab_strategy_is_rewritten_with_a_warning() {
        let mut doc: Table = toml::from_str(
            "[environments.prod.target]\nkind = \"compose\"\nstrategy = \"start-first\"\n\
             [environments.stg.target]\nkind = \"compose\"\nstrategy = \"stop_first\"\n",
        )
        .unwrap();
        let warnings = modernize(&mut doc);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("environments.prod.target.strategy"));
        assert!(warnings[0].contains("\"start_first\""));
        assert_eq!(
            doc["environments"]["prod"]["target"]["strategy"].as_str(),
            Some("start_first")
        );
    }
}
