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
//! * [`ComposeRunMigrator`]: the migration command runs in a one-off container of
//!   the *new* image before the switch, so a failing migration never touches live
//!   traffic.
//! * [`ExecPgDumpBackup`]: `pg_dump` inside the database service's container through
//!   an engine exec, streamed into a checksummed artifact; any failure is an error.
//! * [`ContainerHealthProbe`]: the container's health as a verify-phase probe.
//!
//! # Why bollard and the compose CLI
//!
//! Engine state (containers by compose labels, health, tags, exec) comes from the
//! engine API through [`Engine`]; Compose has no API, so its commands are built as
//! argument vectors by pure functions in [`compose`] and run through a core
//! [`Shell`](deploykit_core::Shell) — local, or the run's SSH session. A remote
//! engine is reached through its socket forwarded over that same session, so local
//! and remote use one code path.
#![warn(missing_docs, unreachable_pub)]

pub mod backup;
pub mod compose;
pub mod engine;
pub mod migrate;
pub mod pin;
pub mod probe;
#[cfg(feature = "ssh")]
pub mod remote;
pub mod target;

pub use backup::ExecPgDumpBackup;
pub use compose::{ComposeCli, ComposeProject};
pub use engine::{ContainerState, Engine, Health};
pub use migrate::ComposeRunMigrator;
pub use pin::PinFile;
pub use probe::ContainerHealthProbe;
pub use target::{ComposeTarget, ImageSource};
