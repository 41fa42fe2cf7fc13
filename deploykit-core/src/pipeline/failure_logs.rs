//! When verify fails: the new release's last log lines, read while its processes
//! still run (before the undo replaces them), into the report and an event.

use super::*;
use crate::logs::{LogLines, FAILURE_LOG_LINES};
use crate::release::ReleaseId;

/// Reading logs must not hold up the undo for long: the release is unhealthy and
/// may be serving errors.
const LOG_DEADLINE: Duration = Duration::from_secs(20);

impl Pipeline {
    /// Reads `release`'s recent logs from the target, redacted, into `report.logs`
    /// and an [`Event::ReleaseLogs`]. A failure to read them is a warning: the
    /// undo goes on regardless.
    pub(super) async fn logs_on_failure(&self, release: &ReleaseId, report: &mut RunReport) {
        let Some(target) = &self.target else {
            return;
        };
        let read =
            tokio::time::timeout(LOG_DEADLINE, target.recent_logs(release, FAILURE_LOG_LINES))
                .await;
        let logs: Vec<LogLines> = match read {
            Ok(Ok(logs)) => logs.into_iter().map(LogLines::redacted).collect(),
            Ok(Err(e)) => {
                self.events.emit(Event::Warning {
                    message: format!("could not read the logs of {release}: {e}"),
                });
                return;
            }
            Err(_) => {
                self.events.emit(Event::Warning {
                    message: format!(
                        "reading the logs of {release} took over {}s; undoing without them",
                        LOG_DEADLINE.as_secs()
                    ),
                });
                return;
            }
        };
        if logs.is_empty() {
            return;
        }
        report.logs = logs.clone();
        self.events.emit(Event::ReleaseLogs {
            release: release.to_string(),
            logs,
        });
    }
}
