//! The `deploykit` binary: parse, dispatch, print `{:#}` errors, exit with the
//! documented code. Everything else lives in the modules.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod config;
mod demo_app;
mod exit;
mod hook_runner;
mod hosts;
mod notify;
mod render;
mod source_artifact;
mod source_image;
mod state;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use cli::{
    BackupCommand, Cli, Command, ConfigCommand, LockCommand, MigrateCommand, SecretsCommand,
    StateCommand,
};
use render::Mode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    if let Command::DemoApp(a) = &cli.command {
        return match demo_app::serve(a.port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo-app: {e}");
                ExitCode::from(exit::FAILED)
            }
        };
    }
    let mode = Mode::detect(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(dispatch(&cli, mode)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit::for_error(&err);
            // The library's next steps, worded as this program's commands.
            let worded = render::next_step::word_error(&err, env_of(&cli.command));
            // Errors quote commands and tool output: no secret leaves through them.
            let text = deploykit_core::redact(&worded, &[]);
            if mode == Mode::Json {
                let step = err
                    .chain()
                    .filter_map(|c| c.downcast_ref::<deploykit_core::Error>())
                    .find_map(deploykit_core::Error::next_step);
                crate::render::json::print_event(serde_json::json!({
                    "event": "error", "error": text, "next_step": step, "exit_code": code,
                }));
            } else {
                eprintln!("error: {text}");
            }
            ExitCode::from(code)
        }
    }
}

/// The environment a command runs for, to name in the next steps of its errors.
fn env_of(command: &Command) -> Option<&str> {
    let env = match command {
        Command::Deploy(a) => &a.env,
        Command::Rollback(a) => &a.env,
        Command::Status(a) | Command::Health(a) => &a.env,
        Command::History(a) => &a.env,
        Command::Recover(a) => &a.env,
        Command::Lock(LockCommand::Status(a)) => &a.env,
        Command::Lock(LockCommand::Release(a)) => &a.env,
        Command::State(StateCommand::Import(a)) => &a.env,
        Command::Backup(BackupCommand::Create(a) | BackupCommand::List(a)) => &a.env,
        Command::Backup(BackupCommand::Verify(a)) => &a.env,
        Command::Backup(BackupCommand::Restore(a)) => &a.env,
        Command::Backup(BackupCommand::Push(a)) => &a.env,
        Command::Migrate(MigrateCommand::Status(a) | MigrateCommand::Plan(a)) => &a.env,
        Command::Migrate(MigrateCommand::Apply(a)) => &a.env,
        Command::Migrate(MigrateCommand::Revert(a)) => &a.env,
        Command::Migrate(MigrateCommand::Lint(a)) => return a.env.as_deref(),
        _ => return None,
    };
    Some(env)
}

async fn dispatch(cli: &Cli, mode: Mode) -> anyhow::Result<u8> {
    let config = cli.config.as_path();
    match &cli.command {
        Command::Deploy(a) => commands::deploy::run(config, a, mode).await,
        Command::Rollback(a) => commands::rollback::run(config, a, mode).await,
        Command::Status(a) => commands::status::run(config, a, mode).await,
        Command::History(a) => commands::history::run(config, a, mode).await,
        Command::Backup(c) => commands::backup::run(config, c, mode).await,
        Command::Migrate(c) => commands::migrate::run(config, c, mode).await,
        Command::Health(a) => commands::health::run(config, a, mode).await,
        Command::Logs(a) => commands::logs::run(config, a, mode).await,
        Command::Recover(a) => commands::recover::run(config, a, mode).await,
        Command::Lock(LockCommand::Status(a)) => commands::lock::status(config, a, mode).await,
        Command::Lock(LockCommand::Acquire(a)) => commands::lock::acquire(config, a, mode).await,
        Command::Lock(LockCommand::Release(a)) => commands::lock::release(config, a, mode).await,
        Command::State(StateCommand::Import(a)) => commands::state::import(config, a, mode).await,
        Command::Secrets(SecretsCommand::Check(a)) => commands::secrets::run(config, a, mode),
        Command::Config(ConfigCommand::Show { env }) => {
            commands::config_show::run(config, env.as_deref(), mode)
        }
        Command::Init(a) => commands::init::run(config, a),
        Command::Demo(a) => commands::demo::run(a, mode).await,
        Command::DemoApp(_) => unreachable!("handled before the runtime starts"),
    }
}
