//! The command line: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Transactional deploys: back up, migrate, ship, verify — and undo exactly what was
/// done when anything fails.
///
/// Exit codes: 0 succeeded, 1 failed and rolled back, 2 usage or config error,
/// 3 rollback failed or interrupted (a human is needed), 4 environment locked,
/// 5 refused before any change (a gate, a preflight check, a declined prompt).
#[derive(Debug, Parser)]
#[command(name = "deploykit", version, propagate_version = true)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "DEPLOYKIT_CONFIG",
        default_value = "deploykit.toml"
    )]
    pub config: PathBuf,
    /// One JSON object per line on stdout; the last one is the outcome.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy a commit: preflight, prepare ∥ backup, migrate, activate, verify, commit.
    Deploy(DeployArgs),
    /// Make an earlier, still-staged release live again (the previous one by default).
    ///
    /// Code only: schema changes of newer releases stay; revert them with
    /// `migrate revert --run RUN` if the old code needs the old schema.
    Rollback(RollbackArgs),
    /// What is live, who holds the lock, and whether a run needs recovering.
    Status(EnvArg),
    /// Past runs with deployment frequency, change-failure rate and time to restore.
    History(HistoryArgs),
    /// Create, list, verify or restore database backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Migration status, plan, apply or revert.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Run the health probes once.
    Health(EnvArg),
    /// The last lines a release's processes (PM2) or containers (Compose) printed,
    /// read from the hosts.
    Logs(LogsArgs),
    /// Finish the undo (or the commit) of runs whose process stopped or whose undo failed.
    Recover(RecoverArgs),
    /// Show the deploy lock, freeze deploys (acquire), or release it.
    #[command(subcommand)]
    Lock(LockCommand),
    /// Manage where the environment's state (journals, history, lock) lives.
    #[command(subcommand)]
    State(StateCommand),
    /// Check secrets files against the rules (no defaults, minimum lengths).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Show the config with secrets redacted.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write a starting deploykit.toml for a PM2 or a Compose project.
    Init(InitArgs),
    /// Run the real pipeline locally with no external services: v1, v2, then a broken
    /// v3 that is rolled back.
    Demo(DemoArgs),
    /// The demo's bundled HTTP app (used by `demo`).
    #[command(hide = true)]
    DemoApp(DemoAppArgs),
}

/// Selects an environment.
#[derive(Debug, Args)]
pub struct EnvArg {
    /// The environment, as named in the config.
    #[arg(long, short = 'e')]
    pub env: String,
}

/// `deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The environment, as named in the config.
    #[arg(long, short = 'e')]
    pub env: String,
    /// The git ref to deploy, resolved to an exact commit in the repository holding
    /// the config file (or a local target's `repo`).
    #[arg(long = "ref", default_value = "HEAD")]
    pub git_ref: String,
    /// Release id to use instead of `<UTC time>-<short commit>`.
    #[arg(long)]
    pub release: Option<String>,
    /// Print the plan (release, pending migrations, lint findings) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation on a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Approver's name, required by protected environments; recorded in the journal.
    #[arg(long, value_name = "NAME")]
    pub approve: Option<String>,
    /// Plan although SQL migrations that already ran were edited since (checksum
    /// drift): the edited files are taken as they are now, and only pending ones run.
    /// Without it, drift refuses the deploy (exit 5).
    #[arg(long)]
    pub accept_drift: bool,
    /// The tag of the image CI built for this commit, for a Compose target with
    /// `image_source = "pull"` or `"present"`: deploys `<source_image>:<TAG>`
    /// without building on the host.
    #[arg(long, value_name = "TAG")]
    pub image_tag: Option<String>,
    /// Why this run, in a line: shown to anyone its lock refuses or keeps waiting
    /// (`lock status`, `status`, a second deploy's exit 4), and kept in the run's
    /// journal, so `history` shows it.
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: Option<String>,
    /// The release tarball CI built from this commit (`.tar.gz`), for a PM2
    /// target with `source = "artifact"`: hashed once here, uploaded to every
    /// host, checked there, unpacked; the target's `artifact_build` is not run.
    #[arg(long, value_name = "PATH")]
    pub artifact: Option<std::path::PathBuf>,
    /// Waiting for a held lock.
    #[command(flatten)]
    pub wait: LockWaitArg,
}

