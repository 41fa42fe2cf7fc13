//! A [`Shell`] that runs through another one and writes down every command it ran,
//! with the deploy phase it ran in and how long it took: how the tests count a
//! deploy's round trips and `pm2` start-ups per host, and how
//! `examples/deploy_commands.rs` times them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deploykit_core::shell::Output;
use deploykit_core::{Cmd, Event, EventSink, Result, Shell};

/// One command as it ran.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The phase the pipeline was in (`-` outside phases).
    pub phase: String,
    /// The command as shown in logs (secrets redacted).
    pub command: String,
    /// The program and its first arguments, shortened: what the command is.
    pub what: String,
    /// Whether it started a `pm2` CLI (a Node start-up on the host).
    pub pm2: bool,
    /// How long the round trip took.
    pub took: Duration,
    /// Its exit status (`None`: the shell failed before the command ran).
    pub status: Option<i32>,
}

/// The phase the pipeline is in, set from its events.
#[derive(Default)]
pub struct CurrentPhase(Mutex<String>);

impl EventSink for CurrentPhase {
    fn emit(&self, event: &Event) {
        match event {
            Event::PhaseStarted { phase } => *self.0.lock().unwrap() = phase.to_string(),
            Event::PhaseFinished { .. } => *self.0.lock().unwrap() = "-".into(),
            _ => {}
        }
    }
}

/// Runs every command through `inner` and records it.
pub struct RecordingShell {
    inner: Arc<dyn Shell>,
    phase: Arc<CurrentPhase>,
    pm2: String,
    log: Mutex<Vec<Ran>>,
}

impl RecordingShell {
    /// Records what runs on `inner`; `pm2` is the configured pm2 program, and
    /// `phase` the sink given to the pipeline's events.
    pub fn new(inner: Arc<dyn Shell>, pm2: &str, phase: Arc<CurrentPhase>) -> Self {
        Self {
            inner,
            phase,
            pm2: pm2.to_string(),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Everything recorded so far, and forgets it.
    pub fn take(&self) -> Vec<Ran> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn describe(&self, cmd: &Cmd) -> (String, bool) {
        let argv: Vec<&str> = std::iter::once(cmd.program.as_str())
            .chain(cmd.args.iter().map(String::as_str))
            .collect();
        let pm2_at = argv.iter().position(|a| *a == self.pm2);
        let what = match (argv[0], pm2_at) {
            (_, Some(i)) => format!("pm2 {}", argv.get(i + 1).copied().unwrap_or("")),
            ("sh", _) => {
                // A fixed script: name it by its first line that does something.
                let script = argv.get(2).copied().unwrap_or("");
                let first = script
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && *l != "set -e" && !l.starts_with('#'))
                    .unwrap_or("");
                format!("sh -c '{}…'", first.chars().take(40).collect::<String>())
            }
            (program, _) => argv
                .iter()
                .take(if program == "git" { 4 } else { 2 })
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        };
        (what, pm2_at.is_some())
    }
}

#[async_trait]
impl Shell for RecordingShell {
    fn location(&self) -> &str {
        self.inner.location()
    }

    async fn run(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output> {
        let phase = self.phase.0.lock().unwrap().clone();
        let started = Instant::now();
        let out = self.inner.run(cmd, stdin).await;
        let (what, pm2) = self.describe(cmd);
        self.log.lock().unwrap().push(Ran {
            phase: if phase.is_empty() { "-".into() } else { phase },
            command: cmd.to_string(),
            what,
            pm2,
            took: started.elapsed(),
            status: out.as_ref().ok().map(|o| o.status),
        });
        out
    }
}
