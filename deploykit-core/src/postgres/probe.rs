//! [`PgHealthProbe`]: the database answers quickly, has its tables, and keeps
//! row-level security on where the app relies on it (the seeds check this on Supabase).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::Connection;

use crate::error::Result;
use crate::health::{HealthProbe, HealthReport, HealthStatus};
use crate::secret::Secret;

use super::conn::PgTarget;

/// Checks one PostgreSQL database: `SELECT 1` within a latency threshold
/// (slower is degraded), required tables exist, row-level security enabled on
/// the listed tables. Anything missing is unhealthy.
#[derive(Debug, Clone)]
pub struct PgHealthProbe {
    name: String,
    target: PgTarget,
    max_latency: Duration,
    timeout: Duration,
    required_tables: Vec<String>,
    rls_tables: Vec<String>,
}

impl PgHealthProbe {
    /// A probe of the database at `url`; `SELECT 1` slower than 1 s is degraded.
    pub fn new(url: &Secret) -> Result<Self> {
        let target = PgTarget::parse(url)?;
        Ok(Self {
            name: format!("{} SELECT 1", target.location()),
            target,
            max_latency: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            required_tables: Vec::new(),
            rls_tables: Vec::new(),
        })
    }

    /// `SELECT 1` slower than this reports degraded.
    pub fn max_latency(mut self, max: Duration) -> Self {
        self.max_latency = max;
        self
    }

    /// Connect + checks slower than this report unhealthy.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Tables (`schema.table` or `table` in `public`) that must exist.
    pub fn require_tables<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tables: I) -> Self {
        self.required_tables
            .extend(tables.into_iter().map(Into::into));
        self
    }

    /// Tables that must have row-level security enabled.
    pub fn require_rls<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tables: I) -> Self {
        self.rls_tables.extend(tables.into_iter().map(Into::into));
        self
    }

    async fn run(&self) -> std::result::Result<(HealthStatus, Duration, String), String> {
        let mut conn = self
            .target
            .connect("verify")
            .await
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| self.target.redact(&e.to_string()))?;
        let latency = started.elapsed();
        let mut problems = Vec::new();
        for t in &self.required_tables {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(qualified(t))
                .fetch_one(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            if !exists {
                problems.push(format!("table {t} is missing"));
            }
        }
        for t in &self.rls_tables {
            let rls: Option<bool> = sqlx::query_scalar(
                "SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass($1)",
            )
            .bind(qualified(t))
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
            match rls {
                Some(true) => {}
                Some(false) => problems.push(format!("row-level security is off on {t}")),
                None => problems.push(format!("table {t} (for row-level security) is missing")),
            }
        }
        let _ = conn.close().await;
        if !problems.is_empty() {
            return Ok((HealthStatus::Unhealthy, latency, problems.join("; ")));
        }
        if latency > self.max_latency {
            return Ok((
                HealthStatus::Degraded,
                latency,
                format!("SELECT 1 took {latency:?} (> {:?})", self.max_latency),
            ));
        }
        Ok((
            HealthStatus::Healthy,
            latency,
            format!("SELECT 1 in {latency:?}"),
        ))
    }
}

fn qualified(t: &str) -> String {
    if t.contains('.') {
        t.to_string()
    } else {
        format!("public.{t}")
    }
}

#[async_trait]
impl HealthProbe for PgHealthProbe {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        match tokio::time::timeout(self.timeout, self.run()).await {
            Ok(Ok((status, latency, detail))) => {
                HealthReport::new(&self.name, status, latency, detail)
            }
            Ok(Err(e)) => {
                HealthReport::new(&self.name, HealthStatus::Unhealthy, started.elapsed(), e)
            }
            Err(_) => HealthReport::new(
                &self.name,
                HealthStatus::Unhealthy,
                started.elapsed(),
                format!("no answer within {:?}", self.timeout),
            ),
        }
    }
}