/// `--lock-wait`, on every command that takes the environment's lock.
#[derive(Debug, Clone, Copy, Args)]
pub struct LockWaitArg {
    /// When another deploy (or a freeze) holds the environment's lock, wait for it
    /// up to SECS (600 if no value is given), saying who holds it every few
    /// seconds, instead of exiting 4 at once; exit 4 if it is still held then. A
    /// stale lock (its holder gone) is refused at once: waiting never frees it.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "600")]
    pub lock_wait: Option<u64>,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// The release whose processes to read (default: the live one). PM2 keeps one
    /// log file per instance across releases, so a release rolled back since is
    /// found in its instances' files.
    #[arg(long)]
    pub release: Option<String>,
    /// How many lines per process (or container) and stream.
    #[arg(long, short = 'n', default_value_t = 30)]
    pub lines: usize,
}

/// `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// The release to go back to (default: the one live before the last successful deploy).
    #[arg(long)]
    pub to: Option<String>,
    /// Approver's name for protected environments.
    #[arg(long, value_name = "NAME")]
    pub approve: Option<String>,
    /// Why this run, in a line: shown to anyone its lock refuses or keeps waiting
    /// (`lock status`, `status`, a second deploy's exit 4), and kept in the run's
    /// journal, so `history` shows it.
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: Option<String>,
    /// Waiting for a held lock.
    #[command(flatten)]
    pub wait: LockWaitArg,
}

/// `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// Only runs from the last N days.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
}

/// `backup …`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a verified backup now.
    Create(EnvArg),
    /// List complete backups, oldest first.
    List(EnvArg),
    /// Check a backup's size, checksum and format.
    Verify(BackupPick),
    /// Replace the database's contents with a backup (destructive).
    Restore(RestoreArgs),
    /// Copy this environment's backups from a local directory into its
    /// configured `store` (after switching from `dir`), keeping names and metadata.
    Push(PushArgs),
}

/// `backup push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// The local backup directory to copy from (the old `dir`), relative to the
    /// config file.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
}

/// Picks a backup.
#[derive(Debug, Args)]
pub struct BackupPick {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// The artifact's path (default: the newest).
    pub path: Option<PathBuf>,
}

/// `backup restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// The artifact's path.
    pub path: PathBuf,
    /// Confirms that the database's current contents will be replaced.
    #[arg(long)]
    pub yes_replace_live_data: bool,
    /// Restores an artifact taken in another environment (or from another
    /// database) on purpose; names the environment it was taken in.
    #[arg(long, value_name = "ENV")]
    pub from_env: Option<String>,
}

/// `migrate …`.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Applied, pending, missing and drifted migrations, as commit `--ref` has them.
    Status(MigrateReadArgs),
    /// Pending migrations of commit `--ref`, with lint findings.
    Plan(MigrateReadArgs),
    /// Back up, then apply commit `--ref`'s pending migrations (outside a deploy).
    Apply(ApplyArgs),
    /// Revert the migrations a given run applied, newest first, with the down
    /// scripts or tool of the commit that run deployed.
    Revert(RevertArgs),
    /// Lint commit `--ref`'s SQL migrations offline (no database, hosts or secrets):
    /// exit 1 on a finding without an allow marker. For CI on pull requests.
    Lint(MigrateLintArgs),
}

/// `migrate lint`.
#[derive(Debug, Args)]
pub struct MigrateLintArgs {
    /// The environment whose migrations to lint (default: every environment's).
    #[arg(long, short = 'e')]
    pub env: Option<String>,
    /// Which commit's migrations.
    #[command(flatten)]
    pub from: MigrateRef,
}

