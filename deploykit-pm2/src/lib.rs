//! deploykit-pm2: deploy PM2 apps over SSH (or on the box itself) with release
//! directories, zero-downtime reloads and rollback in seconds.
//!
//! # Why
//!
//! The usual PM2 deploy runs `git pull && pnpm install && pnpm build && pm2 restart`
//! in place: the live app runs against half-updated files while it builds, and
//! "rollback" is `git reset --hard HEAD~1` plus a full reinstall and rebuild —
//! minutes of broken service, and the wrong commit when more than one was pulled.
//!
//! Here every release gets its own directory, built while the old one keeps
//! serving; going live is an atomic `current` symlink swap plus
//! `pm2 startOrReload --update-env` (worker-by-worker in cluster mode); going back
//! is the same swap to the release that was live before — still built on disk.
//!
//! # The ecosystem file
//!
//! Activation runs `pm2 startOrReload <deploy_to>/current/<ecosystem> --update-env
//! --only <app>` with `DEPLOYKIT_APP_DIR=<deploy_to>/current` and
//! `DEPLOYKIT_RELEASE=<id>` in its environment. Set the app's `cwd` to
//! `process.env.DEPLOYKIT_APP_DIR` (not `__dirname`, which Node resolves to the
//! release directory): PM2 then keeps one stable path across releases and each
//! reload starts workers in whatever `current` points at. See
//! `examples/node-app/ecosystem.config.js`. A cluster-mode app should finish
//! in-flight requests on `SIGINT` for reloads without failed requests.
//!
//! # Several apps per release
//!
//! A web app and its worker from one ecosystem file are one release:
//! [`Pm2Config::with_app`] adds the worker. The prepare checks the file has
//! every app; the activation switches `current` once, runs every cluster-mode
//! app's canary before any live worker is reloaded, then reloads (or starts)
//! each app; the [`Pm2Probe`] judges every app; going back reloads every app
//! and deletes an app the older release does not have.
//!
//! # Parts
//!
//! - [`Pm2Target`]: the core [`Target`](deploykit_core::Target) for a release's
//!   apps on one host, over any [`Shell`](deploykit_core::Shell) (`SshShell`, `LocalShell`).
//! - [`Pm2Probe`]: a [`HealthProbe`](deploykit_core::HealthProbe) reading
//!   `pm2 jlist`: all instances online, each running the release `current`
//!   points at and up for at least a settle window.
//! - [`ADOPTED`]: the release id of an app PM2 ran before deploykit's first
//!   deploy, taken over only with `adopt_running` (otherwise refused).
//! - Many hosts: wrap one [`Pm2Target`] per host in core's
//!   [`Fleet`](deploykit_core::Fleet) (all at once or in rolling batches; a failure
//!   on any host switches every host back).
//! - [`Pm2HostLock`]: the deploy lock as a file on the host, so deployers on
//!   different machines exclude each other.
//! - [`commands`]: every command as data.
//!
//! ```no_run
//! # async fn demo() -> deploykit_core::Result<()> {
//! use std::sync::Arc;
//! use deploykit_core::{Cmd, Pipeline, shell::{SshConfig, SshShell}};
//! use deploykit_pm2::{Pm2Config, Pm2Probe, Pm2Target, Source};
//!
//! let ssh = Arc::new(SshShell::connect(
//!     &SshConfig::new("app.example.com").user("deploy").key_file("/ci/deploy_key"),
//! ).await?);
//! let config = Pm2Config::new("web", "/srv/web", Source::Git {
//!     repo: "git@github.com:me/web.git".into(),
//! })
//! .build_step(Cmd::new("pnpm").args(["install", "--frozen-lockfile"]))
//! .build_step(Cmd::new("pnpm").args(["run", "build"]));
//! let pipeline = Pipeline::new("production")
//!     .target(Arc::new(Pm2Target::new(ssh.clone(), config.clone())?))
//!     .probe(Arc::new(Pm2Probe::new(ssh.clone(), config).instances(2)));
//! # let _ = pipeline; Ok(()) }
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

mod adopt;
pub mod commands;
mod config;
mod gate;
mod host_lock;
pub mod jlist;
mod layout;
mod logs;
mod ownership;
mod probe;
mod settle;
mod stage_artifact;
mod tarball;
mod target;

pub use adopt::ADOPTED;
pub use config::{Pm2Config, Source};
pub use host_lock::Pm2HostLock;
pub use layout::Layout;
pub use probe::Pm2Probe;
pub use stage_artifact::recorded_artifact;
pub use tarball::Tarball;
pub use target::Pm2Target;

/// Compile-time proof that the parts stay usable as trait objects.
#[allow(dead_code)]
fn _object_safe(_: Box<dyn deploykit_core::Target>, _: Box<dyn deploykit_core::HealthProbe>) {}
