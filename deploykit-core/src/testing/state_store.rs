//! The state store in memory, with a scripted fault: the store stops accepting
//! records after N of them (the host went unreachable mid-run).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{MemoryJournal, MemoryLock};
use crate::error::{Error, Result};
use crate::journal::{JournalStore, Record};
use crate::lock::DeployLock;
use crate::state_store::{StateStore, StoredRun};

/// A real [`StateStore`] over a map of [`MemoryJournal`]s and a [`MemoryLock`].
#[derive(Default)]
pub struct MemoryStateStore {
    runs: Mutex<BTreeMap<String, Arc<MemoryJournal>>>,
    lock: Arc<MemoryLock>,
    faults: Arc<StoreFaults>,
}

impl std::fmt::Debug for MemoryStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStateStore").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct StoreFaults {
    /// Appends accepted so far, over every journal.
    appended: AtomicUsize,
    /// Refuse every append once `appended` reaches this (`usize::MAX`: never).
    fail_after: AtomicUsize,
}

impl MemoryStateStore {
    /// A store that never fails.
    pub fn new() -> Self {
        let s = Self::default();
        s.faults.fail_after.store(usize::MAX, Ordering::SeqCst);
        s
    }

    /// A store that accepts `n` records (over all its journals), then refuses
    /// every append as an unreachable host would.
    pub fn failing_after(n: usize) -> Self {
        let s = Self::new();
        s.faults.fail_after.store(n, Ordering::SeqCst);
        s
    }

    /// The host is back: appends work again.
    pub fn heal(&self) {
        self.faults.fail_after.store(usize::MAX, Ordering::SeqCst);
    }

    /// Every record of run `run_id` so far.
    pub fn records_of(&self, run_id: &str) -> Vec<Record> {
        self.runs
            .lock()
            .unwrap()
            .get(run_id)
            .map(|j| j.snapshot())
            .unwrap_or_default()
    }
}

/// A journal of the store: refuses appends while the store is "unreachable".
struct StoreJournal {
    inner: Arc<MemoryJournal>,
    faults: Arc<StoreFaults>,
}

#[async_trait]
impl JournalStore for StoreJournal {
    async fn append(&self, record: &Record) -> Result<()> {
        let done = self.faults.appended.load(Ordering::SeqCst);
        if done >= self.faults.fail_after.load(Ordering::SeqCst) {
            return Err(Error::Journal {
                path: PathBuf::from("memory-host:/state"),
                message: "simulated unreachable state host".into(),
            });
        }
        self.inner.append(record).await?;
        self.faults.appended.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn records(&self) -> Result<Vec<Record>> {
        self.inner.records().await
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    fn location(&self) -> String {
        "memory".into()
    }

    async fn journal(&self, run_id: &str) -> Result<Arc<dyn JournalStore>> {
        let inner = self
            .runs
            .lock()
            .unwrap()
            .entry(run_id.to_string())
            .or_default()
            .clone();
        Ok(Arc::new(StoreJournal {
            inner,
            faults: self.faults.clone(),
        }))
    }

    async fn runs(&self) -> Result<Vec<StoredRun>> {
        Ok(self
            .runs
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, j)| !j.snapshot().is_empty())
            .map(|(id, j)| StoredRun {
                run_id: id.clone(),
                records: j.snapshot(),
            })
            .collect())
    }

    fn lock(&self) -> Arc<dyn DeployLock> {
        self.lock.clone()
    }
}
