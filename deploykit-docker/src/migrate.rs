//! [`ComposeRunMigrator`]: the app's own migration tool, run in a one-off container
//! of the new release's image before the switch.
//!
//! The seeds start the new container first and only then run `prisma migrate deploy`
//! inside it, so a failing migration has already taken the old container down. Here
//! the command runs as `compose run --rm --no-deps <service> <argv>` with the service
//! pinned (by a separate override file) to the *new* release tag: the live container
//! is never touched, and a failure stops the run before `activate`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deploykit_core::revisions::{self, RevisionCommands, RevisionRunner};
use deploykit_core::shell::CommandFailed;
use deploykit_core::{
    AppliedSet, Cmd, Error, MigrationId, MigrationPlan, MigrationStatus, Migrator, NextStep,
    PlannedMigration, ReleaseSpec, Result, Shell,
};

use crate::compose::ComposeProject;
use crate::engine::Engine;
use crate::pin::PinFile;
use crate::target::ComposeTarget;

pub use deploykit_core::revisions::REVISION_PLACEHOLDER;

/// Runs a migration tool (`npx prisma migrate deploy`, `alembic upgrade head`…) in a
/// one-off container of the release being deployed.
///
/// The tool keeps its own history, so the plan is one step: "run the command". With
/// a `revision` command (e.g. `alembic current`) the revision before and after is
/// recorded, and with a `revert` command (e.g. `alembic downgrade {revision}`) the
/// step can be undone — exactly back to the revision recorded before, and only if
/// the database is not already there.
pub struct ComposeRunMigrator {
    shell: Arc<dyn Shell>,
    engine: Engine,
    project: ComposeProject,
    service: String,
    run_service: String,
    image_repo: String,
    state_dir: PathBuf,
    apply: Vec<String>,
    revision: Option<Vec<String>>,
    revert: Option<Vec<String>>,
    base_revision: String,
    orphan_wait: Duration,
}

impl std::fmt::Debug for ComposeRunMigrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComposeRunMigrator")
            .field("host", &self.shell.location())
            .field("project", &self.project.name)
            .field("service", &self.run_service)
            .field("image_repo", &self.image_repo)
            .field("apply", &self.apply)
            .field("revision", &self.revision)
            .field("revert", &self.revert)
            .finish_non_exhaustive()
    }
}

impl ComposeRunMigrator {
    /// Runs `apply` in the image `target` staged for the release each call concerns,
    /// with the target's project, service, shell and engine.
    pub fn new(target: &ComposeTarget, apply: Vec<String>) -> Self {
        Self {
            shell: target.shell(),
            engine: target.engine().clone(),
            project: target.project().clone(),
            service: target.service().to_string(),
            run_service: target.service().to_string(),
            image_repo: target.image_repo().to_string(),
            state_dir: target.state_dir_path().to_path_buf(),
            apply,
            revision: None,
            revert: None,
            base_revision: "base".into(),
            orphan_wait: Duration::from_secs(120),
        }
    }

    /// Runs the one-off containers as `service` (same build, env and volumes as the
    /// app, e.g. a `migrate` service) instead of the app's own service. Needed with
    /// Compose v1 and `network_mode: host`: v1's `run` links a one-off container to
    /// its service's running containers, which the engine refuses for host networking.
    pub fn run_service(mut self, service: &str) -> Result<Self> {
        crate::compose::validate_compose_name("compose service name", service)?;
        self.run_service = service.to_string();
        Ok(self)
    }

    /// A command printing the database's current revision as the first word of its
    /// last output line (`alembic current` prints `d4e5f6 (head)`).
    pub fn revision_command(mut self, argv: Vec<String>) -> Self {
        self.revision = Some(argv);
        self
    }

    /// A command going back to a revision; its `{revision}` argument is replaced by
    /// the revision recorded before the run (or the base revision).
    pub fn revert_command(mut self, argv: Vec<String>) -> Self {
        self.revert = Some(argv);
        self
    }

