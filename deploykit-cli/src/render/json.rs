//! `--json`: one JSON object per line on stdout.

use std::io::Write;

use deploykit_core::{Event, EventSink, RunReport};

/// Writes each event as one line of JSON to stdout.
pub struct JsonSink;

impl EventSink for JsonSink {
    fn emit(&self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The last line of a `--json` run: `{"event":"outcome", …the report}`.
pub fn print_outcome(report: &RunReport) {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    deploykit_core::secret::redact_json(&mut value);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("event".into(), "outcome".into());
    }
    println!("{value}");
}
