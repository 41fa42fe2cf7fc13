//! The end-of-run summary: a table for people, markdown for GitHub Actions.

use deploykit_core::{Outcome, RunReport};

fn outcome_line(report: &RunReport) -> &'static str {
    match report.outcome {
        Outcome::Succeeded => "succeeded: the new release is live and healthy",
        Outcome::RolledBack => "failed and rolled back: everything this run did was undone",
        Outcome::RollbackFailed => "ROLLBACK FAILED: a human is needed",
        Outcome::Interrupted => "INTERRUPTED: run `deploykit recover`",
    }
}

/// A plain-text table of phases and the outcome.
pub fn summary_table(report: &RunReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{} → {} on {}: {}\n",
        report
            .previous
            .as_ref()
            .map(|p| p.as_str())
            .unwrap_or("(nothing)"),
        report.release,
        report.env,
        outcome_line(report)
    ));
    out.push_str("  phase       time     result\n");
    for p in &report.phases {
        out.push_str(&format!(
            "  {:<10} {:>6.1}s   {}\n",
            p.phase.to_string(),
            p.elapsed.as_secs_f64(),
            if p.ok { "ok" } else { "failed" }
        ));
    }
    if let Some(e) = &report.error {
        out.push_str(&format!(
            "  error: {}{}\n",
            report
                .failed_phase
                .map(|p| format!("[{p}] "))
                .unwrap_or_default(),
            e
        ));
    }
    if !report.logs.is_empty() {
        out.push_str(&format!(
            "  logs: the last lines {} printed are shown above (again: `deploykit logs --env {} --release {}`)\n",
            report.release, report.env, report.release
        ));
    }
    for u in &report.undone {
        out.push_str(&format!(
            "  undo: {} — {}\n",
            u.undo,
            u.error
                .as_deref()
                .map(|e| format!("FAILED: {e}"))
                .unwrap_or_else(|| "done".into())
        ));
    }
    if let Some(a) = &report.approver {
        out.push_str(&format!("  approved by: {a}\n"));
    }
    if let Some(n) = &report.next {
        out.push_str(&format!("  next: {n}\n"));
    }
    out.push_str(&format!("  run: {}\n", report.run_id));
    out
}

/// The same, as markdown for `$GITHUB_STEP_SUMMARY`.
pub fn github_summary(report: &RunReport) -> String {
    let mut md = format!(
        "### deploykit: {} to `{}`\n\n**{}**\n\n| phase | time | result |\n|---|---|---|\n",
        report.release,
        report.env,
        outcome_line(report)
    );
    for p in &report.phases {
        md.push_str(&format!(
            "| {} | {:.1}s | {} |\n",
            p.phase,
            p.elapsed.as_secs_f64(),
            if p.ok { "✅" } else { "❌" }
        ));
    }
    if let Some(e) = &report.error {
        md.push_str(&format!("\nError: `{}`\n", e.replace('`', "'")));
    }
    for u in &report.undone {
        md.push_str(&format!(
            "\n- undo: {} — {}",
            u.undo,
            u.error.as_deref().unwrap_or("done")
        ));
    }
    if !report.logs.is_empty() {
        md.push_str(&format!(
            "\n\n<details><summary>The last lines {} printed</summary>\n{}\n</details>\n",
            report.release,
            super::logs::log_markdown(&report.logs)
        ));
    }
    if let Some(n) = &report.next {
        md.push_str(&format!("\n\nNext: {n}\n"));
    }
    md.push('\n');
    md
}
