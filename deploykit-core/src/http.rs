//! [`HttpProbe`] (feature `http`): one HTTP request, judged by status code,
//! latency and optionally the `status` field of a JSON body — what the seeds'
//! "curl /api/health 30 times" loops checked by hand. TLS is rustls (ring).

use std::sync::Once;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::error_chain::error_chain;
use crate::health::{HealthProbe, HealthReport, HealthStatus};
use crate::secret::redact;

static CRYPTO_PROVIDER: Once = Once::new();

/// Installs rustls' ring crypto provider for the process, once. reqwest built
/// with `rustls-no-provider` panics when building a client without one.
pub fn install_crypto_provider() {
    CRYPTO_PROVIDER.call_once(|| {
        // Err means another provider is already installed: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Checks one HTTP endpoint once.
///
/// Healthy: the expected status, within `max_latency`, and (with
/// [`json_status`](Self::json_status)) a JSON body whose `status` is `healthy` or
/// `ok`. Degraded: slower than `max_latency`, or `status` is `degraded`.
/// Anything else (other status code, other `status` value, no answer within the
/// timeout, connection error) is unhealthy.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    name: String,
    method: reqwest::Method,
    url: String,
    expected_status: u16,
    max_latency: Duration,
    timeout: Duration,
    json_status: bool,
    client: reqwest::Client,
}

impl HttpProbe {
    /// A `GET url` probe expecting 200 within 5 s (timeout 10 s).
    pub fn get(url: impl Into<String>) -> Result<Self> {
        Self::new("GET", url)
    }

    /// A probe sending `method` to `url`.
    pub fn new(method: &str, url: impl Into<String>) -> Result<Self> {
        install_crypto_provider();
        let url = url.into();
        let method =
            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                Error::Invalid {
                    what: "HTTP method",
                    value: method.into(),
                    reason: "not an HTTP method".into(),
                }
            })?;
        let parsed = reqwest::Url::parse(&url).map_err(|e| Error::Invalid {
            what: "probe URL",
            value: redact(&url, &[]),
            reason: e.to_string(),
        })?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("deploykit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::part("verify", redact(&url, &[]), e.to_string()))?;
        Ok(Self {
            name: format!(
                "http {method} {}",
                redact(
                    &format!(
                        "{}://{}{}",
                        parsed.scheme(),
                        host_port(&parsed),
                        parsed.path()
                    ),
                    &[]
                )
            ),
            method,
            url,
            expected_status: 200,
            max_latency: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            json_status: false,
            client,
        })
    }

    /// The status code that counts as success (default 200).
    pub fn expect_status(mut self, status: u16) -> Self {
        self.expected_status = status;
        self
    }

    /// Answers slower than this are degraded (default 5 s).
    pub fn max_latency(mut self, max: Duration) -> Self {
        self.max_latency = max;
        self
    }

    /// No answer within this is unhealthy (default 10 s); applies per request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Also read the JSON body's `status` field (`healthy`/`ok`, `degraded`).
    pub fn json_status(mut self, check: bool) -> Self {
        self.json_status = check;
        self
    }

    /// Overrides the probe's display name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

fn host_port(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// Judges a JSON health body's `status` field.
pub fn judge_json_status(body: &str) -> (HealthStatus, String) {
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return (HealthStatus::Unhealthy, format!("body is not JSON: {e}")),
    };
    match value.get("status").and_then(|s| s.as_str()) {
        Some(s) if s.eq_ignore_ascii_case("healthy") || s.eq_ignore_ascii_case("ok") => {
            (HealthStatus::Healthy, format!("status {s:?}"))
        }
        Some(s) if s.eq_ignore_ascii_case("degraded") => {
            (HealthStatus::Degraded, format!("status {s:?}"))
        }
        Some(s) => (HealthStatus::Unhealthy, format!("status {s:?}")),
        None => (
            HealthStatus::Unhealthy,
            "JSON body has no string `status` field".into(),
        ),
    }
}

fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = one_line.chars().take(200).collect();
    redact(&short, &[])
}

#[async_trait]
impl HealthProbe for HttpProbe {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> HealthReport {
        let started = Instant::now();
        let request = self
            .client
            .request(self.method.clone(), &self.url)
            .timeout(self.timeout)
            .send();
        let response = match request.await {
            Ok(r) => r,
            Err(e) => {
                let detail = if e.is_timeout() {
                    format!("no answer within {:?}", self.timeout)
                } else if e.is_connect() {
                    format!("cannot connect: {}", redact(&error_chain(&e), &[]))
                } else {
                    redact(&error_chain(&e), &[])
                };
                return HealthReport::new(
                    &self.name,
                    HealthStatus::Unhealthy,
                    started.elapsed(),
                    detail,
                );
            }
        };
        let status = response.status().as_u16();
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => {
                let detail = if e.is_timeout() {
                    format!("body not complete within {:?}", self.timeout)
                } else {
                    format!("reading the body failed: {}", redact(&error_chain(&e), &[]))
                };
                return HealthReport::new(
                    &self.name,
                    HealthStatus::Unhealthy,
                    started.elapsed(),
                    detail,
                );
            }
        };
        let latency = started.elapsed();
        if status != self.expected_status {
            return HealthReport::new(
                &self.name,
                HealthStatus::Unhealthy,
                latency,
                format!(
                    "status {status}, expected {}: {}",
                    self.expected_status,
                    excerpt(&body)
                ),
            );
        }
        let (mut verdict, mut detail) = (HealthStatus::Healthy, format!("status {status}"));
        if self.json_status {
            let (v, d) = judge_json_status(&body);
            verdict = v;
            detail = format!("{detail}, {d}");
        }
        if latency > self.max_latency && verdict == HealthStatus::Healthy {
            verdict = HealthStatus::Degraded;
            detail = format!("{detail}, took {latency:?} (> {:?})", self.max_latency);
        }
        HealthReport::new(&self.name, verdict, latency, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_status_values() {
        assert_eq!(
            judge_json_status(r#"{"status":"ok"}"#).0,
            HealthStatus::Healthy
        );
        assert_eq!(
            judge_json_status(r#"{"status":"healthy"}"#).0,
            HealthStatus::Healthy
        );
        assert_eq!(
            judge_json_status(r#"{"status":"degraded"}"#).0,
            HealthStatus::Degraded
        );
        assert_eq!(
            judge_json_status(r#"{"status":"down"}"#).0,
            HealthStatus::Unhealthy
        );
        assert_eq!(
            judge_json_status(r#"{"ok":true}"#).0,
            HealthStatus::Unhealthy
        );
        assert_eq!(judge_json_status("<html>").0, HealthStatus::Unhealthy);
    }

    #[test]
    fn names_never_show_credentials_or_queries() {
        let p = HttpProbe::get("https://user:pw@example.com:8443/api/health?token=abc").unwrap();
        assert_eq!(p.name(), "http GET https://example.com:8443/api/health");
        assert!(HttpProbe::new("GE T", "http://x").is_err());
        assert!(HttpProbe::get("not a url").is_err());
    }
}
