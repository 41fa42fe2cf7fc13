//! [`FileJournal`]: a run's journal as a local JSON-lines file, fsynced after every
//! record, its torn last line (a crash mid-write) cut off before the next append.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, Result};

use super::{read_records, redacted, JournalStore, Record};

/// A JSON-lines journal file, fsynced after every record.
pub struct FileJournal {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl std::fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileJournal {
    /// Opens (creating if needed) the journal at `path` for appending.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            crate::private_fs::create_dir_all(dir)
                .map_err(|e| Error::io("create journal directory", dir, e))?;
        }
        Ok(Self {
            path,
            file: Mutex::new(None),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn journal_error(&self, message: impl Into<String>) -> Error {
        Error::Journal {
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

#[async_trait]
impl JournalStore for FileJournal {
    async fn append(&self, record: &Record) -> Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.open_for_append()?);
        }
        // Another process (a recover) may have written since: re-read before adding.
        let existing = read_records(&self.path)?;
        crate::journal_rules::check_append(&existing, record)
            .map_err(|message| self.journal_error(message))?;
        let file = guard.as_mut().expect("opened above");
        let record = redacted(record);
        let mut line = serde_json::to_vec(&record).expect("journal records serialise");
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|_| file.sync_data())
            .map_err(|e| self.journal_error(format!("cannot write: {e}")))
    }

    async fn records(&self) -> Result<Vec<Record>> {
        read_records(&self.path)
    }
}

impl FileJournal {
    /// Opens the file for appending, creating it durably (owner-only, its directory
    /// fsynced) if needed. A torn last line from a crash is cut off: its record was
    /// never acknowledged, and keeping it would leave a torn line in the middle of
    /// the journal once this append follows it.
    fn open_for_append(&self) -> Result<File> {
        let created = !self.path.exists();
        let file = crate::private_fs::open_append(&self.path)
            .map_err(|e| self.journal_error(format!("cannot open for append: {e}")))?;
        if created {
            if let Some(dir) = self.path.parent() {
                crate::durable::sync_dir(dir)
                    .map_err(|e| self.journal_error(format!("cannot sync its directory: {e}")))?;
            }
        }
        let bytes = std::fs::read(&self.path)
            .map_err(|e| self.journal_error(format!("cannot read: {e}")))?;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64)
                .and_then(|_| file.sync_data())
                .map_err(|e| self.journal_error(format!("cannot cut its torn last line: {e}")))?;
        }
        Ok(file)
    }
}
