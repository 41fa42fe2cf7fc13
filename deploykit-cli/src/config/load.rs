//! Reading the config file: parse, check keys with line numbers, interpolate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{defaults, dotenv, interpolate, masks, names, spelling, Config, Environment};

/// A config that could not be used, with the file and (when known) line.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A parsed, interpolated config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file.
    pub path: PathBuf,
    /// Its directory: relative paths in the file are relative to it.
    pub base: PathBuf,
    /// The content.
    pub config: Config,
    /// Per environment, the `${VAR}`s it uses that are not set.
    pub missing: BTreeMap<String, Vec<String>>,
    /// `deploy --accept-drift`: plan although applied SQL migrations changed since
    /// they ran. A choice for one run, never read from the file.
    pub accept_drift: bool,
    /// `deploy --image-tag`: the tag of a Compose target's `source_image` for this
    /// run. A choice for one run, never read from the file.
    pub image_tag: Option<String>,
    /// The tarball a PM2 target with `source = "artifact"` ships in this run
    /// (`deploy --artifact`, or what `artifact_build` wrote), hashed once.
    pub artifact: Option<deploykit_pm2::Tarball>,
}

impl LoadedConfig {
    /// The named environment, or an error listing the ones that exist.
    pub fn env(&self, name: &str) -> Result<&Environment, ConfigError> {
        if let Some(missing) = self.missing.get(name) {
            return Err(ConfigError(format!(
                "{}: {} (set them in the environment or the project's env_file)",
                self.path.display(),
                missing.join("; ")
            )));
        }
        self.config.environments.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .config
                .environments
                .keys()
                .map(String::as_str)
                .collect();
            ConfigError(format!(
                "{}: no environment named {name:?}; defined: {}",
                self.path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// A path from the file, made absolute against the file's directory (`~/` is
    /// the user's home).
    pub fn resolve(&self, p: &Path) -> PathBuf {
        super::resolve_path(&self.base, p)
    }

    /// The run journals of environment `env`.
    pub fn journals(&self, env: &str) -> deploykit_core::JournalDir {
        deploykit_core::JournalDir::new(self.state_dir().join("journal").join(env))
    }

    /// The state directory (journals, locks).
    pub fn state_dir(&self) -> PathBuf {
        self.resolve(&self.config.project.state_dir)
    }
}

/// Loads `path`: unknown keys and bad values are reported with file and line (by
/// parsing the text as written), then `${VAR}`s are filled from the environment
/// and the project's `.env` file, all missing variables reported at once.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{}: cannot read: {e} (create one with `deploykit init`)",
            path.display()
        ))
    })?;
    let mut doc: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
    let merged = defaults::merge_into_environments(&mut doc)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    let renamed = spelling::modernize(&mut doc);
    for warning in &renamed {
        eprintln!("warning: {}: {warning}", path.display());
    }
    // Without `[defaults]` (or an old spelling) the text as written is the config,
    // and its errors carry line numbers; otherwise it is only whole after the rewrite.
    let shape: Config = if merged || !renamed.is_empty() {
        Config::deserialize(toml::Value::Table(doc.clone())).map_err(|e| {
            ConfigError(format!(
                "{}: {} (in an environment merged with [defaults])",
                path.display(),
                e.message()
            ))
        })?
    } else {
        toml::from_str(&text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.to_string().trim_end())))?
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    // Absolute, so paths stay right whatever directory a command runs in.
    let base = std::fs::canonicalize(&base).unwrap_or(base);

    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    if let Some(env_file) = &shape.project.env_file {
        let env_path = if env_file.is_absolute() {
            env_file.clone()
        } else {
            base.join(env_file)
        };
        let environment: BTreeMap<String, String> = std::env::vars().collect();
        let items = dotenv::read(&env_path, &environment)
            .map_err(|e| ConfigError(format!("{}: env_file {e}", path.display())))?;
        vars.extend(items);
    }
    vars.extend(std::env::vars());

    let mut value = toml::Value::Table(doc);
    // A variable only the production environment uses must not stop a staging
    // deploy: missing variables are reported for the environment that uses them.
    // Each environment's table is walked on its own, so a dot in its name
    // (`[environments."prod.eu"]`) cannot send its reports to another one.
    let mut missing_by_env: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut global = Vec::new();
    if let toml::Value::Table(root) = &mut value {
        for (key, item) in root.iter_mut() {
            match item {
                toml::Value::Table(envs) if key == "environments" => {
                    for (env, table) in envs.iter_mut() {
                        let at = format!("environments.{}", names::key_segment(env));
                        let mut missing = Vec::new();
                        interpolate_value(table, &vars, &at, &mut missing);
                        if !missing.is_empty() {
                            missing_by_env.insert(env.clone(), missing);
                        }
                    }
                }
                _ => interpolate_value(item, &vars, &names::key_segment(key), &mut global),
            }
        }
    }
    if !global.is_empty() {
        return Err(ConfigError(format!(
            "{}: {} (set them in the environment or the project's env_file)",
            path.display(),
            global.join("; ")
        )));
    }
    let config: Config = value.try_into().map_err(|e: toml::de::Error| {
        ConfigError(format!(
            "{}: after filling ${{VAR}}s: {}",
            path.display(),
            e.message()
        ))
    })?;
    names::check(&config).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    super::hooks::check(&config).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    for (env, e) in &config.environments {
        if let Some(Err(why)) = e.backup.as_ref().map(|b| b.place()) {
            return Err(ConfigError(format!(
                "{}: environments.{}.backup: {why}",
                path.display(),
                names::key_segment(env)
            )));
        }
    }
    masks::mask_secrets(&config, &text, &vars);
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        base,
        config,
        missing: missing_by_env,
        accept_drift: false,
        image_tag: None,
        artifact: None,
    })
}