/// The commit migrations are read from. Uncommitted files in the migrations
/// directory are ignored (with a warning): they are in no release.
#[derive(Debug, Args)]
pub struct MigrateRef {
    /// The git ref whose migrations to read (default HEAD), resolved like `deploy
    /// --ref`. Outside a git repository the directory is read as it is.
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
}

/// `migrate status` and `migrate plan`.
#[derive(Debug, Args)]
pub struct MigrateReadArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// Which commit's migrations.
    #[command(flatten)]
    pub from: MigrateRef,
}

/// `migrate apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// Which commit's migrations.
    #[command(flatten)]
    pub from: MigrateRef,
    /// Approver's name, required for protected environments.
    #[arg(long)]
    pub approve: Option<String>,
    /// Waiting for a held lock.
    #[command(flatten)]
    pub wait: LockWaitArg,
}

/// `migrate revert`.
#[derive(Debug, Args)]
pub struct RevertArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// The run whose migrations to revert: its id, as `history` shows it.
    #[arg(long)]
    pub run: String,
    /// Approver's name, required for protected environments.
    #[arg(long)]
    pub approve: Option<String>,
    /// Waiting for a held lock.
    #[command(flatten)]
    pub wait: LockWaitArg,
}

/// `lock …`.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Who holds the lock, since when, and whether it looks stale.
    Status(EnvArg),
    /// Freeze deploys: hold the lock as a person, with a message, until `lock
    /// release`. Every deploy, rollback and migration is refused (exit 4) meanwhile,
    /// showing the message. The freeze lives where the lock lives (on the state
    /// host for PM2 and SSH Compose), so it outlives this machine.
    Acquire(LockAcquireArgs),
    /// Release a freeze, a stale lock, or (with --force) any lock.
    Release(LockReleaseArgs),
}

/// `lock acquire`.
#[derive(Debug, Args)]
pub struct LockAcquireArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// Why deploys are frozen, shown to everyone refused meanwhile.
    #[arg(long, short = 'm')]
    pub message: String,
    /// Waiting for a held lock (a running deploy) before freezing.
    #[command(flatten)]
    pub wait: LockWaitArg,
}

/// `deploykit state …`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy the environment's local journals (state_dir) into its state store on
    /// the host; runs already there are skipped, so running it twice is safe.
    Import(EnvArg),
}

/// `lock release`.
#[derive(Debug, Args)]
pub struct LockReleaseArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// Release even if the holder looks alive (a running deploy's lock). A freeze
    /// needs no --force.
    #[arg(long)]
    pub force: bool,
}

/// `recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// Take the lock even from a holder whose lease is still running (its machine
    /// died a moment ago). Prints whom it overrides.
    #[arg(long)]
    pub force: bool,
    /// Waiting for a held lock.
    #[command(flatten)]
    pub wait: LockWaitArg,
}

/// `secrets …`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Check an env file: no default or placeholder values, minimum lengths.
    Check(SecretsCheckArgs),
}

/// `secrets check`.
#[derive(Debug, Args)]
pub struct SecretsCheckArgs {
    /// Use this environment's `[secrets]` rules and env file.
    #[arg(long, short = 'e')]
    pub env: Option<String>,
    /// The env file to check (overrides the environment's).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// `config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the config as deploykit reads it: `[defaults]` merged into each
    /// environment, `${VAR}`s filled, secrets redacted.
    Show {
        /// Print only this environment, resolved.
        #[arg(long)]
        env: Option<String>,
    },
}

/// Project kinds `init` scaffolds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitKind {
    /// A Node app under PM2 on SSH hosts.
    Pm2,
    /// A Docker Compose stack (target strategy "stop_first" or "start_first", see docs/CONFIG.md).
    Compose,
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The kind of project. Default: from the project's files (an ecosystem file
    /// means pm2, a compose file compose).
    #[arg(long, value_enum)]
    pub kind: Option<InitKind>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's directory instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

/// `demo-app`.
#[derive(Debug, Args)]
pub struct DemoAppArgs {
    /// Port to listen on (127.0.0.1).
    #[arg(long)]
    pub port: u16,
}
