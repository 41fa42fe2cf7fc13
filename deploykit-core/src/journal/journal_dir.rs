//! [`JournalDir`]: a directory of local run journals, one file per run.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::{read_records, FileJournal};

/// A directory of run journals, one `<run_id>.jsonl` per run.
#[derive(Debug, Clone)]
pub struct JournalDir {
    dir: PathBuf,
}

impl JournalDir {
    /// Journals under `dir` (e.g. `<state>/journal/<env>`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The journal file of `run_id`.
    pub fn path_of(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.jsonl"))
    }

    /// Opens a new run's journal for writing.
    pub fn create(&self, run_id: &str) -> Result<FileJournal> {
        FileJournal::open(self.path_of(run_id))
    }

    /// Every run's journal path, oldest first (run ids sort by time).
    pub fn runs(&self) -> Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list journals", &self.dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Journals `recover` still has work in: the run recorded no end, or its last
    /// end is `rollback_failed` (a human fixed the cause and recovers again).
    pub fn unfinished(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for path in self.runs()? {
            if crate::state_store::is_unfinished(&read_records(&path)?) {
                out.push(path);
            }
        }
        Ok(out)
    }
}
