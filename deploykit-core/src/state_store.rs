//! Where an environment's state lives: its run journals (and so its history) and
//! its deploy lock, kept together so every command, from any machine, sees the same.
//!
//! Like `object_store`, one small trait with a module per backend: [`LocalStore`]
//! (files under the project's state directory: the demo, unit tests, local
//! targets) and [`HostStore`] (files on the environment's host, over the SSH
//! connection the run already holds: a CI runner thrown away after each job
//! leaves nothing behind that a later `recover` needs). The in-memory twin is
//! `testing::MemoryStateStore`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::journal::{JournalStore, Outcome, Record};
use crate::lock::DeployLock;

mod host;
mod local;

pub use host::{HostJournal, HostStore};
pub use local::LocalStore;

/// One run's journal as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    /// The run's id (its journal's name).
    pub run_id: String,
    /// Its records, in order.
    pub records: Vec<Record>,
}

impl StoredRun {
    /// Whether `recover` still has work in it: the run recorded no end, or its
    /// last end is `rollback_failed` (a human fixed the cause and recovers again).
    pub fn is_unfinished(&self) -> bool {
        is_unfinished(&self.records)
    }
}

/// See [`StoredRun::is_unfinished`].
pub fn is_unfinished(records: &[Record]) -> bool {
    let last_end = records.iter().rev().find_map(|r| match r {
        Record::RunFinished { outcome, .. } => Some(*outcome),
        _ => None,
    });
    matches!(last_end, None | Some(Outcome::RollbackFailed))
}

/// One environment's state: its run journals and its deploy lock.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Where the state lives, for messages (e.g. `deploy@web1:22:/srv/app/.deploykit`).
    fn location(&self) -> String;
    /// The journal of run `run_id`, created on its first append if new. Opening
    /// writes nothing, so a store that cannot be written fails on that append,
    /// before any side effect.
    async fn journal(&self, run_id: &str) -> Result<Arc<dyn JournalStore>>;
    /// Every run with its records, oldest first (run ids sort by time), read in
    /// one go (one round trip for a remote store, not one per run).
    async fn runs(&self) -> Result<Vec<StoredRun>>;
    /// The environment's deploy lock, kept with its journals.
    fn lock(&self) -> Arc<dyn DeployLock>;
}

/// Conveniences on every [`StateStore`], built from its required methods so every
/// backend answers them alike. Not meant to be implemented by hand.
#[async_trait]
pub trait StateStoreExt: StateStore {
    /// The runs `recover` still has work in, oldest first.
    async fn unfinished(&self) -> Result<Vec<StoredRun>> {
        Ok(self
            .runs()
            .await?
            .into_iter()
            .filter(StoredRun::is_unfinished)
            .collect())
    }

    /// The run `run_id`, if the store has it.
    async fn run(&self, run_id: &str) -> Result<Option<StoredRun>> {
        Ok(self.runs().await?.into_iter().find(|r| r.run_id == run_id))
    }
}

impl<T: StateStore + ?Sized> StateStoreExt for T {}

/// Copies every run of `from` that `to` does not have yet, record by record
/// (`deploykit state import`): moving existing state is idempotent, and a run
/// already in `to` is never overwritten. Returns the ids copied and skipped.
pub async fn import(
    from: &dyn StateStore,
    to: &dyn StateStore,
) -> Result<(Vec<String>, Vec<String>)> {
    let have: Vec<String> = to.runs().await?.into_iter().map(|r| r.run_id).collect();
    let (mut copied, mut skipped) = (Vec::new(), Vec::new());
    for run in from.runs().await? {
        if have.contains(&run.run_id) {
            skipped.push(run.run_id);
            continue;
        }
        let journal = to.journal(&run.run_id).await?;
        for record in &run.records {
            journal.append(record).await?;
        }
        copied.push(run.run_id);
    }
    Ok((copied, skipped))
}
