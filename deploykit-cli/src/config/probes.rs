//! Health probes: what "the release is healthy" means for an environment.

use serde::{Deserialize, Serialize};

/// One health probe.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeConfig {
    /// An HTTP request.
    Http {
        /// The URL.
        url: String,
        /// Expected status code.
        #[serde(default = "default_status")]
        expect_status: u16,
        /// Slower than this is `degraded`.
        #[serde(default = "default_latency")]
        max_latency_ms: u64,
        /// Read a JSON `status` field (`healthy`/`ok`, `degraded`, anything else unhealthy).
        #[serde(default)]
        json_status: bool,
    },
    /// A TCP connect.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// `SELECT 1` and required tables on `database.url`.
    Postgres {
        /// Slower than this is `degraded`.
        #[serde(default = "default_db_latency")]
        max_latency_ms: u64,
        /// Tables that must exist.
        #[serde(default)]
        tables: Vec<String>,
        /// Tables that must have row-level security enabled.
        #[serde(default)]
        rls_tables: Vec<String>,
    },
    /// Every PM2 instance of the app online and not restarting.
    Pm2 {
        /// Healthy only once every instance has been up this many seconds without a restart.
        #[serde(default = "default_settle")]
        settle_secs: u64,
    },
    /// The deployed container's own HEALTHCHECK.
    Container,
}

fn default_status() -> u16 {
    200
}
fn default_latency() -> u64 {
    5000
}
fn default_db_latency() -> u64 {
    1000
}
fn default_settle() -> u64 {
    5
}
