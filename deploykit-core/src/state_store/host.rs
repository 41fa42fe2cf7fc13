//! The state on the environment's host, over the SSH connection the run holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{StateStore, StoredRun};
use crate::error::{Error, Result};
use crate::host_lock::HostLock;
use crate::journal::{parse_records, redacted, JournalStore, Record};
use crate::lock::DeployLock;
use crate::shell::{Cmd, Shell};

mod commands;

/// The environment's journals as `<dir>/journal/<env>/<run_id>.jsonl` and its lock
/// as `<dir>/lock.json` on one host (PM2: `<deploy_to>/.deploykit`).
///
/// Every append is written and fsynced on the host before it returns, in one
/// round trip over the multiplexed connection, so the record is durable there
/// before the side effect it announces. Files are owner-only (0600, dirs 0700).
pub struct HostStore {
    shell: Arc<dyn Shell>,
    dir: PathBuf,
    env: String,
    lock: Arc<HostLock>,
}

impl std::fmt::Debug for HostStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostStore")
            .field("host", &self.shell.location())
            .field("dir", &self.dir)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl HostStore {
    /// The state of `env` under `dir` on `shell`'s host (a relative `dir` is
    /// relative to the SSH user's home).
    pub fn new(shell: Arc<dyn Shell>, dir: impl Into<PathBuf>, env: impl Into<String>) -> Self {
        let dir = dir.into();
        let lock = Arc::new(HostLock::new(shell.clone(), dir.join("lock.json")));
        Self {
            shell,
            dir,
            env: env.into(),
            lock,
        }
    }

    fn journal_dir(&self) -> PathBuf {
        self.dir.join("journal").join(&self.env)
    }

    fn error(&self, path: &Path, message: impl Into<String>) -> Error {
        Error::Journal {
            path: PathBuf::from(format!("{}:{}", self.shell.location(), path.display())),
            message: message.into(),
        }
    }
}

#[async_trait]
impl StateStore for HostStore {
    fn location(&self) -> String {
        format!("{}:{}", self.shell.location(), self.dir.display())
    }

    async fn journal(&self, run_id: &str) -> Result<Arc<dyn JournalStore>> {
        crate::release::validate_name("run id", run_id, 200)?;
        Ok(Arc::new(HostJournal::new(
            self.shell.clone(),
            self.journal_dir().join(format!("{run_id}.jsonl")),
        )))
    }

    async fn runs(&self) -> Result<Vec<StoredRun>> {
        let dir = self.journal_dir();
        let cmd = commands::list(&dir);
        let out = self
            .shell
            .run(&cmd, None)
            .await
            .map_err(|e| self.error(&dir, format!("cannot list the journals: {e}")))?;
        if !out.success() {
            return Err(self.error(
                &dir,
                format!(
                    "cannot list the journals (exit {}): {}",
                    out.status,
                    out.tail(5)
                ),
            ));
        }
        let mut runs: Vec<StoredRun> = Vec::new();
        let mut current: Option<(String, String)> = None;
        let text = out.stdout_text();
        let mut flush = |c: Option<(String, String)>| -> Result<()> {
            if let Some((run_id, body)) = c {
                let path = dir.join(format!("{run_id}.jsonl"));
                let records = parse_records(&body, || {
                    PathBuf::from(format!("{}:{}", self.shell.location(), path.display()))
                })?;
                runs.push(StoredRun { run_id, records });
            }
            Ok(())
        };
        for line in text.split_inclusive('\n') {
            if let Some(name) = line.strip_prefix(commands::RUN_HEADER) {
                flush(current.take())?;
                current = Some((name.trim_end().to_string(), String::new()));
            } else if let Some((_, body)) = current.as_mut() {
                body.push_str(line);
            }
        }
        flush(current.take())?;
        runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        Ok(runs)
    }

    fn lock(&self) -> Arc<dyn DeployLock> {
        self.lock.clone()
    }
}

/// What this process knows of the journal file on the host: its size and records
/// as of its last read or append. An append is a compare-and-append on that size,
/// so a record another process (a recover) added meanwhile is read and checked
/// against before this one goes in, in the normal case without an extra round trip.
struct Known {
    size: u64,
    records: Vec<Record>,
    ends_with_newline: bool,
}

/// One run's journal file on a host.
pub struct HostJournal {
    shell: Arc<dyn Shell>,
    path: PathBuf,
    known: Mutex<Known>,
}

impl std::fmt::Debug for HostJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostJournal")
            .field("host", &self.shell.location())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HostJournal {
    /// The journal at `path` on `shell`'s host (new runs start empty).
    pub fn new(shell: Arc<dyn Shell>, path: impl Into<PathBuf>) -> Self {
        Self {
            shell,
            path: path.into(),
            known: Mutex::new(Known {
                size: 0,
                records: Vec::new(),
                ends_with_newline: true,
            }),
        }
    }

    fn where_(&self) -> PathBuf {
        PathBuf::from(format!("{}:{}", self.shell.location(), self.path.display()))
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Journal {
            path: self.where_(),
            message: message.into(),
        }
    }

    async fn run(
        &self,
        what: &str,
        cmd: &Cmd,
        stdin: Option<&[u8]>,
    ) -> Result<crate::shell::Output> {
        self.shell
            .run(cmd, stdin)
            .await
            .map_err(|e| self.error(format!("cannot {what} on the host: {e}")))
    }

    fn learn(&self, known: &mut Known, text: &str) -> Result<()> {
        known.size = text.len() as u64;
        known.ends_with_newline = text.is_empty() || text.ends_with('\n');
        known.records = parse_records(text, || self.where_())?;
        Ok(())
    }
}

#[async_trait]
impl JournalStore for HostJournal {
    async fn append(&self, record: &Record) -> Result<()> {
        let record = redacted(record);
        let mut known = self.known.lock().await;
        // A few tries: each failed compare tells us what the file holds now.
        for _ in 0..4 {
            crate::journal_rules::check_append(&known.records, &record)
                .map_err(|message| self.error(message))?;
            let mut line = Vec::new();
            if !known.ends_with_newline {
                // A torn line from a crash ends where this record starts afresh.
                line.push(b'\n');
            }
            line.extend(serde_json::to_vec(&record).expect("journal records serialise"));
            line.push(b'\n');
            let cmd = commands::append(&self.path, known.size);
            let out = self.run("append", &cmd, Some(&line)).await?;
            if out.success() {
                known.size += line.len() as u64;
                known.ends_with_newline = true;
                known.records.push(record);
                return Ok(());
            }
            if out.status != commands::CHANGED {
                return Err(self.error(format!(
                    "cannot append on the host (exit {}): {}",
                    out.status,
                    out.tail(5)
                )));
            }
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            self.learn(&mut known, &text)?;
        }
        Err(self.error("the journal kept changing while appending; is another process writing it?"))
    }

    async fn records(&self) -> Result<Vec<Record>> {
        let out = self.run("read", &commands::read(&self.path), None).await?;
        if !out.success() {
            return Err(self.error(format!(
                "cannot read (exit {}): {}",
                out.status,
                out.tail(5)
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut known = self.known.lock().await;
        self.learn(&mut known, &text)?;
        Ok(known.records.clone())
    }
}
