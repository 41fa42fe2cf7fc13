//! Where a database stands against the files on disk: pure, no database.

use std::collections::BTreeMap;

use crate::migrate::{MigrationId, MigrationStatus, PlannedMigration};

use super::history::{HistoryDialect, HistoryRow};
use super::lint::lint;
use super::source::{version_order, MigrationFile};

/// Compares the files with the history rows, matching by version as `dialect`'s
/// tool does (sqlx: as numbers, so `0001_init.sql` is recorded as `1`): applied
/// (same content), drifted (content changed since), missing (recorded, no file)
/// and pending (file, no record).
pub(crate) fn compare(
    files: &[MigrationFile],
    rows: &[HistoryRow],
    dialect: HistoryDialect,
) -> MigrationStatus {
    let by_version: BTreeMap<String, &HistoryRow> = rows
        .iter()
        .map(|r| (dialect.version_key(&r.version), r))
        .collect();
    let mut status = MigrationStatus::default();
    for f in files {
        match by_version.get(&dialect.version_key(&f.id.version)) {
            Some(row) if row.recorded.matches(f) => status.applied.push(f.id.clone()),
            Some(_) => status.drifted.push(f.id.clone()),
            None => status.pending.push(f.id.clone()),
        }
    }
    let mut missing: Vec<&HistoryRow> = rows
        .iter()
        .filter(|r| {
            !files
                .iter()
                .any(|f| dialect.same_version(&f.id.version, &r.version))
        })
        .collect();
    missing.sort_by(|a, b| version_order(&a.version, &b.version));
    status.missing = missing
        .into_iter()
        .map(|r| MigrationId {
            version: r.version.clone(),
            name: r.name.clone(),
        })
        .collect();
    status
}

/// The planned form of a pending file: reversibility and lint findings.
pub(crate) fn planned(file: &MigrationFile) -> PlannedMigration {
    let report = lint(&file.up);
    PlannedMigration {
        id: file.id.clone(),
        reversible: file.down.is_some(),
        findings: report.findings,
        allowed: report.allowed,
        all_or_nothing: !file.runs_outside_transaction(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql_migrations::history::Recorded;

    fn file(v: &str, up: &str, down: Option<&str>) -> MigrationFile {
        MigrationFile {
            id: MigrationId {
                version: v.into(),
                name: format!("m{v}"),
            },
            path: format!("{v}_m{v}.sql").into(),
            up: up.into(),
            down: down.map(String::from),
        }
    }

    #[test]
    fn classifies_applied_pending_missing_and_drifted() {
        let files = [
            file("1", "select 1;", None),
            file("2", "select 2;", None),
            file("3", "select 3;", None),
        ];
        let rows = [
            HistoryRow {
                version: "1".into(),
                name: "m1".into(),
                recorded: Recorded::Sha256(files[0].checksum()),
            },
            HistoryRow {
                version: "2".into(),
                name: "m2".into(),
                recorded: Recorded::Sha256("0".repeat(64)),
            },
            HistoryRow {
                version: "0".into(),
                name: "gone".into(),
                recorded: Recorded::Nothing,
            },
        ];
        let s = compare(&files, &rows, HistoryDialect::Deploykit);
        let ids = |v: &[MigrationId]| v.iter().map(|m| m.version.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&s.applied), ["1"]);
        assert_eq!(ids(&s.drifted), ["2"]);
        assert_eq!(ids(&s.pending), ["3"]);
        assert_eq!(ids(&s.missing), ["0"]);
    }

    #[test]
    fn plan_entries_carry_reversibility_and_findings() {
        let p = planned(&file("1", "drop table x;", Some("create table x ();")));
        assert!(p.reversible);
        assert_eq!(p.findings[0].rule, "drop-table");
        assert!(!planned(&file("2", "select 1;", None)).reversible);
    }

    #[test]
    fn sqlx_matches_versions_as_numbers_and_the_others_as_text() {
        let files = [
            file("0001", "select 1;", None),
            file("0002", "select 2;", None),
        ];
        let rows = [HistoryRow {
            version: "1".into(),
            name: "m0001".into(),
            recorded: Recorded::Sha384(files[0].sqlx_checksum()),
        }];
        let s = compare(&files, &rows, HistoryDialect::Sqlx);
        let ids = |v: &[MigrationId]| v.iter().map(|m| m.version.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&s.applied), ["0001"]);
        assert_eq!(ids(&s.pending), ["0002"]);
        assert!(s.missing.is_empty(), "{s:?}");
        let text = compare(&files, &rows, HistoryDialect::Deploykit);
        assert_eq!(ids(&text.pending), ["0001", "0002"]);
        assert_eq!(ids(&text.missing), ["1"]);
    }
}
