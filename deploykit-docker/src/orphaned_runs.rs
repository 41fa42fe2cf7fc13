//! One-off containers that outlive the deploykit process that started them.
//!
//! `compose run` starts the migration tool in a container the engine owns: if the
//! deploy is killed, the tool keeps running and may still commit. Reading the
//! database's revision while it runs gives an answer that is about to change, so a
//! `recover` would "undo" the wrong revision. [`settle_orphaned_runs`] waits for such
//! containers to end, and stops them if they do not, before a revision is read.

use std::time::{Duration, Instant};

use deploykit_core::Result;

use crate::engine::Engine;

/// Waits up to `wait` for `service`'s running one-off containers to end, then stops
/// the rest (a migration stopped midway rolls back its open transaction). Returns
/// the ids it had to stop.
pub async fn settle_orphaned_runs(
    engine: &Engine,
    project: &str,
    service: &str,
    wait: Duration,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + wait;
    loop {
        let running = engine.running_oneoff_ids(project, service).await?;
        if running.is_empty() {
            return Ok(Vec::new());
        }
        if Instant::now() >= deadline {
            for id in &running {
                engine.stop(id, Duration::from_secs(10)).await?;
            }
            return Ok(running);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
