//! History-table dialects and how a recorded row is compared with a file.
//!
//! Existing projects already keep a history table written by another tool; the
//! migrator speaks that tool's layout so its history stays valid both ways.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

use super::source::{normalise_line_endings, MigrationFile};

/// Which history table the database keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryDialect {
    /// deploykit's own `deploykit_migrations` (version, name, checksum, applied_at,
    /// execution_ms, release).
    #[default]
    Deploykit,
    /// The Supabase CLI's `supabase_migrations.schema_migrations` (version text,
    /// name text, statements text[]), written exactly as the CLI writes it so
    /// `supabase migration list` keeps working. PostgreSQL only.
    Supabase,
    /// sqlx's `_sqlx_migrations` (version bigint, description, installed_on,
    /// success, checksum = SHA-384 of the file, execution_time in ns).
    Sqlx,
}

impl HistoryDialect {
    /// The form in which this dialect's tool compares versions: sqlx stores them as
    /// `i64`, so `0001` and `1` are the same migration; the others compare text.
    pub fn version_key(self, version: &str) -> String {
        match self {
            HistoryDialect::Sqlx => version
                .parse::<i64>()
                .map(|v| v.to_string())
                .unwrap_or_else(|_| version.to_string()),
            HistoryDialect::Deploykit | HistoryDialect::Supabase => version.to_string(),
        }
    }

    /// True when `a` and `b` name the same migration in this dialect.
    pub fn same_version(self, a: &str, b: &str) -> bool {
        self.version_key(a) == self.version_key(b)
    }

    /// The table's name, for messages.
    pub fn table(self) -> &'static str {
        match self {
            HistoryDialect::Deploykit => "deploykit_migrations",
            HistoryDialect::Supabase => "supabase_migrations.schema_migrations",
            HistoryDialect::Sqlx => "_sqlx_migrations",
        }
    }
}

/// What a history row recorded about the file it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// deploykit: hex SHA-256 over the file with normalised line endings.
    Sha256(String),
    /// sqlx: SHA-384 of the file's bytes.
    Sha384(Vec<u8>),
    /// Supabase: the statements that were run.
    Statements(Vec<String>),
    /// Nothing comparable (e.g. a Supabase row without statements).
    Nothing,
}

impl Recorded {
    /// True when `file` is still what was applied (no drift).
    pub(crate) fn matches(&self, file: &MigrationFile) -> bool {
        match self {
            Recorded::Sha256(sum) => *sum == file.checksum(),
            Recorded::Sha384(sum) => {
                *sum == file.sqlx_checksum()
                    || *sum == Sha384::digest(normalise_line_endings(&file.up).as_bytes()).to_vec()
            }
            Recorded::Statements(stored) => {
                let now: Vec<String> = file.statements().into_iter().map(|s| s.sql).collect();
                let norm = |v: &[String]| -> Vec<String> {
                    v.iter().map(|s| normalise_line_endings(s)).collect()
                };
                let compact = |v: &[String]| -> String {
                    v.concat()
                        .chars()
                        .filter(|c| !c.is_whitespace() && *c != ';')
                        .collect()
                };
                norm(stored) == norm(&now) || compact(stored) == compact(&now)
            }
            Recorded::Nothing => true,
        }
    }
}

/// One row of a history table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The migration's version.
    pub version: String,
    /// Its name as recorded.
    pub name: String,
    /// What was recorded about its content.
    pub recorded: Recorded,
}

/// sqlx records the name with `_` shown as spaces.
pub fn sqlx_description(name: &str) -> String {
    name.replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::MigrationId;

    fn file(up: &str) -> MigrationFile {
        MigrationFile {
            id: MigrationId {
                version: "1".into(),
                name: "x".into(),
            },
            path: "1_x.sql".into(),
            up: up.into(),
            down: None,
        }
    }

    #[test]
    fn each_dialect_detects_edits_but_not_line_endings() {
        let f = file("create table a (id int);\ncreate table b (id int);\n");
        let crlf = file("create table a (id int);\r\ncreate table b (id int);\r\n");
        let edited = file("create table a (id bigint);\ncreate table b (id int);\n");
        let stored = [
            Recorded::Sha256(f.checksum()),
            Recorded::Sha384(f.sqlx_checksum()),
            Recorded::Statements(f.statements().into_iter().map(|s| s.sql).collect()),
        ];
        for r in &stored {
            assert!(r.matches(&f), "{r:?}");
            assert!(r.matches(&crlf), "{r:?}");
            assert!(!r.matches(&edited), "{r:?}");
        }
    }
}
