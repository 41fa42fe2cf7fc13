//! Waiting until a service runs the spec deploykit wrote: every task the
//! orchestrator wants running is of the new image and `running`. A task whose
//! image has a HEALTHCHECK only reports `running` once the check passed (Swarm
//! holds it in `starting` until then), so `running` already means healthy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ServiceUpdateStatusStateEnum, Task, TaskState};
use deploykit_core::{Error, Result};

use super::spec::{replicas, without_digest};
use super::SwarmTarget;

/// How many failed tasks an error names (a crash-looping task leaves many).
const FAILED_TASKS_SHOWN: usize = 5;

/// Where a service stands against the image it should run.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Every wanted task runs the image.
    Converged,
    /// Still starting, or old tasks still run: ask again.
    Waiting,
    /// The engine paused the update (a new task failed): it will not go on alone.
    Paused(String),
}

/// Where `tasks` stand against `image` for a service of `want` replicas (`None`:
/// global) whose update status is `update`.
pub(super) fn progress(
    tasks: &[Task],
    image: &str,
    want: Option<i64>,
    update: Option<(&ServiceUpdateStatusStateEnum, &str)>,
) -> Progress {
    let wanted: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .collect();
    let all_new_and_running = wanted.iter().all(|t| {
        task_image(t) == Some(image)
            && t.status.as_ref().and_then(|s| s.state.as_ref()) == Some(&TaskState::RUNNING)
    });
    let enough = match want {
        Some(n) => wanted.len() as i64 == n,
        None => !wanted.is_empty(),
    };
    // While the engine still updates (or monitors the new tasks, `monitor` after
    // the last one started) a new task may yet fail: not done until it completed.
    let engine_busy = matches!(
        update,
        Some((
            ServiceUpdateStatusStateEnum::UPDATING | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED,
            _
        ))
    );
    if all_new_and_running && enough && !engine_busy {
        return Progress::Converged;
    }
    match update {
        Some((
            ServiceUpdateStatusStateEnum::PAUSED | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED,
            message,
        )) => Progress::Paused(message.to_string()),
        _ => Progress::Waiting,
    }
}

fn task_image(task: &Task) -> Option<&str> {
    let image = task
        .spec
        .as_ref()?
        .container_spec
        .as_ref()?
        .image
        .as_deref()?;
    Some(without_digest(image))
}

impl SwarmTarget {
    /// Waits until the service runs `image` everywhere, or fails with what its
    /// failed tasks said (service, node, state, error) when the engine paused the
    /// update or the deadline passed.
    pub(super) async fn wait_converged(&self, image: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            let service = self.service_now("activate").await?;
            let spec = service.spec.unwrap_or_default();
            let update = service.update_status.as_ref().and_then(|u| {
                let state = u.state.as_ref()?;
                Some((state, u.message.as_deref().unwrap_or("")))
            });
            let tasks = self.engine.service_tasks(&self.service).await?;
            let why = match progress(&tasks, image, replicas(&spec), update) {
                Progress::Converged => return Ok(()),
                Progress::Paused(message) => format!("the engine paused the update: {message}"),
                Progress::Waiting if started.elapsed() >= self.deadline => format!(
                    "its tasks did not all run {image} within {} s",
                    self.deadline.as_secs()
                ),
                Progress::Waiting => {
                    tokio::time::sleep(self.poll).await;
                    continue;
                }
            };
            let failed = self.failed_tasks(&tasks, image).await;
            return Err(
                Error::part("activate", self.where_(), format!("{why}; {failed}")).with_hint(
                    "the tasks' errors above say why; the previous spec is put back by the \
                 run's undo (or by recovering the run, if it was interrupted)",
                ),
            );
        }
    }

    /// The newest tasks of `image` that failed or are stuck, each with its node.
    async fn failed_tasks(&self, tasks: &[Task], image: &str) -> String {
        let nodes: HashMap<String, String> = self
            .engine
            .nodes()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| {
                let id = n.id?;
                let host = n.description.and_then(|d| d.hostname).unwrap_or_default();
                Some((id, host))
            })
            .collect();
        let state = |t: &Task| t.status.as_ref().and_then(|s| s.state);
        let mut stuck: Vec<&Task> = tasks
            .iter()
            .filter(|t| task_image(t) == Some(image))
            .filter(|t| state(t) != Some(TaskState::RUNNING))
            .collect();
        // The tasks that failed say why; the ones still starting come after them.
        stuck.sort_by_key(|t| !matches!(state(t), Some(TaskState::FAILED | TaskState::REJECTED)));
        let lines: Vec<String> = stuck
            .into_iter()
            .take(FAILED_TASKS_SHOWN)
            .map(|t| {
                let status = t.status.clone().unwrap_or_default();
                let node = t.node_id.as_deref().unwrap_or("");
                let node = match nodes.get(node) {
                    Some(host) => format!("node {host} ({})", &node[..node.len().min(12)]),
                    None if node.is_empty() => "no node yet".to_string(),
                    None => format!("node {}", &node[..node.len().min(12)]),
                };
                format!(
                    "task {}.{} on {node}: {}: {}",
                    self.service,
                    t.slot.map_or_else(|| "-".to_string(), |s| s.to_string()),
                    status
                        .state
                        .map_or_else(|| "unknown".into(), |s| s.to_string()),
                    status
                        .err
                        .filter(|e| !e.is_empty())
                        .or(status.message)
                        .unwrap_or_default(),
                )
            })
            .collect();
        if lines.is_empty() {
            format!("no task of service {} reported an error", self.service)
        } else {
            lines.join("; ")
        }
    }
}

