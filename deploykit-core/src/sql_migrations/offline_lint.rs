//! The lint over every migration of a commit, with no database: a CI gate that
//! fails a pull request before anyone deploys it.

use std::path::Path;

use super::source::{load_commit, load_dir};
use super::status::planned;
use crate::{CommitTree, PlannedMigration, Result};

/// Every migration in `dir` (a path in the working tree), as `tree`'s commit has
/// it, or as the directory holds it when there is no commit: each with its lint
/// findings and whether an allow marker covers them.
pub fn lint_migrations(dir: &Path, tree: Option<&CommitTree>) -> Result<Vec<PlannedMigration>> {
    let files = match tree {
        Some(tree) => load_commit(tree, &tree.relative(dir)?)?,
        None => load_dir(dir)?,
    };
    Ok(files.iter().map(planned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_linted_and_markers_are_honoured() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("1_a.sql"), "create table t (id int);").unwrap();
        std::fs::write(d.path().join("2_b.sql"), "drop table t;").unwrap();
        std::fs::write(
            d.path().join("3_c.sql"),
            "-- deploykit:allow drop-column\nalter table u drop column x;",
        )
        .unwrap();
        let planned = lint_migrations(d.path(), None).unwrap();
        let flagged: Vec<(String, bool)> = planned
            .iter()
            .filter(|m| !m.findings.is_empty())
            .map(|m| (m.id.to_string(), m.allowed))
            .collect();
        assert_eq!(planned.len(), 3);
        assert_eq!(flagged.len(), 2, "{flagged:?}");
        assert!(flagged
            .iter()
            .any(|(id, allowed)| id.contains("2") && !allowed));
        assert!(flagged
            .iter()
            .any(|(id, allowed)| id.contains("3") && *allowed));
    }
}
