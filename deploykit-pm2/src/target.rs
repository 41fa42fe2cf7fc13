//! The PM2 [`Target`]: releases staged in their own directories, made live by an
//! atomic symlink swap and a PM2 reload.

use std::sync::Arc;

use async_trait::async_trait;
use deploykit_core::shell::{CommandFailed, Output};
use deploykit_core::{Cmd, Error, ReleaseId, ReleaseSpec, Result, Shell, ShellExt, Target};

use crate::adopt;
use crate::commands;
use crate::config::{Pm2Config, Source};
use crate::layout::Layout;

mod activate;

/// The apps of a release under PM2 on one host (one app, or several from one
/// ecosystem file), reached through any [`Shell`] (SSH or local).
///
/// - `prepare` builds `releases/<id>` next to the live release (live traffic
///   untouched); on failure the new directory is removed and the error carries the
///   failing command and the tail of its output.
/// - `activate` swaps `current` atomically and runs `pm2 startOrReload --update-env`
///   for each app (a cluster-mode app reloads worker by worker), then `pm2 save`.
/// - rolling back is `activate(previous)`: the old release is still built on disk,
///   so it is a swap and a reload — seconds, not a reinstall and rebuild.
///
/// Each check and the action it guards run as one remote script (see
/// [`commands`](crate::commands)), so a prepare costs 5 round trips plus one per
/// build command, and an activation 3, two of them `pm2` (each a Node start-up).
pub struct Pm2Target {
    shell: Arc<dyn Shell>,
    config: Pm2Config,
    layout: Layout,
    /// The apps whose live workers were never touched because this target's
    /// reload gate refused a release: the undo that follows only points `current`
    /// back for them.
    gate_refused: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The release `current` pointed at before this target's last gated reload:
    /// going back to it (the undo) needs no canary, it served a moment ago.
    gated_from: std::sync::Mutex<Option<ReleaseId>>,
    /// Releases activated without a canary: they served on this host ([`Self::trust`]).
    trusted: std::sync::Mutex<Vec<ReleaseId>>,
}

