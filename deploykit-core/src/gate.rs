//! Approval gates for protected environments.

use async_trait::async_trait;

use crate::error::Result;
use crate::release::ReleaseId;

/// What an approver is asked to approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The environment.
    pub env: String,
    /// The release to deploy.
    pub release: ReleaseId,
    /// The release live now.
    pub previous: Option<ReleaseId>,
    /// Migrations the run would apply, by name.
    pub migrations: Vec<String>,
}

/// Decides whether a protected run may go ahead, and who said so. The name is
/// written to the journal. Refusing is an `Err` (usually [`crate::Error::Refused`]).
#[async_trait]
pub trait ApprovalGate: Send + Sync {
    /// Returns the approver's name, or refuses.
    async fn approve(&self, request: &ApprovalRequest) -> Result<String>;
}

/// A gate already passed outside deploykit, e.g. `--approve NAME` after a GitHub
/// environment review.
#[derive(Debug, Clone)]
pub struct PreApproved(pub String);

#[async_trait]
impl ApprovalGate for PreApproved {
    async fn approve(&self, _request: &ApprovalRequest) -> Result<String> {
        Ok(self.0.clone())
    }
}
