//! A Compose release whose container is healthy but fails deploykit's own probe:
//! the run's report carries what the new container printed, read from the engine
//! before the undo removed it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{rig, spec, WebStack};
use deploykit_core::testing::MemoryJournal;
use deploykit_core::{
    HealthPolicy, HealthProbe, HealthReport, HealthStatus, Outcome, Phase, Pipeline, Policy, Target,
};

const DISTINCT: &str = "DKLOGS: the search index is missing";

/// Healthy only while the page says v1: v2 "serves the wrong thing".
struct PageIsV1 {
    port: u16,
}

#[async_trait]
impl HealthProbe for PageIsV1 {
    fn name(&self) -> &str {
        "page is v1"
    }
    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        let page = common::http_get(self.port, "/index.html").await;
        let status = if page.as_deref() == Some("v1") {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        };
        HealthReport::new(self.name(), status, started.elapsed(), format!("{page:?}"))
    }
}

/// The release's Dockerfile, printing `DISTINCT` on stderr before serving.
fn noisy_dockerfile(stack: &WebStack) {
    let file = stack.path().join("Dockerfile");
    let text = std::fs::read_to_string(&file).unwrap();
    let (head, cmd) = text.split_once("CMD [").unwrap();
    let cmd = cmd.trim_end().trim_end_matches(']');
    let argv: Vec<&str> = cmd.split(", ").map(|w| w.trim_matches('"')).collect();
    let serve = argv.join(" ");
    std::fs::write(
        &file,
        format!("{head}CMD [\"sh\", \"-c\", \"echo '{DISTINCT}' >&2; exec {serve}\"]\n"),
    )
    .unwrap();
}

#[tokio::test]
async fn a_release_failing_verify_reports_what_its_container_printed() {
    let Some(rig) = rig("failure_logs") else {
        return;
    };
    let stack = WebStack::new(&rig, "dk-logs", common::reuseport::free_port()).await;
    let target = Arc::new(stack.target(&rig).await);
    let pipeline = Pipeline::new("staging")
        .target(target.clone() as Arc<dyn Target>)
        .probe(Arc::new(PageIsV1 { port: stack.port }))
        .policy(Policy::default().waive_backup(true).health(HealthPolicy {
            deadline: Duration::from_secs(10),
            attempts: 3,
            interval: Duration::from_millis(300),
            accept_degraded: false,
        }));
    let (v1, v2) = (spec("20260101T000000Z-v1"), spec("20260102T000000Z-v2"));
    stack.write_release("v1", true, 0);
    let report = pipeline.run(&v1, &MemoryJournal::default()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert!(report.logs.is_empty());

    stack.write_release("v2", true, 0);
    noisy_dockerfile(&stack);
    let report = pipeline.run(&v2, &MemoryJournal::default()).await.unwrap();
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(
        report.failed_phase,
        Some(Phase::Verify),
        "{:?}",
        report.error
    );
    assert!(
        report
            .logs
            .iter()
            .any(|l| l.lines.iter().any(|x| x.contains(DISTINCT))),
        "{:?}",
        report.logs
    );
    assert_eq!(target.current().await.unwrap(), Some(v1.id.clone()));
}
