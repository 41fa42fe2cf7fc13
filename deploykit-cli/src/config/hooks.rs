//! `[[environments.<env>.hooks]]`: the operator's commands at points of a deploy.
//!
//! Read as plain strings and checked here, so an unknown point or place is a
//! config error naming its key (`environments.staging.hooks[1].at`) before
//! anything runs, not a serde message without a path.

use std::time::Duration;

use deploykit_core::hook::{Hook, HookPlace, HookPoint, DEFAULT_HOOK_TIMEOUT};
use serde::{Deserialize, Serialize};

use super::names::key_segment;
use super::{Config, Environment, TargetConfig};

/// One hook as written in the config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Its point: `pre_deploy`, `post_migrate`, `post_activate`, `post_deploy`,
    /// `on_rollback`.
    pub at: String,
    /// The program and its arguments (argv; no shell unless you run one).
    pub run: Vec<String>,
    /// `local` (default: the deploying machine, in the project's directory) or
    /// `hosts` (each of the target's hosts, in its `deploy_to`).
    #[serde(default = "local")]
    pub on: String,
    /// Killed and failed after this many seconds (default 300).
    pub timeout_secs: Option<u64>,
}

fn local() -> String {
    "local".into()
}

impl HookConfig {
    /// The core hook; call after [`check`] passed.
    pub fn to_hook(&self) -> Hook {
        let point = self.at.parse().expect("checked when the config loaded");
        let place = place(&self.on).expect("checked when the config loaded");
        Hook::new(point, place, self.run.clone()).timeout(
            self.timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_HOOK_TIMEOUT),
        )
    }
}

fn place(on: &str) -> Result<HookPlace, String> {
    match on {
        "local" => Ok(HookPlace::Local),
        "hosts" => Ok(HookPlace::Hosts),
        other => Err(format!(
            "unknown place `{other}` (expected `local` or `hosts`)"
        )),
    }
}

/// Every environment's hooks, checked; the error names the key of the first bad one.
pub fn check(config: &Config) -> Result<(), String> {
    for (env, e) in &config.environments {
        check_env(&format!("environments.{}", key_segment(env)), e)?;
    }
    Ok(())
}

fn check_env(at: &str, env: &Environment) -> Result<(), String> {
    for (i, hook) in env.hooks.iter().enumerate() {
        let key = format!("{at}.hooks[{i}]");
        hook.at
            .parse::<HookPoint>()
            .map_err(|e| format!("{key}.at: {e}"))?;
        let on = place(&hook.on).map_err(|e| format!("{key}.on: {e}"))?;
        if hook.run.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(format!(
                "{key}.run: needs a program, e.g. run = [\"./scripts/warm-cache.sh\"]"
            ));
        }
        if hook.timeout_secs == Some(0) {
            return Err(format!("{key}.timeout_secs: must be at least 1"));
        }
        let has_hosts = match &env.target {
            Some(TargetConfig::Pm2(_)) | Some(TargetConfig::Local { .. }) => true,
            Some(TargetConfig::Compose(c)) => {
                c.host.as_deref().is_some_and(|h| h.starts_with("ssh://"))
            }
            None => false,
        };
        if on == HookPlace::Hosts && !has_hosts {
            return Err(format!(
                "{key}.on: `hosts` needs a target with hosts (pm2, local, or compose with \
                 an ssh:// `host`); use on = \"local\""
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::load;

    fn loaded(text: &str) -> Result<super::super::LoadedConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploykit.toml");
        std::fs::write(&path, text).unwrap();
        load(&path).map_err(|e| e.to_string())
    }

    const TARGET: &str = "[environments.s.target]\nkind = \"local\"\ndeploy_to = \"d\"\nrepo = \"r\"\nstart = [\"x\"]\nport = 1\n";

    #[test]
    fn hooks_become_core_hooks_with_their_point_place_and_timeout() {
        let config = loaded(&format!(
            "{TARGET}[[environments.s.hooks]]\nat = \"post_activate\"\nrun = [\"./warm.sh\", \"--quick\"]\non = \"hosts\"\ntimeout_secs = 9\n\
             [[environments.s.hooks]]\nat = \"pre_deploy\"\nrun = [\"./check.sh\"]\n"
        ))
        .unwrap();
        let hooks: Vec<_> = config.config.environments["s"]
            .hooks
            .iter()
            .map(|h| h.to_hook())
            .collect();
        assert_eq!(hooks[0].point, deploykit_core::HookPoint::PostActivate);
        assert_eq!(hooks[0].runs_on, deploykit_core::HookPlace::Hosts);
        assert_eq!(hooks[0].timeout.as_secs(), 9);
        assert_eq!(hooks[0].argv, ["./warm.sh", "--quick"]);
        assert_eq!(hooks[1].runs_on, deploykit_core::HookPlace::Local);
        assert_eq!(hooks[1].timeout.as_secs(), 300, "the default timeout");
    }

    #[test]
    fn bad_hooks_are_config_errors_naming_the_key() {
        for (hook, key, says) in [
            (
                "at = \"post_activat\"\nrun = [\"x\"]\n",
                "hooks[0].at",
                "post_activate",
            ),
            (
                "at = \"pre_deploy\"\nrun = [\"x\"]\non = \"everywhere\"\n",
                "hooks[0].on",
                "hosts",
            ),
            (
                "at = \"pre_deploy\"\nrun = []\n",
                "hooks[0].run",
                "needs a program",
            ),
            (
                "at = \"pre_deploy\"\nrun = [\"x\"]\ntimeout_secs = 0\n",
                "hooks[0].timeout_secs",
                "at least 1",
            ),
        ] {
            let err = loaded(&format!("{TARGET}[[environments.s.hooks]]\n{hook}")).unwrap_err();
            assert!(err.contains(&format!("environments.s.{key}")), "{err}");
            assert!(err.contains(says), "{err}");
        }
        let err = loaded("[environments.s]\n[[environments.s.hooks]]\nat = \"pre_deploy\"\nrun = [\"x\"]\non = \"hosts\"\n")
            .unwrap_err();
        assert!(err.contains("needs a target with hosts"), "{err}");
    }

    #[test]
    fn default_hooks_apply_to_environments_without_their_own() {
        let config = loaded(&format!(
            "[[defaults.hooks]]\nat = \"post_deploy\"\nrun = [\"./notify.sh\"]\n\
             {TARGET}[environments.p]\n[[environments.p.hooks]]\nat = \"pre_deploy\"\nrun = [\"./freeze.sh\"]\n"
        ))
        .unwrap();
        let envs = &config.config.environments;
        assert_eq!(envs["s"].hooks.len(), 1);
        assert_eq!(envs["s"].hooks[0].run, ["./notify.sh"]);
        assert_eq!(
            envs["p"].hooks.len(),
            1,
            "an environment's hooks replace the defaults"
        );
        assert_eq!(envs["p"].hooks[0].at, "pre_deploy");
    }
}
