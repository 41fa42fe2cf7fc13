//! The `Target` trait: where releases are staged and made live.

use async_trait::async_trait;

use crate::error::Result;
use crate::logs::LogLines;
use crate::release::{ReleaseId, ReleaseSpec};

/// Stages releases next to the live one and switches traffic between them.
///
/// Every method is idempotent: `activate` of the live release re-ensures it runs,
/// `discard` of an unknown release does nothing. Compensation and recovery rely on
/// that to replay an undo after a crash.
///
/// # Your own target
///
/// Releases as names in a set, one of them live: a whole target in under 50
/// lines, checked by the same conformance suite every backend runs (feature
/// `testing`). A real one stages files or images where this inserts a name.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::collections::BTreeSet;
/// use std::sync::Mutex;
/// use deploykit_core::{async_trait, Error, ReleaseId, ReleaseSpec, Result, Target};
///
/// #[derive(Default)]
/// struct Slots {
///     staged: Mutex<BTreeSet<ReleaseId>>,
///     live: Mutex<Option<ReleaseId>>,
/// }
///
/// #[async_trait]
/// impl Target for Slots {
///     async fn current(&self) -> Result<Option<ReleaseId>> {
///         Ok(self.live.lock().unwrap().clone())
///     }
///     async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
///         self.staged.lock().unwrap().insert(spec.id.clone());
///         Ok(())
///     }
///     async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
///         if let Some(r) = release.filter(|r| !self.staged.lock().unwrap().contains(*r)) {
///             return Err(Error::part("activate", "slots", format!("{r} is not staged")));
///         }
///         *self.live.lock().unwrap() = release.cloned();
///         Ok(())
///     }
///     async fn discard(&self, release: &ReleaseId) -> Result<()> {
///         if self.live.lock().unwrap().as_ref() == Some(release) {
///             return Err(Error::part("discard", "slots", format!("{release} is live")));
///         }
///         self.staged.lock().unwrap().remove(release);
///         Ok(())
///     }
///     async fn list(&self) -> Result<Vec<ReleaseId>> {
///         Ok(self.staged.lock().unwrap().iter().cloned().collect())
///     }
/// }
///
/// let world = deploykit_core::testing::World::new();
/// let (a, b) = (world.spec("a"), world.spec("b"));
/// deploykit_core::testing::conformance::target_contract(&Slots::default(), &a, &b).await;
/// # }
/// ```
#[async_trait]
pub trait Target: Send + Sync {
    /// The release serving traffic now, if any.
    async fn current(&self) -> Result<Option<ReleaseId>>;
    /// Stages a release without touching live traffic (code, install, build, image).
    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()>;
    /// Makes `release` live. `None` takes the app offline: the undo of a first deploy.
    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()>;
    /// Removes a staged release that is not live.
    async fn discard(&self, release: &ReleaseId) -> Result<()>;
    /// Staged releases, oldest first.
    async fn list(&self) -> Result<Vec<ReleaseId>>;
    /// The last `lines` lines `release`'s processes (or containers) printed, per
    /// source. The pipeline reads them when verify fails, before the undo replaces
    /// those processes, so the person deploying sees why without logging in.
    ///
    /// Optional, unlike the methods above: a target without logs returns none
    /// (the default). A target that wraps others must forward it.
    async fn recent_logs(&self, release: &ReleaseId, lines: usize) -> Result<Vec<LogLines>> {
        let _ = (release, lines);
        Ok(Vec::new())
    }
}

/// Conveniences built only from [`Target`]'s required methods. Not meant to be
/// implemented by hand.
#[async_trait]
pub trait TargetExt: Target {
    /// Keeps the newest `keep` releases; never removes the live release or one in
    /// `protect` (e.g. the previous one, the rollback path). Returns what was removed.
    async fn prune(&self, keep: usize, protect: &[ReleaseId]) -> Result<Vec<ReleaseId>> {
        let mut all = self.list().await?;
        all.sort();
        let live = self.current().await?;
        let excess = all.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for release in all.into_iter().take(excess) {
            if protect.contains(&release) || live.as_ref() == Some(&release) {
                continue;
            }
            self.discard(&release).await?;
            removed.push(release);
        }
        Ok(removed)
    }
}

impl<T: Target + ?Sized> TargetExt for T {}
