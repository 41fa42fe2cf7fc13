//! The last lines a release's containers printed, read from the engine (the
//! `docker logs` API) while they still exist: a failed verify shows them.

use deploykit_core::{LogLines, ReleaseId, Result};

use super::ComposeTarget;

impl ComposeTarget {
    /// The logs of the service's containers that run `release`, newest first; if
    /// none runs it, the newest container's (it is the one that just failed).
    pub(super) async fn logs_of(&self, release: &ReleaseId, lines: usize) -> Result<Vec<LogLines>> {
        let all = self
            .engine
            .service_containers(&self.project.name, &self.service)
            .await?;
        let of_release: Vec<_> = all
            .iter()
            .filter(|c| self.release_of(c).as_ref() == Some(release))
            .collect();
        let chosen = if of_release.is_empty() {
            all.iter().take(1).collect()
        } else {
            of_release
        };
        let mut out = Vec::new();
        for c in chosen {
            let text = self.engine.log_tail(&c.id, lines).await;
            out.push(LogLines {
                source: format!(
                    "{}: container {} ({}, {})",
                    self.engine.location(),
                    c.name,
                    c.image,
                    c.status
                ),
                lines: text.lines().map(str::to_string).collect(),
            });
        }
        Ok(out)
    }
}
