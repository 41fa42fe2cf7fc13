//! A migration plan as text lines: the one rendering `deploy --dry-run` and
//! `migrate plan` share, so both show reversibility and lint findings alike.

use deploykit_core::MigrationPlan;

/// One line per planned migration (`prefix` then its id, marked when it has no
/// down script), each followed by its lint findings, each line starting with
/// `finding_indent`.
pub fn plan_lines(plan: &MigrationPlan, prefix: &str, finding_indent: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for m in &plan.migrations {
        lines.push(format!(
            "{prefix}{}{}",
            m.id,
            if m.reversible {
                ""
            } else {
                "  (no down script)"
            }
        ));
        for f in &m.findings {
            lines.push(format!(
                "{finding_indent}lint {}: {}{}",
                f.rule,
                f.message,
                if m.allowed { " (allowed)" } else { "" }
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploykit_core::{LintFinding, MigrationId, PlannedMigration};

    #[test]
    fn findings_sit_under_their_migration() {
        let plan = MigrationPlan {
            migrations: vec![PlannedMigration {
                id: MigrationId {
                    version: "0002".into(),
                    name: "drop_x".into(),
                },
                reversible: false,
                findings: vec![LintFinding {
                    rule: "drop-column".into(),
                    message: "drops a column".into(),
                }],
                allowed: true,
                all_or_nothing: true,
            }],
            ..Default::default()
        };
        assert_eq!(
            plan_lines(&plan, "    - ", "        "),
            [
                "    - 0002_drop_x  (no down script)",
                "        lint drop-column: drops a column (allowed)"
            ]
        );
        assert_eq!(
            plan_lines(&plan, "  ", "      ")[1],
            "      lint drop-column: drops a column (allowed)"
        );
    }
}
