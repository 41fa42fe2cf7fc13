//! The PM2 [`Target`]: releases staged in their own directories, made live by an
//! atomic symlink swap and a PM2 reload.

use std::sync::Arc;

use async_trait::async_trait;
use deploykit_core::shell::{CommandFailed, Output};
use deploykit_core::{Cmd, Error, ReleaseId, ReleaseSpec, Result, Shell, ShellExt, Target};

use crate::adopt;
use crate::commands;
use crate::config::{Pm2Config, Source};
use crate::gate;
use crate::layout::Layout;

/// One app under PM2 on one host, reached through any [`Shell`] (SSH or local).
///
/// - `prepare` builds `releases/<id>` next to the live release (live traffic
///   untouched); on failure the new directory is removed and the error carries the
///   failing command and the tail of its output.
/// - `activate` swaps `current` atomically and runs `pm2 startOrReload --update-env`
///   (a cluster-mode app reloads worker by worker), then `pm2 save`.
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
    /// Set when this target's reload gate refused a release: the live workers were
    /// never touched, so the undo that follows only points `current` back.
    gate_refused: std::sync::Mutex<bool>,
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
            gate_refused: std::sync::Mutex::new(false),
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
            Source::Artifact { dir } => {
                let file = dir.join(format!("{id}.tar.gz"));
                let bytes = tokio::fs::read(&file)
                    .await
                    .map_err(|e| Error::io("reading artifact", &file, e))?;
                let cmd = commands::unpack_artifact(&self.layout, id);
                let out = sh.run(&cmd, Some(&bytes)).await?;
                self.fail_unless("prepare.upload", &cmd, &out)?;
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
        adopt::refuse_if_not_ours(self.shell.as_ref(), &self.config, &self.layout).await?;
        // `delete` fails when the app is not in PM2: already offline, which is the goal.
        let _ = self
            .shell
            .run(&commands::delete(&self.config), None)
            .await?;
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
        let sh = &self.shell;
        let back = self.gated_from.lock().expect("not poisoned").take();
        let before = match self.config.reload_gate {
            // Only remembered; a `current` that is no link is refused by the switch.
            Some(_) => self.current().await.ok().flatten(),
            None => None,
        };
        let mut switch = commands::switch_over_link(&self.layout, id);
        let mut out = sh.run(&switch, None).await?;
        if out.status == commands::NO_LINK {
            // A first deploy: PM2 may already run an app of this name that
            // deploykit did not start; refuse it, or record it and take it over.
            adopt::take_over(sh.as_ref(), &self.config, &self.layout).await?;
            switch = commands::switch_current(&self.layout, id);
            out = sh.run(&switch, None).await?;
        }
        if out.status == commands::CHECK_FAILED {
            return Err(Error::part(
                "activate",
                self.location(),
                format!("release {id} is not (completely) prepared on this host"),
            )
            .with_hint("prepare it first; an incomplete release is never made live"));
        }
        self.fail_unless("activate.swap", &switch, &out).map_err(|e| {
            e.with_hint(format!(
                "nothing was switched; if {} is a real directory (an earlier in-place deploy), move it aside so deploykit can manage it as a symlink",
                self.layout.current().display()
            ))
        })?;
        let refused = std::mem::take(&mut *self.gate_refused.lock().expect("not poisoned"));
        if refused && gate::all_run(sh.as_ref(), &self.config, &self.layout, id).await? {
            // The undo of a refused canary: every worker still runs `id`, so a
            // reload would only risk requests. `current` points at it again.
            return Ok(());
        }
        let trusted = self.trusted.lock().expect("not poisoned").contains(id);
        let canary = back.as_ref() != Some(id)
            && !trusted
            && gate::canary(sh, &self.config, &self.layout, id)
                .await
                .inspect_err(|_| *self.gate_refused.lock().expect("not poisoned") = true)?;
        if canary || trusted {
            // The undo goes back to `before` without a canary: it served a moment ago.
            *self.gated_from.lock().expect("not poisoned") = before;
        }
        let reloaded = sh
            .check(
                "activate.reload",
                &commands::start_or_reload(&self.config, &self.layout, id),
            )
            .await;
        if canary {
            let retired = gate::retire(sh.as_ref(), &self.config).await;
            retired?;
        }
        reloaded.map_err(|e| {
            e.with_hint(format!(
                "`current` already points at {id}; the run's undo swaps it back and reloads the previous release"
            ))
        })?;
        sh.check("activate.save", &commands::save(&self.config))
            .await?;
        Ok(())
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
