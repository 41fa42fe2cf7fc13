//! HttpProbe against a tiny real HTTP server on a loopback socket.

use std::time::Duration;

use deploykit_core::http::HttpProbe;
use deploykit_core::{HealthProbe, HealthStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves: /ok, /healthy, /degraded, /down (JSON statuses), /plain (200 text),
/// /error (500), /hang (never answers). Returns the base URL.
async fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let method = req.split_whitespace().next().unwrap_or("").to_string();
                let (code, body) = match path.as_str() {
                    "/ok" => (200, r#"{"status":"ok"}"#.to_string()),
                    "/healthy" => (200, r#"{"status":"healthy","db":"up"}"#.to_string()),
                    "/degraded" => (200, r#"{"status":"degraded"}"#.to_string()),
                    "/down" => (200, r#"{"status":"down"}"#.to_string()),
                    "/plain" => (200, "fine".to_string()),
                    "/method" => (if method == "HEAD" { 204 } else { 405 }, String::new()),
                    "/hang" => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    _ => (500, "boom: database unreachable".to_string()),
                };
                let reason = if code == 200 { "OK" } else { "X" };
                let resp = format!(
                    "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    base
}

#[tokio::test]
async fn json_status_and_codes_decide_health() {
    let base = server().await;
    let check = |path: &str, json: bool| {
        let p = HttpProbe::get(format!("{base}{path}"))
            .unwrap()
            .json_status(json)
            .max_latency(Duration::from_secs(3600));
        async move { p.check().await }
    };
    assert_eq!(check("/ok", true).await.status, HealthStatus::Healthy);
    assert_eq!(check("/healthy", true).await.status, HealthStatus::Healthy);
    assert_eq!(
        check("/degraded", true).await.status,
        HealthStatus::Degraded
    );
    assert_eq!(check("/down", true).await.status, HealthStatus::Unhealthy);
    assert_eq!(check("/plain", false).await.status, HealthStatus::Healthy);
    assert_eq!(check("/plain", true).await.status, HealthStatus::Unhealthy);
    let r = check("/error", false).await;
    assert_eq!(r.status, HealthStatus::Unhealthy);
    assert!(r.detail.contains("status 500, expected 200"), "{r:?}");
    assert!(r.detail.contains("database unreachable"), "{r:?}");

    let head = HttpProbe::new("HEAD", format!("{base}/method"))
        .unwrap()
        .expect_status(204)
        .max_latency(Duration::from_secs(3600));
    assert_eq!(head.check().await.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn slower_than_max_latency_is_degraded() {
    let base = server().await;
    // Any real request takes more than zero time: degraded without a timed assertion.
    let p = HttpProbe::get(format!("{base}/ok"))
        .unwrap()
        .json_status(true)
        .max_latency(Duration::ZERO);
    let r = p.check().await;
    assert_eq!(r.status, HealthStatus::Degraded, "{r:?}");
    assert!(r.detail.contains("took"), "{r:?}");
    // A degraded body stays degraded, an unhealthy one unhealthy, whatever the latency.
    let p = HttpProbe::get(format!("{base}/down"))
        .unwrap()
        .json_status(true)
        .max_latency(Duration::ZERO);
    assert_eq!(p.check().await.status, HealthStatus::Unhealthy);
}

#[tokio::test]
async fn no_answer_within_timeout_or_refused_is_unhealthy() {
    let base = server().await;
    let p = HttpProbe::get(format!("{base}/hang"))
        .unwrap()
        .timeout(Duration::from_millis(300));
    let r = p.check().await;
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert!(r.detail.contains("within"), "{r:?}");

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let r = HttpProbe::get(format!("http://{addr}/x"))
        .unwrap()
        .check()
        .await;
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert!(r.detail.contains("cannot connect"), "{r:?}");
}
