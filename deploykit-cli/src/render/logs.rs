//! A release's log lines for people: one header per source, then its lines.

use deploykit_core::LogLines;

/// The lines of every source, each under a `--- source ---` header, indented.
pub fn log_block(logs: &[LogLines]) -> String {
    let mut out = String::new();
    for l in logs {
        out.push_str(&format!("  --- {} ---\n", l.source));
        if l.lines.is_empty() {
            out.push_str("    (empty)\n");
        }
        for line in &l.lines {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

/// The same as a markdown code block per source, for `$GITHUB_STEP_SUMMARY`.
pub fn log_markdown(logs: &[LogLines]) -> String {
    let mut md = String::new();
    for l in logs {
        md.push_str(&format!("\n`{}`\n\n```text\n", l.source.replace('`', "'")));
        for line in &l.lines {
            md.push_str(&line.replace("```", "'''"));
            md.push('\n');
        }
        md.push_str("```\n");
    }
    md
}