impl std::fmt::Debug for Pm2Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pm2Target")
            .field("host", &self.shell.location())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pm2Target {
    /// A target for `config` on `shell`'s host; validates the config.
    pub fn new(shell: Arc<dyn Shell>, config: Pm2Config) -> Result<Self> {
        config.validate()?;
        let layout = Layout::new(&config.deploy_to)?;
        Ok(Self {
            shell,
            config,
            layout,
            gate_refused: std::sync::Mutex::new(Default::default()),
            gated_from: std::sync::Mutex::new(None),
            trusted: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Activating `release` skips the reload gate's canary: the workers are
    /// reloaded at once. For a rollback to a release a run verified on this host,
    /// whose code already served here: the canary would only repeat that, at the
    /// cost of a worker start and the gate's window while the live release may be
    /// failing. What still catches a release that no longer comes up: the verify
    /// probes (the `pm2` probe's settle window sees workers that die after start),
    /// then the run's undo, which reloads the release live before (no canary for
    /// it either: it was serving a moment ago). The canary also deletes one left
    /// by an interrupted run; a trusted activation leaves that to the next gated one.
    pub fn trust(&self, release: &ReleaseId) {
        self.trusted
            .lock()
            .expect("not poisoned")
            .push(release.clone());
    }

    /// The directory layout on the host.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The app's config.
    pub fn config(&self) -> &Pm2Config {
        &self.config
    }

    /// The shell commands run on.
    pub fn shell(&self) -> &Arc<dyn Shell> {
        &self.shell
    }

    fn location(&self) -> &str {
        self.shell.location()
    }

    /// Every prepare step in order; the caller cleans up on error.
    async fn stage(&self, spec: &ReleaseSpec) -> Result<()> {
        let sh = &self.shell;
        let id = &spec.id;
        match &self.config.source {
            Source::Git { repo } => {
                sh.check("prepare.fetch", &commands::git_cache(&self.layout, repo))
                    .await
                    .map_err(|e| {
                        e.with_hint(format!(
                            "check that {} can reach the repository (URL, deploy key, network)",
                            self.location()
                        ))
                    })?;
                let cmd = commands::git_checkout(&self.layout, &spec.commit, id);
                let out = sh.run(&cmd, None).await?;
                if out.status == commands::CHECK_FAILED {
                    return Err(Error::part(
                        "prepare.checkout",
                        self.location(),
                        format!("commit {} is not in the repository", spec.commit),
                    )
                    .with_hint("push the commit (or check the hash) and deploy again"));
                }
                self.fail_unless("prepare.checkout", &cmd, &out)?;
            }
            Source::Artifact {
                tarball: Some(tarball),
            } => crate::stage_artifact::stage(sh.as_ref(), &self.layout, spec, tarball).await?,
            Source::Artifact { tarball: None } => {
                return Err(Error::part(
                    "prepare.upload",
                    self.location(),
                    format!("release {id} comes from an artifact, and this run has none"),
                )
                .with_hint("give this run the tarball to ship"));
            }
        }
        if !self.config.linked_files.is_empty() || !self.config.linked_dirs.is_empty() {
            sh.check(
                "prepare.link",
                &commands::link_shared(
                    &self.layout,
                    id,
                    &self.config.linked_files,
                    &self.config.linked_dirs,
                ),
            )
            .await?;
        }
        for step in &self.config.build {
            sh.check(
                "prepare.build",
                &commands::build_step(&self.config, &self.layout, id, step),
            )
            .await?;
        }
        let seal = commands::seal_release(&self.config, &self.layout, id);
        let out = sh.run(&seal, None).await?;
        if out.status == commands::CHECK_FAILED {
            return Err(Error::part(
                "prepare.ecosystem",
                self.location(),
                format!(
                    "release {id} has no ecosystem file {:?}",
                    self.config.ecosystem
                ),
            )
            .with_hint(
                "fix `ecosystem` in the target config, or commit that file to the repository",
            ));
        }
        if out.status == commands::APPS_MISSING {
            return Err(Error::part(
                "prepare.ecosystem",
                self.location(),
                format!(
                    "the ecosystem file {:?} of release {id} has no app named {}",
                    self.config.ecosystem,
                    out.stdout_text().split_whitespace().collect::<Vec<_>>().join(", ")
                ),
            )
            .with_hint(
                "add the app to the ecosystem file (its `name`), or remove it from `apps` in the target config",
            ));
        }
        self.fail_unless("prepare", &seal, &out)
    }

    /// A failed command as the error of `step`; `Ok` when it succeeded.
    fn fail_unless(&self, step: &str, cmd: &Cmd, out: &Output) -> Result<()> {
        if out.success() {
            Ok(())
        } else {
            Err(CommandFailed::new(step, self.location(), cmd, out).into())
        }
    }

    /// Reads a `current` link target (`None`: no link).
    fn parse_current(&self, target: &str) -> Result<Option<ReleaseId>> {
        if target.trim().is_empty() {
            return Ok(None);
        }
        Layout::parse_link_target(target).map(Some).ok_or_else(|| {
            Error::part(
                "current",
                self.location(),
                format!(
                    "{} points at {:?}, not at a release directory",
                    self.layout.current().display(),
                    target.trim()
                ),
            )
            .with_hint("point it at releases/<id> by hand, or remove it if nothing is deployed")
        })
    }

    async fn take_offline(&self) -> Result<()> {
        for app in self.config.app_names() {
            let one = self.config.for_app(&app);
            adopt::refuse_if_not_ours(self.shell.as_ref(), &one, &self.layout).await?;
            // `delete` fails when the app is not in PM2: already offline, which is the goal.
            let _ = self.shell.run(&commands::delete(&one), None).await?;
        }
        self.shell
            .check("activate", &commands::remove_current(&self.layout))
            .await?;
        self.shell
            .check("activate", &commands::save(&self.config))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Target for Pm2Target {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        let out = self
            .shell
            .run(&commands::read_live(&self.config, &self.layout), None)
            .await?;
        let text = out.stdout_text();
        let (kind, rest) = text.split_once('\n').unwrap_or((&text, ""));
        match kind.trim() {
            commands::live::LINK => self.parse_current(rest),
            commands::live::NOT_A_LINK => Err(adopt::not_a_link(
                &self.config,
                &self.layout,
                self.location(),
            )),
            // No PM2 on the host (`exec` found no program): nothing runs under it.
            commands::live::NONE if out.status == 127 => Ok(None),
            commands::live::NONE if !out.success() => Err(CommandFailed::new(
                "current",
                self.location(),
                &commands::read_live(&self.config, &self.layout),
                &out,
            )
            .into()),
            commands::live::NONE => {
                adopt::live_without_link(&self.config, &self.layout, self.location(), rest)
            }
            // `current` could not even be looked at: as before, nothing is live.
            _ => Ok(None),
        }
    }

    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        let begun = self
            .shell
            .check("prepare", &commands::prepare_begin(&self.layout, &spec.id))
            .await?
            .stdout_text();
        let (first, live) = begun.split_once('\n').unwrap_or((&begun, ""));
        if first.trim() == commands::ALREADY_PREPARED {
            if let Source::Artifact { tarball: Some(t) } = &self.config.source {
                let sh = self.shell.as_ref();
                crate::stage_artifact::refuse_other_bytes(sh, &self.layout, spec, t).await?;
            }
            return Ok(());
        }
        if self.parse_current(live)?.as_ref() == Some(&spec.id) {
            return Err(Error::part(
                "prepare",
                self.location(),
                format!("release {} is live but incomplete", spec.id),
            )
            .with_hint("deploy under a new release id"));
        }
        // Leftovers of an interrupted prepare are replaced, never built upon: the
        // checkout (or unpack) empties the release directory first.
        match self.stage(spec).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let cleanup = self
                    .shell
                    .run(&commands::remove_release(&self.layout, &spec.id), None)
                    .await;
                let note = match cleanup {
                    Ok(out) if out.success() => format!(
                        "the live release was not touched and {} was removed",
                        self.layout.release(&spec.id).display()
                    ),
                    _ => format!(
                        "the live release was not touched; removing {} failed too, delete it by hand",
                        self.layout.release(&spec.id).display()
                    ),
                };
                let next = match &e {
                    Error::Part { hint: Some(h), .. } => format!("{note}; {h}"),
                    _ => format!("{note}; fix the cause and deploy again"),
                };
                Err(e.with_hint(next))
            }
        }
    }

    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        let Some(id) = release else {
            return self.take_offline().await;
        };
        if id.as_str() == adopt::ADOPTED {
            return adopt::restore(self.shell.as_ref(), &self.config, &self.layout).await;
        }
        self.activate_release(id).await
    }

    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        if self.current().await?.as_ref() == Some(release) {
            return Err(Error::Refused {
                reason: format!(
                    "release {release} is live on {}, so it was not discarded",
                    self.location()
                ),
                next: "activate another release first".into(),
            });
        }
        let remove = if release.as_str() == adopt::ADOPTED {
            // Forgetting the adopted app: only its record; it runs nowhere now.
            commands::remove_adopted(&self.layout)
        } else {
            commands::remove_release(&self.layout, release)
        };
        self.shell.check("discard", &remove).await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ReleaseId>> {
        let out = self
            .shell
            .check("list", &commands::list_releases(&self.layout))
            .await?;
        let mut ids: Vec<ReleaseId> = out
            .stdout_text()
            .lines()
            .filter_map(|l| ReleaseId::parse(l.trim()).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn recent_logs(
        &self,
        release: &ReleaseId,
        lines: usize,
    ) -> Result<Vec<deploykit_core::LogLines>> {
        crate::logs::recent(self.shell.as_ref(), &self.config, release, lines).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploykit_core::{Commit, LocalShell};

    fn git(dir: &std::path::Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
    }

    #[tokio::test]
    async fn merged_checks_still_name_what_failed_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("ecosystem.config.js"), "module.exports = {};\n").unwrap();
        git(&src, &["init", "-q"]);
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-q", "-m", "one"]);
        let config = Pm2Config::new(
            "web",
            dir.path().join("app"),
            Source::Git {
                repo: src.to_string_lossy().into_owned(),
            },
        );
        // No PM2 here: nothing runs under it, and no daemon is started by the test.
        let mut config = config;
        config.pm2 = "deploykit-test-no-such-pm2".into();
        let target = Pm2Target::new(Arc::new(LocalShell::new()), config).unwrap();
        let id = ReleaseId::parse("r1").unwrap();

        // Activating a release that was never prepared: refused, nothing switched.
        let err = target.activate(Some(&id)).await.unwrap_err().to_string();
        assert!(err.contains("not (completely) prepared"), "{err}");
        assert_eq!(target.current().await.unwrap(), None);

        // A commit the repository does not have: named, and the release is gone.
        let spec = ReleaseSpec {
            id: id.clone(),
            commit: Commit::parse("0123456789abcdef0123456789abcdef01234567").unwrap(),
            branch: None,
        };
        let err = target.prepare(&spec).await.unwrap_err().to_string();
        assert!(err.contains("prepare.checkout"), "{err}");
        assert!(err.contains("is not in the repository"), "{err}");
        assert!(err.contains("was removed"), "{err}");
        assert!(!target.layout().release(&id).exists());
        assert!(target.list().await.unwrap().is_empty());
    }
}
