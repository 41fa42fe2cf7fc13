//! Migration files on disk: `<version>_<name>.sql` and optional
//! `<version>_<name>.down.sql`, read in version order.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256, Sha384};

use crate::commit_tree::CommitTree;
use crate::error::{Error, Result};
use crate::migrate::MigrationId;

use super::split::{split_statements, Statement};

/// One migration read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigrationFile {
    /// Version and name, from the file name.
    pub(crate) id: MigrationId,
    /// The up file.
    pub(crate) path: PathBuf,
    /// The up script as read (original line endings).
    pub(crate) up: String,
    /// The down script, when a `.down.sql` file exists.
    pub(crate) down: Option<String>,
}

impl MigrationFile {
    /// Lowercase hex SHA-256 of the up script with line endings normalised, so a
    /// checkout with CRLF endings does not count as an edit.
    pub(crate) fn checksum(&self) -> String {
        checksum(&self.up)
    }

    /// SHA-384 of the up script's bytes: the checksum sqlx records in `_sqlx_migrations`.
    pub(crate) fn sqlx_checksum(&self) -> Vec<u8> {
        Sha384::digest(self.up.as_bytes()).to_vec()
    }

    /// The up script's statements, split as the Supabase CLI splits them.
    pub(crate) fn statements(&self) -> Vec<Statement> {
        split_statements(&self.up)
    }

    /// The file carries `-- deploykit:no-transaction` (e.g. for `CREATE INDEX
    /// CONCURRENTLY`, which PostgreSQL refuses inside a transaction).
    pub(crate) fn runs_outside_transaction(&self) -> bool {
        self.up.lines().any(|l| l.trim() == NO_TRANSACTION_MARKER)
    }

    /// The file name, for messages.
    pub(crate) fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.id.to_string())
    }
}

/// The comment line that makes a migration run outside a transaction.
pub const NO_TRANSACTION_MARKER: &str = "-- deploykit:no-transaction";

/// `text` with `\r\n` and lone `\r` turned into `\n`.
pub(crate) fn normalise_line_endings(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Lowercase hex SHA-256 over `text` with normalised line endings.
pub(crate) fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(normalise_line_endings(text).as_bytes()))
}

/// Splits a file name `<version>_<name>.sql` (digits, underscore, anything) into
/// its id; `.down.sql` files and other names give `None`.
pub(crate) fn parse_file_name(file_name: &str) -> Option<MigrationId> {
    let stem = file_name.strip_suffix(".sql")?;
    if stem.ends_with(".down") {
        return None;
    }
    let stem = stem.strip_suffix(".up").unwrap_or(stem);
    let (version, name) = stem.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(MigrationId {
        version: version.to_string(),
        name: name.to_string(),
    })
}

/// Reads every migration in `dir`, sorted by version (numerically, then as text).
/// Two files with the same version are refused: the order would be ambiguous.
pub(crate) fn load_dir(dir: &Path) -> Result<Vec<MigrationFile>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read migrations", dir, e))?;
    let mut texts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read migrations", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sql") {
            continue;
        }
        let path = entry.path();
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("read migration", &path, e))?;
        texts.push((name, text));
    }
    pair_files(dir, texts)
}

/// Reads every migration in `dir` (relative to the repository) as `tree`'s commit
/// has it, whatever the working tree holds: what a deploy of that commit applies.
pub(crate) fn load_commit(tree: &CommitTree, dir: &Path) -> Result<Vec<MigrationFile>> {
    let shown = PathBuf::from(tree.describe(dir));
    let mut texts = Vec::new();
    for (name, bytes) in tree.read_dir(dir)? {
        if !name.ends_with(".sql") {
            continue;
        }
        let text = String::from_utf8(bytes).map_err(|_| Error::Invalid {
            what: "migration file",
            value: format!("{}/{name}", shown.display()),
            reason: "it is not UTF-8 text".into(),
        })?;
        texts.push((name, text));
    }
    pair_files(&shown, texts)
}

/// Pairs up and down scripts (`(file name, text)`) into sorted migrations.
fn pair_files(dir: &Path, texts: Vec<(String, String)>) -> Result<Vec<MigrationFile>> {
    let mut files = Vec::new();
    for (name, up) in &texts {
        let Some(id) = parse_file_name(name) else {
            continue;
        };
        let base = name
            .strip_suffix(".up.sql")
            .or_else(|| name.strip_suffix(".sql"))
            .unwrap_or(name);
        let down_name = format!("{base}.down.sql");
        let down = texts
            .iter()
            .find(|(n, _)| *n == down_name)
            .map(|(_, t)| t.clone());
        files.push(MigrationFile {
            id,
            path: dir.join(name),
            up: up.clone(),
            down,
        });
    }
    files.sort_by(|a, b| version_order(&a.id.version, &b.id.version));
    for pair in files.windows(2) {
        if pair[0].id.version == pair[1].id.version {
            return Err(Error::Invalid {
                what: "migration version",
                value: pair[0].id.version.clone(),
                reason: format!(
                    "both {} and {} use it; rename one",
                    pair[0].file_name(),
                    pair[1].file_name()
                ),
            });
        }
    }
    Ok(files)
}

/// Orders versions numerically (so `9` < `10`), falling back to text.
pub(crate) fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let ta = a.trim_start_matches('0');
    let tb = b.trim_start_matches('0');
    ta.len().cmp(&tb.len()).then(ta.cmp(tb)).then(a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse_into_ids() {
        let id = parse_file_name("20251102140530_add_bookings.sql").unwrap();
        assert_eq!(
            (id.version.as_str(), id.name.as_str()),
            ("20251102140530", "add_bookings")
        );
        assert!(parse_file_name("20251102140530_add_bookings.down.sql").is_none());
        assert!(parse_file_name("README.md").is_none());
        assert!(parse_file_name("abc_x.sql").is_none());
        assert_eq!(parse_file_name("2_x.up.sql").unwrap().name, "x");
    }

    #[test]
    fn checksum_ignores_line_endings_only() {
        assert_eq!(checksum("a;\r\nb;\r\n"), checksum("a;\nb;\n"));
        assert_ne!(checksum("a;\nb;\n"), checksum("a;\nc;\n"));
    }

    #[test]
    fn load_orders_by_version_and_pairs_down_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10_b.sql"), "select 10;").unwrap();
        std::fs::write(dir.path().join("9_a.sql"), "select 9;").unwrap();
        std::fs::write(dir.path().join("9_a.down.sql"), "select -9;").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let files = load_dir(dir.path()).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.id.to_string()).collect();
        assert_eq!(names, ["9_a", "10_b"]);
        assert_eq!(files[0].down.as_deref(), Some("select -9;"));
        assert_eq!(files[1].down, None);
        std::fs::write(dir.path().join("10_c.sql"), "select 1;").unwrap();
        assert!(
            load_dir(dir.path()).is_err(),
            "duplicate versions are refused"
        );
    }
}
