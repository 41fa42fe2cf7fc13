//! SQL file migrations, shared by the PostgreSQL and SQLite backends: the file
//! source, checksums, the statement splitter, the destructive-change lint, the
//! status comparison and the one orchestrator ([`SqlMigrator`]).
//!
//! # Why one orchestrator
//!
//! The promises — a failing file leaves nothing behind, the history row is
//! written in the same transaction as the step, drift refuses to plan, revert
//! runs down scripts for exactly what was applied — are written once here, over
//! a small per-engine session (like sqlx's `Migrate` trait), so PostgreSQL and
//! SQLite cannot drift apart.

mod driver;
pub mod history;
mod lint;
mod migrator;
mod offline_lint;
mod origin;
mod script_run;
pub(crate) mod source;
mod split;
mod status;

pub use history::HistoryDialect;
// The markers and rule names stay public: they are words migration authors write.
pub use lint::{ALLOW_MARKER, RULES as LINT_RULES};
pub use migrator::{SqlMigrator, SqlMigratorOptions};
pub use offline_lint::lint_migrations;
pub use source::NO_TRANSACTION_MARKER;

pub(crate) use driver::{Backend, ServerError, Session};
