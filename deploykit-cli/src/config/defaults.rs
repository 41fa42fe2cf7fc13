//! The `[defaults]` table: what staging and production share, written once.
//!
//! Two environments of one app differ in a handful of keys (hosts, URLs, the
//! approver) and repeat the rest. `[defaults]` is shaped like an environment and
//! is merged into each `[environments.X]` key by key before anything else reads
//! the config, so every later step (key checks, `${VAR}`s, `config show`) sees
//! the resolved environment.

use toml::{Table, Value};

/// Merges `doc`'s `[defaults]` into each of its environments and removes it.
/// Returns whether there was one.
///
/// The rule, the one Compose's `extends` and Helm's values use:
/// - tables merge key by key, the environment's keys winning;
/// - arrays and plain values replace (an environment's `probes` replace the
///   default probes, they are not appended to them);
/// - a table whose `kind` differs (a default `pm2` target, an environment's
///   `compose` target) is replaced whole, since its other keys mean something
///   else under the other kind.
pub fn merge_into_environments(doc: &mut Table) -> Result<bool, String> {
    let Some(defaults) = doc.remove("defaults") else {
        return Ok(false);
    };
    let Value::Table(defaults) = defaults else {
        return Err("`defaults` must be a table, shaped like an environment".into());
    };
    if let Some(Value::Table(envs)) = doc.get_mut("environments") {
        for (_, env) in envs.iter_mut() {
            if let Value::Table(env) = env {
                merge(env, &defaults);
            }
        }
    }
    Ok(true)
}

/// Adds `base`'s keys to `over` where `over` does not set them, recursively.
fn merge(over: &mut Table, base: &Table) {
    for (key, default) in base {
        match (over.get_mut(key), default) {
            (None, _) => {
                over.insert(key.clone(), default.clone());
            }
            (Some(Value::Table(mine)), Value::Table(theirs)) if same_kind(mine, theirs) => {
                merge(mine, theirs)
            }
            (Some(_), _) => {}
        }
    }
}

fn same_kind(a: &Table, b: &Table) -> bool {
    match (a.get("kind"), b.get("kind")) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(text: &str) -> Table {
        let mut doc: Table = toml::from_str(text).unwrap();
        assert!(merge_into_environments(&mut doc).unwrap());
        doc
    }

    #[test]
    fn tables_merge_and_the_environment_wins() {
        let doc = merged(
            "[defaults.target]\nkind = \"pm2\"\napp = \"muva\"\ninstances = 2\n\
             [defaults.target.env]\nAPP_NAME = \"muva\"\nPORT = \"3000\"\n\
             [environments.staging.target]\nhosts = [\"s\"]\n\
             [environments.production.target]\nhosts = [\"p\"]\ninstances = 4\n\
             [environments.production.target.env]\nPORT = \"8080\"\n",
        );
        assert!(doc.get("defaults").is_none());
        let prod = &doc["environments"]["production"]["target"];
        assert_eq!(prod["kind"].as_str(), Some("pm2"));
        assert_eq!(prod["instances"].as_integer(), Some(4));
        assert_eq!(prod["env"]["PORT"].as_str(), Some("8080"));
        assert_eq!(prod["env"]["APP_NAME"].as_str(), Some("muva"));
        let staging = &doc["environments"]["staging"]["target"];
        assert_eq!(staging["instances"].as_integer(), Some(2));
        assert_eq!(staging["hosts"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn arrays_replace_and_another_kind_replaces_the_table() {
        let doc = merged(
            "[[defaults.probes]]\nkind = \"http\"\nurl = \"a\"\n[[defaults.probes]]\nkind = \"pm2\"\n\
             [defaults.target]\nkind = \"pm2\"\napp = \"muva\"\n\
             [defaults.policy]\nhealth_attempts = 30\n\
             [environments.local]\n\
             [[environments.local.probes]]\nkind = \"http\"\nurl = \"b\"\n\
             [environments.local.target]\nkind = \"compose\"\nservice = \"web\"\n",
        );
        let local = &doc["environments"]["local"];
        let probes = local["probes"].as_array().unwrap();
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0]["url"].as_str(), Some("b"));
        assert!(local["target"].get("app").is_none(), "{local:?}");
        assert_eq!(local["policy"]["health_attempts"].as_integer(), Some(30));
    }

    #[test]
    fn a_file_without_defaults_is_untouched() {
        let mut doc: Table =
            toml::from_str("[environments.a.policy]\nhealth_attempts = 1\n").unwrap();
        let before = doc.clone();
        assert!(!merge_into_environments(&mut doc).unwrap());
        assert_eq!(doc, before);
        let mut bad: Table = toml::from_str("defaults = 3\n").unwrap();
        assert!(merge_into_environments(&mut bad).is_err());
    }
}