fn interpolate_value(
    v: &mut toml::Value,
    vars: &BTreeMap<String, String>,
    at: &str,
    missing: &mut Vec<String>,
) {
    match v {
        toml::Value::String(s) => match interpolate(s, vars) {
            Ok(done) => *s = done,
            Err(unfilled) => {
                for u in unfilled {
                    missing.push(format!("{at} uses {u}"));
                }
            }
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, vars, &format!("{at}[{i}]"), missing);
            }
        }
        toml::Value::Table(t) => {
            for (k, item) in t.iter_mut() {
                let key = format!("{at}.{}", names::key_segment(k));
                interpolate_value(item, vars, &key, missing);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deploykit.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn unknown_keys_name_the_line_and_what_is_allowed() {
        let (_d, p) =
            write("[environments.staging.policy]\nhealth_attempts = 3\nhelth_deadline_secs = 5\n");
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("helth_deadline_secs"), "{err}");
        assert!(
            err.contains("health_deadline_secs"),
            "expected keys listed: {err}"
        );
    }

    #[test]
    fn compose_strategy_defaults_to_auto_and_takes_either_way() {
        let target = "[environments.prod.target]\nkind = \"compose\"\nproject = \"crm\"\n\
                      files = [\"docker-compose.yml\"]\nservice = \"backend\"\nimage = \"crm/backend\"\n";
        let strategy = |extra: &str| {
            let (_d, p) = write(&format!("{target}{extra}"));
            load(&p).map(|c| match &c.env("prod").unwrap().target {
                Some(crate::config::TargetConfig::Compose(c)) => c.strategy,
                other => panic!("{other:?}"),
            })
        };
        use crate::config::ComposeStrategy;
        assert_eq!(strategy("").unwrap(), ComposeStrategy::Auto);
        assert_eq!(
            strategy("strategy = \"stop_first\"\n").unwrap(),
            ComposeStrategy::StopFirst
        );
        assert_eq!(
            strategy("strategy = \"start_first\"\n").unwrap(),
            ComposeStrategy::StartFirst
        );
        // Docker's spelling, the old one, still reads (with a warning on stderr).
        assert_eq!(
            strategy("strategy = \"start-first\"\n").unwrap(),
            ComposeStrategy::StartFirst
        );
        let err = strategy("strategy = \"rolling\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("start_first"), "{err}");
    }

    #[test]
    fn compose_deploys_one_service_or_several_never_both() {
        let target = "[environments.prod.target]\nkind = \"compose\"\nproject = \"crm\"\n\
                      files = [\"docker-compose.yml\"]\nimage = \"crm/backend\"\n";
        let services = |extra: &str| {
            let (_d, p) = write(&format!("{target}{extra}"));
            load(&p).map(|c| match &c.env("prod").unwrap().target {
                Some(crate::config::TargetConfig::Compose(c)) => c
                    .service_names()
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            })
        };
        assert_eq!(services("service = \"web\"\n").unwrap(), ["web"]);
        assert_eq!(
            services("services = [\"web\", \"worker\"]\n").unwrap(),
            ["web", "worker"]
        );
        for (extra, says) in [
            (
                "service = \"web\"\nservices = [\"web\", \"worker\"]\n",
                "not both",
            ),
            ("", "service = \"web\""),
            ("services = []\n", "service = \"web\""),
            ("services = [\"web\", \"web\"]\n", "more than once"),
            (
                "services = [\"web\", \"../w\"]\n",
                "environments.prod.target.services",
            ),
        ] {
            let err = services(extra).unwrap_err().to_string();
            assert!(err.contains(says), "{extra}: {err}");
        }
    }

    fn db_url(c: &LoadedConfig) -> String {
        let db = c.env("prod").unwrap().database.clone().unwrap();
        db.url.expose().to_string()
    }

    #[test]
    fn shell_default_and_required_forms_fill_the_config() {
        let (_d, p) = write(
            "[environments.prod.database]\n\
             url = \"postgres://app@${DEPLOYKIT_T_UNSET_HOST:-db.internal}:${DEPLOYKIT_T_UNSET_PORT:-5432}/app\"\n",
        );
        let loaded = load(&p).unwrap();
        assert_eq!(db_url(&loaded), "postgres://app@db.internal:5432/app");

        let (_d, p) = write(
            "[environments.prod.database]\nurl = \"${DEPLOYKIT_T_UNSET_URL:?set it to the primary's URL}\"\n",
        );
        let err = load(&p).unwrap().env("prod").unwrap_err().to_string();
        assert!(
            err.contains("DEPLOYKIT_T_UNSET_URL") && err.contains("set it to the primary's URL"),
            "{err}"
        );
    }

    #[test]
    fn env_file_values_are_read_as_compose_reads_them() {
        let (d, p) = write(
            "[project]\nenv_file = \".env\"\n[environments.prod.database]\n\
             url = \"postgres://app@h/${DEPLOYKIT_T_DB_NAME}?ports=${DEPLOYKIT_T_WEB_PORTS}\"\n",
        );
        std::fs::write(
            d.path().join(".env"),
            "# ports the web service listens on\nDEPLOYKIT_T_WEB_PORTS=19212 19213\n\
             export DEPLOYKIT_T_DB_NAME='app db' # inline comment\n",
        )
        .unwrap();
        let loaded = load(&p).unwrap();
        assert_eq!(db_url(&loaded), "postgres://app@h/app db?ports=19212 19213");
    }

    #[test]
    fn bad_values_name_the_line() {
        let (_d, p) = write("[environments.staging.policy]\nmigration_failure = \"yolo\"\n");
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("down"), "{err}");
    }

    #[test]
    fn missing_variables_are_all_reported_and_present_ones_filled() {
        let (_d, p) = write(
            "[environments.staging.database]\nurl = \"${DK_TEST_UNSET_A}\"\n[environments.staging.notify]\nwebhook = \"${DK_TEST_UNSET_B}\"\n",
        );
        let err = load(&p).unwrap().env("staging").unwrap_err().to_string();
        assert!(
            err.contains("DK_TEST_UNSET_A") && err.contains("DK_TEST_UNSET_B"),
            "{err}"
        );
        assert!(err.contains("environments.staging.database.url"), "{err}");
    }

    #[test]
    fn variables_of_other_environments_do_not_block_this_one() {
        let (_d, p) = write("[environments.staging]\n[environments.production.database]\nurl = \"${DK_TEST_UNSET_PROD}\"\n[project]\nname = \"x\"\n");
        let loaded = load(&p).unwrap();
        assert!(loaded.env("staging").is_ok());
        assert!(loaded
            .env("production")
            .unwrap_err()
            .to_string()
            .contains("DK_TEST_UNSET_PROD"));
        let (_d, p) =
            write("[project]\nname = \"${DK_TEST_UNSET_NAME}\"\n[environments.staging]\n");
        assert!(load(&p)
            .unwrap_err()
            .to_string()
            .contains("DK_TEST_UNSET_NAME"));
    }

    #[test]
    fn a_dot_in_an_environment_name_keeps_its_missing_variables_its_own() {
        let (_d, p) = write(
            "[environments.prod]\n[environments.\"prod.eu\".database]\nurl = \"${DK_TEST_UNSET_EU}\"\n",
        );
        let loaded = load(&p).unwrap();
        assert!(loaded.env("prod").is_ok(), "prod uses no unset variable");
        let err = loaded.env("prod.eu").unwrap_err().to_string();
        assert!(err.contains("DK_TEST_UNSET_EU"), "{err}");
        assert!(
            err.contains("environments.\"prod.eu\".database.url"),
            "the key is named unambiguously: {err}"
        );
    }

    #[test]
    fn names_that_become_paths_are_refused_naming_the_key() {
        for (toml, key) in [
            ("[environments.\"../x\"]\n", "environments.\"../x\""),
            ("[environments.\"a/b\"]\n", "environments.\"a/b\""),
            (
                "[environments.s.target]\nkind = \"pm2\"\nhosts = [\"local\"]\ndeploy_to = \"/srv/a\"\napp = \"../../etc\"\nrepo = \"r\"\n",
                "environments.s.target.app",
            ),
            (
                "[environments.s.target]\nkind = \"compose\"\nproject = \"..\"\nfiles = []\nservice = \"web\"\nimage = \"i\"\n",
                "environments.s.target.project",
            ),
            (
                "[environments.s.target]\nkind = \"compose\"\nproject = \"crm\"\nfiles = []\nservice = \"a/../b\"\nimage = \"i\"\n",
                "environments.s.target.service",
            ),
            (
                "[environments.s.migrations]\nkind = \"compose_run\"\nservice = \"../m\"\nup = [\"x\"]\n",
                "environments.s.migrations.service",
            ),
            (
                "[environments.s.backup]\nkind = \"compose_exec\"\nservice = \"db/..\"\ndatabase = \"d\"\nuser = \"u\"\ndir = \"b\"\n",
                "environments.s.backup.service",
            ),
        ] {
            let (_d, p) = write(toml);
            let err = load(&p).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
            assert!(err.contains("invalid"), "{toml}: {err}");
        }
        let (_d, p) = write("[environments.\"prod.eu\"]\n[environments.staging-2]\n");
        assert!(load(&p).is_ok(), "dots and dashes inside a name are fine");
    }

    #[test]
    fn env_file_values_fill_variables_and_stay_secret_when_shown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "DK_TEST_DB=postgres://app:pa55word-long-enough@db/app\n",
        )
        .unwrap();
        let p = dir.path().join("deploykit.toml");
        std::fs::write(&p, "[project]\nenv_file = \".env\"\n[environments.prod.database]\nurl = \"${DK_TEST_DB}\"\n").unwrap();
        let loaded = load(&p).unwrap();
        let url = &loaded.config.environments["prod"]
            .database
            .as_ref()
            .unwrap()
            .url;
        assert_eq!(url.expose(), "postgres://app:pa55word-long-enough@db/app");
        let shown = toml::to_string(&loaded.config).unwrap();
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(!format!("{:?}", loaded.config).contains("pa55word"));
    }

    #[test]
    fn unknown_environment_lists_the_defined_ones() {
        let (_d, p) = write("[environments.staging]\n[environments.production]\n");
        let loaded = load(&p).unwrap();
        let err = loaded.env("prod").unwrap_err().to_string();
        assert!(err.contains("production, staging"), "{err}");
    }

    #[test]
    fn tagged_tables_reject_unknown_keys_too() {
        let (_d, p) = write(
            "[environments.s.backup]\nkind = \"sqlite\"\ndir = \"b\"\nkeep = 3\nretain = 2\n",
        );
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("retain"), "{err}");
    }
}
