//! The small seam between the one migration orchestrator and a database engine.

use async_trait::async_trait;

use crate::error::Result;
use crate::migrate::MigrationId;

use super::history::HistoryRow;
use super::source::MigrationFile;

/// A statement the server refused: its message and, when the server says, the
/// character position inside the statement.
#[derive(Debug, Clone)]
pub(crate) struct ServerError {
    pub(crate) message: String,
    pub(crate) position: Option<usize>,
}

/// One connection to the database, holding the migration lock while it lives.
#[async_trait]
pub(crate) trait Session: Send {
    /// Creates the history table if missing. An existing table is not altered, except
    /// that Supabase's gains its `statements` and `name` columns when it lacks them, as
    /// the Supabase CLI's own statements do.
    async fn ensure_history(&mut self) -> Result<()>;
    /// The rows of the history table; empty if it does not exist yet.
    async fn history(&mut self) -> Result<Vec<HistoryRow>>;
    /// Runs one statement (or `BEGIN`/`COMMIT`/`ROLLBACK`).
    async fn execute(&mut self, sql: &str) -> std::result::Result<(), ServerError>;
    /// Writes the history row for `file`, inside the current transaction.
    async fn record(
        &mut self,
        file: &MigrationFile,
        execution_ms: i64,
        release: Option<&str>,
    ) -> Result<()>;
    /// Deletes the history row of `id`, inside the current transaction.
    async fn unrecord(&mut self, id: &MigrationId) -> Result<()>;
    /// Releases the lock and closes the connection.
    async fn close(self: Box<Self>);
}

/// Opens sessions on one database.
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// The database, for messages (never with a password).
    fn location(&self) -> &str;
    /// Connects; with `lock`, waits for the migration lock first.
    async fn open(&self, lock: bool) -> Result<Box<dyn Session>>;
}
