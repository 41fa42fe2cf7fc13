//! An environment's probe tables as [`HealthProbe`] parts.

use std::sync::Arc;
use std::time::Duration;

use deploykit_core::http::HttpProbe;
use deploykit_core::postgres::PgHealthProbe;
use deploykit_core::tcp::TcpProbe;
use deploykit_core::HealthProbe;

use crate::config::ProbeConfig;

use super::{needs_db, Database, WiringError};

pub(super) fn probe_part(
    env: &str,
    probe: &ProbeConfig,
    db: Option<&Database>,
) -> Result<Arc<dyn HealthProbe>, WiringError> {
    let wrap = |e: deploykit_core::Error| WiringError(format!("environment {env}: {e}"));
    match probe {
        ProbeConfig::Http {
            url,
            expect_status,
            max_latency_ms,
            json_status,
        } => Ok(Arc::new(
            HttpProbe::get(url.clone())
                .map_err(wrap)?
                .expect_status(*expect_status)
                .max_latency(Duration::from_millis(*max_latency_ms))
                .json_status(*json_status),
        )),
        ProbeConfig::Tcp { address } => Ok(Arc::new(TcpProbe::new(address.clone()))),
        ProbeConfig::Postgres {
            max_latency_ms,
            tables,
            rls_tables,
        } => match needs_db(env, "probe kind postgres", db)? {
            Database::Postgres(url) => Ok(Arc::new(
                PgHealthProbe::new(url)
                    .map_err(wrap)?
                    .max_latency(Duration::from_millis(*max_latency_ms))
                    .require_tables(tables.clone())
                    .require_rls(rls_tables.clone()),
            )),
            Database::Sqlite(_) => Err(WiringError(format!(
                "environment {env}: probe kind postgres needs a postgres:// database"
            ))),
        },
        ProbeConfig::Pm2 { .. } => Err(WiringError(format!(
            "environment {env}: probe kind pm2 needs a pm2 target"
        ))),
        ProbeConfig::Container => Err(WiringError(format!(
            "environment {env}: probe kind container needs a compose target"
        ))),
    }
}