/// How long [`SwarmTarget`] waits by default for the new tasks.
pub(super) const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{TaskSpec, TaskSpecContainerSpec, TaskStatus};

    fn task(image: &str, desired: TaskState, state: TaskState) -> Task {
        Task {
            desired_state: Some(desired),
            status: Some(TaskStatus {
                state: Some(state),
                ..Default::default()
            }),
            spec: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    use TaskState::{FAILED, RUNNING, SHUTDOWN, STARTING};

    #[test]
    fn converged_only_when_every_wanted_task_runs_the_new_image() {
        let old = task("web:v1", RUNNING, RUNNING);
        let starting = task("web:v2@sha256:00", RUNNING, STARTING);
        let new = task("web:v2@sha256:00", RUNNING, RUNNING);
        let retired = task("web:v1", SHUTDOWN, SHUTDOWN);
        assert_eq!(
            progress(&[old.clone(), starting], "web:v2", Some(1), None),
            Progress::Waiting
        );
        assert_eq!(
            progress(&[old, new.clone()], "web:v2", Some(1), None),
            Progress::Waiting
        );
        assert_eq!(
            progress(&[new.clone(), retired], "web:v2", Some(1), None),
            Progress::Converged
        );
        assert_eq!(
            progress(std::slice::from_ref(&new), "web:v2", Some(2), None),
            Progress::Waiting,
            "one of two"
        );
        let monitoring = (
            &ServiceUpdateStatusStateEnum::UPDATING,
            "update in progress",
        );
        assert_eq!(
            progress(
                std::slice::from_ref(&new),
                "web:v2",
                Some(1),
                Some(monitoring)
            ),
            Progress::Waiting,
            "the engine still watches the new task"
        );
        let completed = (&ServiceUpdateStatusStateEnum::COMPLETED, "update completed");
        assert_eq!(
            progress(&[new], "web:v2", Some(1), Some(completed)),
            Progress::Converged
        );
    }

    #[test]
    fn a_paused_update_stops_the_wait_unless_the_tasks_already_converged() {
        let old = task("web:v2", RUNNING, RUNNING);
        let failed = task("web:v3", SHUTDOWN, FAILED);
        let paused = (
            &ServiceUpdateStatusStateEnum::PAUSED,
            "update paused due to failure",
        );
        assert_eq!(
            progress(
                &[old.clone(), failed.clone()],
                "web:v3",
                Some(1),
                Some(paused)
            ),
            Progress::Paused("update paused due to failure".into())
        );
        // The undo's restore of v2 while the status still says paused: converged.
        assert_eq!(
            progress(&[old, failed], "web:v2", Some(1), Some(paused)),
            Progress::Converged
        );
    }
}
