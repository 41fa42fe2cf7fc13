//! Webhook notifications (Slack-compatible JSON) on success, rollback and failure.

use std::time::Duration;

use deploykit_core::{redact, Outcome, RunReport};

use crate::config::{Environment, NotifyOn};

/// The message text for a run.
pub fn message(env: &str, report: &RunReport) -> String {
    let what =
        match report.outcome {
            Outcome::Succeeded => {
                format!(":white_check_mark: {} deployed to {env}", report.release)
            }
            Outcome::RolledBack => {
                format!(
            ":leftwards_arrow_with_hook: {} failed on {env} in {} and was rolled back to {}",
            report.release,
            report.failed_phase.map(|p| p.to_string()).unwrap_or_default(),
            report.previous.as_ref().map(|p| p.as_str()).unwrap_or("nothing")
        )
            }
            Outcome::RollbackFailed | Outcome::Interrupted => format!(
                ":rotating_light: {} on {env}: {} — a human is needed. {}",
                report.release,
                report.outcome,
                report.next.as_deref().unwrap_or("")
            ),
        };
    match &report.error {
        Some(e) if report.outcome != Outcome::Succeeded => format!("{what}\nerror: {e}"),
        _ => what,
    }
}

fn wanted(env: &Environment, outcome: Outcome) -> bool {
    let on = &env.notify.on;
    let kind = match outcome {
        Outcome::Succeeded => NotifyOn::Success,
        Outcome::RolledBack => NotifyOn::Rollback,
        Outcome::RollbackFailed | Outcome::Interrupted => NotifyOn::Failure,
    };
    on.is_empty() || on.contains(&kind)
}

/// Posts the run's outcome to the environment's webhook, if configured. A failed
/// notification is a warning: it never changes the run's outcome.
pub async fn announce(env: &Environment, report: &RunReport) {
    let Some(url) = &env.notify.webhook else {
        return;
    };
    if !wanted(env, report.outcome) {
        return;
    }
    deploykit_core::http::install_crypto_provider();
    let body = serde_json::json!({ "text": redact(&message(&report.env, report), &[]) });
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => return eprintln!("warning: notification not sent: {e}"),
    };
    match client.post(url.expose()).json(&body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => eprintln!("warning: the notification webhook answered {}", r.status()),
        Err(e) => eprintln!(
            "warning: notification not sent: {}",
            redact(&e.to_string(), &[url])
        ),
    }
}
