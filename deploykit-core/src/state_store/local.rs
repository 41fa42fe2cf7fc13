//! The state under the project's state directory on this machine.

use std::sync::Arc;

use async_trait::async_trait;

use super::{StateStore, StoredRun};
use crate::error::Result;
use crate::journal::{read_records, JournalDir, JournalStore};
use crate::lock::DeployLock;

/// Journals as `<dir>/<run_id>.jsonl` files and a lock beside them: today's
/// behaviour, for the demo, local targets, a local Compose engine, and tests.
pub struct LocalStore {
    journals: JournalDir,
    lock: Arc<dyn DeployLock>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("journals", &self.journals)
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// Journals in `journals`, guarded by `lock`.
    pub fn new(journals: JournalDir, lock: Arc<dyn DeployLock>) -> Self {
        Self { journals, lock }
    }

    /// Journals in `dir` and the lock as `dir/deploy.lock` beside them (for
    /// embedders and tests that keep one directory per environment).
    pub fn in_dir(dir: impl Into<std::path::PathBuf>) -> Self {
        let dir = dir.into();
        let lock = Arc::new(crate::FileLock::new(dir.join("deploy.lock")));
        Self::new(JournalDir::new(dir), lock)
    }

    /// The journal directory.
    pub fn journals(&self) -> &JournalDir {
        &self.journals
    }
}

#[async_trait]
impl StateStore for LocalStore {
    fn location(&self) -> String {
        self.journals.dir().display().to_string()
    }

    async fn journal(&self, run_id: &str) -> Result<Arc<dyn JournalStore>> {
        Ok(Arc::new(self.journals.create(run_id)?))
    }

    async fn runs(&self) -> Result<Vec<StoredRun>> {
        let mut out = Vec::new();
        for path in self.journals.runs()? {
            let run_id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(StoredRun {
                run_id,
                records: read_records(&path)?,
            });
        }
        Ok(out)
    }

    fn lock(&self) -> Arc<dyn DeployLock> {
        self.lock.clone()
    }
}
