//! PgHealthProbe against the real PostgreSQL started by script/test.

mod pg;

use std::time::Duration;

use deploykit_core::postgres::PgHealthProbe;
use deploykit_core::{HealthProbe, HealthStatus, Secret};
use pg::TestDb;

#[tokio::test]
async fn latency_tables_and_row_level_security() {
    let Some(db) = TestDb::create("probe").await else {
        return;
    };
    db.exec(
        "create table profiles (id int); alter table profiles enable row level security;
         create table bookings (id int);",
    )
    .await;
    let relaxed = || {
        PgHealthProbe::new(&db.url)
            .unwrap()
            .max_latency(Duration::from_secs(3600))
    };

    let r = relaxed()
        .require_tables(["profiles", "public.bookings"])
        .require_rls(["profiles"])
        .check()
        .await;
    assert_eq!(r.status, HealthStatus::Healthy, "{r:?}");

    let r = PgHealthProbe::new(&db.url)
        .unwrap()
        .max_latency(Duration::ZERO)
        .check()
        .await;
    assert_eq!(r.status, HealthStatus::Degraded, "{r:?}");

    let r = relaxed().require_tables(["invoices"]).check().await;
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert!(r.detail.contains("invoices is missing"), "{r:?}");

    let r = relaxed().require_rls(["bookings"]).check().await;
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert!(
        r.detail.contains("row-level security is off on bookings"),
        "{r:?}"
    );

    let wrong = Secret::new(
        db.url
            .expose()
            .replacen("deploykit:", "deploykit:Wr0ngPassw0rd-", 1),
    );
    let r = PgHealthProbe::new(&wrong).unwrap().check().await;
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert!(r.detail.contains("authentication failed"), "{r:?}");
    assert!(
        !r.detail.contains("Wr0ngPassw0rd") && !r.probe.contains("Wr0ngPassw0rd"),
        "{r:?}"
    );
}
