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
mod source_image;
mod state;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand, LockCommand, SecretsCommand, StateCommand};
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
            // Errors quote commands and tool output: no secret leaves through them.
            let text = deploykit_core::redact(&format!("{err:#}"), &[]);
            if mode == Mode::Json {
                crate::render::json::print_event(
                    serde_json::json!({"event": "error", "error": text, "exit_code": code}),
                );
            } else {
                eprintln!("error: {text}");
            }
            ExitCode::from(code)
        }
    }
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
