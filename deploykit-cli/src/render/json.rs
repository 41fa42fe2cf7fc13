//! `--json`: one JSON object per line on stdout.

use std::io::Write;

use deploykit_core::{Event, EventSink, RunReport};

/// Writes each event as one line of JSON to stdout.
pub struct JsonSink;

impl EventSink for JsonSink {
    fn emit(&self, event: &Event) {
        if let Ok(value) = serde_json::to_value(event) {
            print_event(value);
        }
    }
}

/// Prints one `--json` line: `value` with secrets redacted and an `"at"` field, the
/// time it was printed (RFC 3339, UTC, milliseconds), so a CI log read later says
/// when each step happened and how long it took.
pub fn print_event(mut value: serde_json::Value) {
    deploykit_core::secret::redact_json(&mut value);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("at".into(), now_rfc3339().into());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The last line of a `--json` run: `{"event":"outcome", …the report}`.
pub fn print_outcome(report: &RunReport) {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("event".into(), "outcome".into());
    }
    print_event(value);
}
