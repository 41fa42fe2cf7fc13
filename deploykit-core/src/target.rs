//! The `Target` trait: where releases are staged and made live.

use async_trait::async_trait;

use crate::error::Result;
use crate::release::{ReleaseId, ReleaseSpec};

/// Stages releases next to the live one and switches traffic between them.
///
/// Every method is idempotent: `activate` of the live release re-ensures it runs,
/// `discard` of an unknown release does nothing. Compensation and recovery rely on
/// that to replay an undo after a crash.
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
