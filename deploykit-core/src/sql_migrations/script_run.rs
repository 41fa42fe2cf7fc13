//! Running one migration script statement by statement, and what is left when
//! it stops part-way.

use crate::error::Error;
use crate::next_step::NextStep;

use super::driver::Session;
use super::source::{MigrationFile, NO_TRANSACTION_MARKER};
use super::split::split_statements;

/// A script that stopped at a failing statement, with the statements that ran
/// before it (which stay applied when the script runs outside a transaction).
pub(crate) struct ScriptFailure {
    pub(crate) error: Error,
    pub(crate) ran: Vec<String>,
}

/// Runs `script` of `file` one statement at a time on `session`.
pub(crate) async fn run_script(
    session: &mut Box<dyn Session>,
    location: &str,
    file: &MigrationFile,
    script: &str,
    step: &str,
) -> std::result::Result<(), ScriptFailure> {
    let statements = split_statements(script);
    let total = statements.len();
    let mut ran = Vec::new();
    for (k, st) in statements.iter().enumerate() {
        if st.is_comment_only() {
            continue;
        }
        let first_line = st
            .sql
            .lines()
            .find(|l| !l.trim().starts_with("--"))
            .unwrap_or("");
        if let Err(e) = session.execute(&st.sql).await {
            let at = e
                .position
                .map(|p| format!(", at character {p}"))
                .unwrap_or_default();
            let error = Error::part(
                step,
                location,
                format!(
                    "{}: statement {} of {} (line {}{at}) `{}` failed: {}",
                    file.file_name(),
                    k + 1,
                    total,
                    st.line,
                    shorten(first_line.trim(), 80),
                    e.message
                ),
            );
            return Err(ScriptFailure { error, ran });
        }
        ran.push(format!(
            "statement {} (line {}) `{}`",
            k + 1,
            st.line,
            shorten(first_line.trim(), 80)
        ));
    }
    Ok(())
}

impl ScriptFailure {
    /// The error for an up script run outside a transaction: what ran stays.
    pub(crate) fn outside_transaction(self, file: &MigrationFile) -> Error {
        if self.ran.is_empty() {
            return self.error.with_hint(format!(
                "{} runs outside a transaction (deploykit:no-transaction); its first \
                 statement failed, so nothing of it was applied; fix the file and deploy again",
                file.file_name()
            ));
        }
        Error::PartlyApplied {
            migration: file.file_name(),
            remains: self.ran,
            message: self.error.to_string(),
        }
    }

    /// The error for a down script run outside a transaction: what ran is undone,
    /// the rest is not, and the migration stays recorded.
    pub(crate) fn outside_transaction_down(self, file: &MigrationFile) -> Error {
        let done = if self.ran.is_empty() {
            "nothing of it ran".to_string()
        } else {
            format!("these of its statements did run: {}", self.ran.join("; "))
        };
        self.error
            .with_hint(format!(
                "the down script of {} runs outside a transaction and failed part-way ({done}); \
                 {} is still recorded as applied",
                file.id, file.id
            ))
            .with_next_step(NextStep::Recover {
                env: None,
                first: Some("finish or repair the revert by hand".into()),
            })
    }
}

/// The down script carries the same no-transaction marker as up scripts use.
pub(crate) fn down_runs_outside_transaction(down: &str) -> bool {
    down.lines().any(|l| l.trim() == NO_TRANSACTION_MARKER)
}

/// `s` cut to `max` characters, with an ellipsis when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
