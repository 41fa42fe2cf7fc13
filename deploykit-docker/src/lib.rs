//! deploykit-docker: deploy Docker Compose stacks transactionally.
//!
//! The hand-written way (see the project's seeds) tags the running image `:rollback`,
//! stops and removes the container, starts the new one, only then runs the migration
//! inside it, and carries on with a warning when the pre-deploy `pg_dump` fails. This
//! crate gives deploykit's pipeline the parts to do it the other way round:
//!
//! * [`ComposeTarget`]: every release is an immutable image tag `<repo>:<release-id>`;
//!   activating pins the service to that tag in an override file deploykit writes,
//!   re-creates only that service, and waits for the container's own HEALTHCHECK.
//!   Rolling back re-pins the previous tag, so it never depends on a mutable tag.
//!   Opt-in start-first activation ([`Strategy`]) keeps the old container serving
//!   until the new one is healthy.
//! * [`ComposeRunMigrator`]: the migration command runs in a one-off container of
//!   the *new* image before the switch, so a failing migration never touches live
//!   traffic.
//! * [`ExecPgDumpBackup`]: `pg_dump` inside the database service's container through
//!   an engine exec, streamed into a checksummed artifact; any failure is an error.
//! * [`ContainerHealthProbe`]: the container's health as a verify-phase probe.
//! * [`ComposeServices`]: several services (web and worker) as one release that
//!   switches, is verified and rolls back together.
//!
//! ```no_run
//! # async fn wire() -> deploykit_core::Result<()> {
//! use std::sync::Arc;
//! use deploykit_core::{LocalShell, Pipeline, ReleaseId};
//! use deploykit_docker::{
//!     ComposeCli, ComposeProject, ComposeRunMigrator, ComposeTarget, ContainerHealthProbe,
//!     Engine, ExecPgDumpBackup,
//! };
//!
//! let shell = Arc::new(LocalShell::new());
//! let engine = Engine::connect("/var/run/docker.sock", "local docker engine").await?;
//! let cli = ComposeCli::detect(shell.as_ref()).await?;
//! let project = ComposeProject::new("crm", vec!["/srv/crm/docker-compose.yml".into()], cli)?
//!     .env_file("/srv/crm/.env.production");
//! let target = Arc::new(ComposeTarget::new(shell, engine.clone(), project, "backend", "crm/backend")?);
//! let migrate = ["npx", "prisma", "migrate", "deploy"].map(String::from).to_vec();
//! let pipeline = Pipeline::new("production")
//!     .target(target.clone())
//!     .migrator(Arc::new(ComposeRunMigrator::new(&target, migrate)))
//!     .backup(Arc::new(ExecPgDumpBackup::new(engine.clone(), "crm", "postgres", "crm", "crm_user", "/var/backups/crm")))
//!     .probe(Arc::new(ContainerHealthProbe::new(engine, "crm", "backend")));
//! # let _ = pipeline; Ok(()) }
//! ```
//!
//! # Why bollard and the compose CLI
//!
//! Engine state (containers by compose labels, health, tags, exec) comes from the
//! engine API through [`Engine`]; Compose has no API, so its commands are built as
//! argument vectors by pure functions in [`compose`] and run through a core
//! [`Shell`](deploykit_core::Shell) — local, or the run's SSH session. A remote
//! engine is reached through its socket forwarded over that same session, so local
//! and remote use one code path ([`remote::connect_over_ssh`], feature `ssh`).
//!
//! # Known limits
//!
//! * By default ([`Strategy::StopFirst`]) replacing a container is not zero-downtime:
//!   Compose stops the old container before the new one binds the same port
//!   (measured in docs/BENCHMARKS.md). [`Strategy::StartFirst`] starts the new
//!   container next to the old one and stops the old one only once the new one is
//!   healthy; it needs a service without `container_name` or a fixed host port
//!   (put a proxy in front), and under `network_mode: host` an app that binds with
//!   `SO_REUSEPORT`.
//! * Compose v1 cannot `run` a one-off container of a `network_mode: host` service
//!   while that service runs (it links the two); give the migrator a separate
//!   service with [`ComposeRunMigrator::run_service`].
//! * A command migrator's tool keeps its own history, so its plan is one step, "run
//!   the command"; undo needs a revision and a revert command.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backup;
pub mod commit_build;
pub mod compose;
pub mod engine;
pub mod migrate;
pub mod orphaned_runs;
pub mod pin;
pub mod probe;
#[cfg(feature = "ssh")]
#[cfg_attr(docsrs, doc(cfg(feature = "ssh")))]
pub mod remote;
pub mod services;
pub mod strategy;
pub mod swarm;
pub mod target;

pub use backup::ExecPgDumpBackup;
pub use compose::{ComposeCli, ComposeProject};
pub use engine::{ContainerState, Engine, Health};
pub use migrate::ComposeRunMigrator;
pub use pin::PinFile;
pub use probe::ContainerHealthProbe;
pub use services::ComposeServices;
pub use strategy::{StartFirstSettings, Strategy, StrategyChoice};
pub use swarm::SwarmTarget;
pub use target::{ComposeTarget, ImageSource};
