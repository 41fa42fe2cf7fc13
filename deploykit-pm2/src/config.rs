//! What a PM2 target needs to know about one app on one host.

use std::path::PathBuf;

use deploykit_core::{Cmd, Error, Result, Secret};

use crate::layout::validate_relative;

/// Where a release's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A git repository the host can reach (URL or path on the host). A bare clone
    /// is cached under `<deploy_to>/repo`, fetched each prepare, and the exact commit
    /// is exported into the release directory (no working tree, no `git pull`).
    Git {
        /// The repository URL as the host sees it.
        repo: String,
    },
    /// A tarball built once (in CI or by a local build command), uploaded to
    /// each host over its shell, checked against its SHA-256 there and unpacked
    /// into the release. The configured build commands still run on the host
    /// after unpacking (none by default: `node_modules` usually ship inside).
    Artifact {
        /// This run's tarball; `None` when the run ships none (status, rollback
        /// and recover only switch between releases already on the hosts), in
        /// which case a prepare is refused.
        tarball: Option<crate::Tarball>,
    },
}

/// One release's apps under PM2 on one host: usually one app, or several from
/// one ecosystem file (a web app and its worker) that switch, are verified and
/// roll back together.
#[derive(Debug, Clone)]
pub struct Pm2Config {
    /// The PM2 app name (as in the ecosystem file); what is reloaded and probed.
    /// With [`extra_apps`](Self::extra_apps), the first of the release's apps.
    pub app: String,
    /// More apps of the same ecosystem file (e.g. `worker`), reloaded after
    /// [`app`](Self::app) at each activation and checked by the same probe: a
    /// release is live only when all of them run it. Every one must be in the
    /// release's ecosystem file (prepare fails otherwise).
    pub extra_apps: Vec<String>,
    /// The deploy directory (see [`Layout`](crate::Layout)).
    pub deploy_to: PathBuf,
    /// Where the code comes from.
    pub source: Source,
    /// The ecosystem file, relative to the release (default `ecosystem.config.js`).
    pub ecosystem: String,
    /// Files under `shared/` linked into every release (e.g. `.env`); they must exist.
    pub linked_files: Vec<String>,
    /// Directories under `shared/` linked into every release (e.g. `public/uploads`,
    /// `logs`); created when missing.
    pub linked_dirs: Vec<String>,
    /// Install and build commands, run in order in the new release directory with
    /// [`env`](Self::env) (e.g. `pnpm install --frozen-lockfile`, `pnpm run build`).
    pub build: Vec<Cmd>,
    /// The app's environment: given to the build commands and to PM2 (`--update-env`).
    /// Values are secrets and never printed.
    pub env: Vec<(String, Secret)>,
    /// The `pm2` program on the host (default `pm2`, found on the login PATH).
    pub pm2: String,
    /// `PM2_HOME` on the host, when not the SSH user's default `~/.pm2`.
    pub pm2_home: Option<String>,
    /// Take over an app that runs under PM2 but that deploykit did not start (for
    /// example one started by hand with `pm2 start server.js --name web -i 2`).
    /// Off by default: such an app is refused before anything changes, because an
    /// undo could not put it back. On, the first deploy records the running app's
    /// script, cwd, instances and env on the host (owner-only) before replacing it,
    /// and an undo restarts it exactly from that record.
    pub adopt_running: bool,
    /// The health gate of a reload (default 2 s; `None`: off). Before the live
    /// cluster-mode workers are reloaded, one canary worker of the new release is
    /// started next to them (with `PORT=0`: no traffic) and must stay up this
    /// long: `pm2 reload` retires an old worker as soon as the new one listens,
    /// healthy or not (pm2 #3078, #3429), so workers that die a second after start
    /// would take the whole app down between restarts. A canary that dies is
    /// deleted and the live workers were never touched.
    pub reload_gate: Option<std::time::Duration>,
}

impl Pm2Config {
    /// A config with the defaults: `ecosystem.config.js`, no linked paths, no build
    /// commands, `pm2` from PATH.
    pub fn new(app: impl Into<String>, deploy_to: impl Into<PathBuf>, source: Source) -> Self {
        Self {
            app: app.into(),
            extra_apps: Vec::new(),
            deploy_to: deploy_to.into(),
            source,
            ecosystem: "ecosystem.config.js".into(),
            linked_files: Vec::new(),
            linked_dirs: Vec::new(),
            build: Vec::new(),
            env: Vec::new(),
            pm2: "pm2".into(),
            pm2_home: None,
            adopt_running: false,
            reload_gate: Some(std::time::Duration::from_secs(2)),
        }
    }

