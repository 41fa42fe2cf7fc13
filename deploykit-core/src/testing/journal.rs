//! A journal in memory that can "crash": stop accepting records after N of them.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::journal::{JournalStore, Record};

/// Records kept in memory. With a crash point, every append after the first `n`
/// fails, which stops the run exactly as a killed process would stop: with the
/// first `n` records durable and nothing after them.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    records: Mutex<Vec<Record>>,
    crash_after: Option<usize>,
}

impl MemoryJournal {
    /// A journal that accepts `n` records, then refuses everything.
    pub fn crashing_after(n: usize) -> Self {
        Self {
            records: Mutex::new(Vec::new()),
            crash_after: Some(n),
        }
    }

    /// A working journal holding `records`: what the next process reads after a crash.
    pub fn from_records(records: Vec<Record>) -> Self {
        Self {
            records: Mutex::new(records),
            crash_after: None,
        }
    }

    /// A copy of the records so far.
    pub fn snapshot(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }
}

#[async_trait]
impl JournalStore for MemoryJournal {
    async fn append(&self, record: &Record) -> Result<()> {
        let mut records = self.records.lock().unwrap();
        if self.crash_after.is_some_and(|n| records.len() >= n) {
            return Err(Error::Journal {
                path: PathBuf::from("memory"),
                message: "simulated crash".into(),
            });
        }
        crate::journal_rules::check_append(&records, record).map_err(|message| Error::Journal {
            path: PathBuf::from("memory"),
            message,
        })?;
        records.push(record.clone());
        Ok(())
    }

    async fn records(&self) -> Result<Vec<Record>> {
        Ok(self.snapshot())
    }
}