    /// What `{revision}` becomes when the database had no revision before (default
    /// `base`, as alembic names it).
    pub fn base_revision(mut self, base: impl Into<String>) -> Self {
        self.base_revision = base.into();
        self
    }

    /// How long to wait for a one-off container a killed run left running before
    /// stopping it (default 2 minutes), so the revision read next is final.
    pub fn orphan_wait(mut self, wait: Duration) -> Self {
        self.orphan_wait = wait;
        self
    }

    /// The one step the plan holds.
    pub fn step_id(&self) -> MigrationId {
        MigrationId {
            version: "command".into(),
            name: self.apply.join(" "),
        }
    }

    fn where_(&self) -> String {
        format!(
            "{}/{} on {}",
            self.project.name,
            self.service,
            self.shell.location()
        )
    }

    /// The image of `release`.
    fn image_of(&self, release: &ReleaseSpec) -> String {
        crate::target::image_of(&self.image_repo, &release.id)
    }

    /// The image one-off containers use: `release`'s if it is staged yet (apply,
    /// revert), else the live container's (plan runs before prepare; the tool in the
    /// live image reads the database's revision just as well).
    async fn run_image(&self, release: Option<&ReleaseSpec>) -> Result<Option<String>> {
        if let Some(release) = release {
            let image = self.image_of(release);
            if self.engine.image_exists(&image).await? {
                return Ok(Some(image));
            }
        }
        Ok(self
            .engine
            .service_container(&self.project.name, &self.service)
            .await?
            .filter(|c| c.status == "running")
            .map(|c| c.image))
    }

    async fn run(&self, step: &str, image: &str, argv: &[String]) -> Result<String> {
        let pin = PinFile::new(
            &self.state_dir,
            &self.project.name,
            &self.run_service,
            "oneoff",
        );
        pin.write(self.shell.as_ref(), &self.run_service, image)
            .await?;
        let cmd = self.project.run(&self.run_service, &pin.path, argv);
        let out = self.shell.run(&cmd, None).await?;
        if out.success() {
            Ok(out.stdout_text())
        } else {
            Err(Error::from(CommandFailed::new(
                step,
                &self.where_(),
                &cmd,
                &out,
            )))
        }
    }

    /// Waits for one-off containers a killed run left running (see
    /// [`crate::orphaned_runs`]): called before a run's first revision read.
    async fn settle_orphans(&self) -> Result<()> {
        if self.revision.is_none() {
            return Ok(());
        }
        crate::orphaned_runs::settle_orphaned_runs(
            &self.engine,
            &self.project.name,
            &self.run_service,
            self.orphan_wait,
        )
        .await
        .map(|_| ())
    }

    async fn current_revision(
        &self,
        step: &str,
        release: Option<&ReleaseSpec>,
    ) -> Result<Option<String>> {
        let Some(argv) = &self.revision else {
            return Ok(None);
        };
        revisions::current(&OneOffRunner(self, release), step, &cmd_of(argv)).await
    }
}

/// The tool runs in a one-off container: of the release's image when it is staged,
/// else of the live container's (see `run_image`).
struct OneOffRunner<'a>(&'a ComposeRunMigrator, Option<&'a ReleaseSpec>);

#[async_trait]
impl RevisionRunner for OneOffRunner<'_> {
    fn location(&self) -> String {
        self.0.where_()
    }

    async fn read(&self, step: &str, cmd: &Cmd) -> Result<Option<String>> {
        let Some(image) = self.0.run_image(self.1).await? else {
            return Ok(None);
        };
        self.0.run(step, &image, &argv_of(cmd)).await.map(Some)
    }

    async fn run(&self, step: &str, cmd: &Cmd) -> Result<()> {
        let Some(image) = self.0.run_image(self.1).await? else {
            let wanted = match self.1 {
                Some(release) => format!("the release image {}", self.0.image_of(release)),
                None => "a release image".to_string(),
            };
            return Err(Error::part(
                step,
                self.0.where_(),
                format!("neither {wanted} nor a live container exists to run the revert in"),
            ));
        };
        self.0.run(step, &image, &argv_of(cmd)).await.map(|_| ())
    }

    fn revert_mismatch_step(&self, started_at: &str) -> NextStep {
        NextStep::Recover {
            env: None,
            first: Some(format!(
                "run the revert with the image of the release that applied {started_at}"
            )),
        }
    }
}