    /// Adds an app of the same ecosystem file to every activation (see
    /// [`extra_apps`](Self::extra_apps)).
    pub fn with_app(mut self, name: impl Into<String>) -> Self {
        self.extra_apps.push(name.into());
        self
    }

    /// Every app of a release, [`app`](Self::app) first.
    pub fn app_names(&self) -> Vec<String> {
        std::iter::once(self.app.clone())
            .chain(self.extra_apps.iter().cloned())
            .collect()
    }

    /// This config narrowed to one of its apps (for the per-app commands, gate
    /// and probe, which each look at one PM2 app name).
    pub(crate) fn for_app(&self, name: &str) -> Self {
        let mut one = self.clone();
        one.app = name.to_string();
        one.extra_apps = Vec::new();
        one
    }

    /// Sets [`reload_gate`](Self::reload_gate) (`None`: reload without a canary).
    pub fn reload_gate(mut self, window: Option<std::time::Duration>) -> Self {
        self.reload_gate = window;
        self
    }

    /// Adds a build command (run in the release directory with the app's env).
    pub fn build_step(mut self, cmd: Cmd) -> Self {
        self.build.push(cmd);
        self
    }

    /// Adds an environment variable for the build and the app.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), Secret::new(value)));
        self
    }

    /// Sets `PM2_HOME`.
    pub fn pm2_home(mut self, home: impl Into<String>) -> Self {
        self.pm2_home = Some(home.into());
        self
    }

    /// Sets [`adopt_running`](Self::adopt_running).
    pub fn adopt_running(mut self, adopt: bool) -> Self {
        self.adopt_running = adopt;
        self
    }

    /// Checks every value that ends up in paths and command lines.
    pub fn validate(&self) -> Result<()> {
        let names = self.app_names();
        for (i, app) in names.iter().enumerate() {
            if app.is_empty()
                || app.starts_with('-')
                || !app
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(Error::Invalid {
                    what: "pm2 app name",
                    value: app.chars().take(80).collect(),
                    reason: "expected letters, digits, '-', '_' or '.', not starting with '-'"
                        .into(),
                });
            }
            if names[..i].contains(app) {
                return Err(Error::Invalid {
                    what: "pm2 app name",
                    value: app.clone(),
                    reason: "listed twice; name each app of the release once".into(),
                });
            }
        }
        validate_relative("ecosystem file", &self.ecosystem)?;
        for f in &self.linked_files {
            validate_relative("linked file", f)?;
        }
        for d in &self.linked_dirs {
            validate_relative("linked dir", d)?;
        }
        for (k, _) in &self.env {
            let ok = !k.is_empty()
                && !k.as_bytes()[0].is_ascii_digit()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(Error::Invalid {
                    what: "environment variable name",
                    value: k.chars().take(80).collect(),
                    reason: "expected letters, digits and '_', not starting with a digit".into(),
                });
            }
        }
        if self.pm2.is_empty() || self.pm2.starts_with('-') {
            return Err(Error::Invalid {
                what: "pm2 program",
                value: self.pm2.clone(),
                reason: "expected a program name or path".into(),
            });
        }
        if let Source::Git { repo } = &self.source {
            if repo.is_empty() || repo.starts_with('-') {
                return Err(Error::Invalid {
                    what: "git repository",
                    value: repo.chars().take(80).collect(),
                    reason: "expected a URL or path, not starting with '-'".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Pm2Config {
        Pm2Config::new(
            "web",
            "/srv/web",
            Source::Git {
                repo: "https://example.com/app.git".into(),
            },
        )
    }

    #[test]
    fn hostile_values_are_refused() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.app = "web;reboot".into();
        assert!(c.validate().is_err());
        let mut c = config();
        c.linked_files = vec!["../../etc/passwd".into()];
        assert!(c.validate().is_err());
        assert!(config().with_app("worker").validate().is_ok());
        assert!(config().with_app("w;x").validate().is_err());
        assert!(config().with_app("web").validate().is_err(), "twice");
        let c = config().env("BAD KEY", "v");
        assert!(c.validate().is_err());
        let mut c = config();
        c.source = Source::Git {
            repo: "--upload-pack=touch /tmp/x".into(),
        };
        assert!(c.validate().is_err());
    }
}