/// A configured argv as a command (the container's own working directory applies).
fn cmd_of(argv: &[String]) -> Cmd {
    match argv.split_first() {
        Some((program, args)) => Cmd::new(program.clone()).args(args.iter().cloned()),
        None => Cmd::new(String::new()),
    }
}

/// The command as the argv `compose run` passes to the container.
fn argv_of(cmd: &Cmd) -> Vec<String> {
    std::iter::once(cmd.program.clone())
        .filter(|p| !p.is_empty())
        .chain(cmd.args.iter().cloned())
        .collect()
}

#[async_trait]
impl Migrator for ComposeRunMigrator {
    async fn status(&self, _release: Option<&ReleaseSpec>) -> Result<MigrationStatus> {
        // The tool alone knows what is pending; running it is idempotent.
        Ok(MigrationStatus {
            pending: vec![self.step_id()],
            ..Default::default()
        })
    }

    async fn plan(&self, release: Option<&ReleaseSpec>) -> Result<MigrationPlan> {
        self.settle_orphans().await?;
        let from_revision = self.current_revision("migrate.plan", release).await?;
        Ok(MigrationPlan {
            migrations: vec![PlannedMigration {
                id: self.step_id(),
                reversible: self.revert.is_some() && self.revision.is_some(),
                findings: Vec::new(),
                allowed: false,
                all_or_nothing: false,
            }],
            from_revision,
            origin: None,
            release: release.cloned(),
        })
    }

    async fn apply(&self, plan: &MigrationPlan) -> Result<AppliedSet> {
        if plan.is_empty() {
            return Ok(plan.as_applied());
        }
        let Some(release) = &plan.release else {
            return Err(Error::Refused {
                reason: format!(
                    "`{}` runs in a container of the release being deployed, and the plan \
                     names no release",
                    self.apply.join(" ")
                ),
                next: "plan for the release being deployed (a deploy does)".into(),
            });
        };
        let image = self.image_of(release);
        if !self.engine.image_exists(&image).await? {
            return Err(Error::part(
                "migrate",
                self.where_(),
                format!("the new release image {image} does not exist"),
            )
            .with_hint("prepare the release before migrating"));
        }
        self.run("migrate", &image, &self.apply)
            .await
            .map_err(|e| {
                e.with_hint(
                    "the live container was not touched; fix the migration and deploy again",
                )
            })?;
        let revision_after = self.current_revision("migrate", Some(release)).await?;
        Ok(AppliedSet {
            migrations: plan.migrations.iter().map(|m| m.id.clone()).collect(),
            revision_before: plan.from_revision.clone(),
            revision_after,
            origin: None,
            release: plan.release.clone(),
        })
    }

    async fn revert(&self, applied: &AppliedSet) -> Result<()> {
        let (Some(revert), Some(revision)) = (&self.revert, &self.revision) else {
            return Err(Error::Refused {
                reason: format!(
                    "`{}` has no revert and revision commands, so it cannot be undone",
                    self.apply.join(" ")
                ),
                next: "configure both, or use the `keep` or `restore` migration failure policy"
                    .into(),
            });
        };
        self.settle_orphans().await?;
        revisions::revert_to(
            &OneOffRunner(self, applied.release.as_ref()),
            &RevisionCommands {
                current: cmd_of(revision),
                down_to: cmd_of(revert),
                base_revision: Some(self.base_revision.clone()),
            },
            applied.revision_before.as_deref(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_argv_round_trips_through_a_command() {
        let argv: Vec<String> = ["alembic", "downgrade", "{revision}"]
            .map(String::from)
            .to_vec();
        assert_eq!(argv_of(&cmd_of(&argv)), argv);
        assert!(argv_of(&cmd_of(&[])).is_empty());
    }
}
