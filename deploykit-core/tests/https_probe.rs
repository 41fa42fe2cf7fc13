//! The HTTP probe over HTTPS, against `openssl s_server` with the rig's throwaway CA:
//! a certificate the host trusts is healthy; an untrusted or mismatched one is
//! unhealthy with a message that says it is the certificate.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deploykit_core::http::HttpProbe;
use deploykit_core::{HealthProbe, HealthStatus};

struct Tls {
    ca: String,
    other_ca: String,
    cert: String,
    key: String,
}

fn rig() -> Option<Tls> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("DEPLOYKIT_RIG_TLS_CA"),
        get("DEPLOYKIT_RIG_TLS_OTHER_CA"),
        get("DEPLOYKIT_RIG_TLS_CERT"),
        get("DEPLOYKIT_RIG_TLS_KEY"),
    ) {
        (Some(ca), Some(other_ca), Some(cert), Some(key)) => Some(Tls {
            ca,
            other_ca,
            cert,
            key,
        }),
        _ => {
            let why = "DEPLOYKIT_RIG_TLS_* not set: run through script/test (rig part tls)";
            if std::env::var_os("CI").is_some() {
                panic!("the TLS rig is missing in CI: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// `openssl s_server -www` on a free loopback port: answers 200 with a status page.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(tls: &Tls) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", &tls.cert, "-key", &tls.key])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl is installed (rig part tls)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "openssl s_server never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A probe built while `SSL_CERT_FILE` names `trusted` (the client reads the
/// trusted roots when it is built).
fn probe(url: &str, trusted: &str) -> HttpProbe {
    // One test in this binary, so nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("SSL_CERT_FILE", trusted) };
    HttpProbe::new("GET", url)
        .unwrap()
        .timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn https_is_healthy_only_with_a_certificate_the_host_trusts() {
    let Some(tls) = rig() else { return };
    let server = Server::start(&tls);
    let url = format!("https://127.0.0.1:{}/", server.port);

    let report = probe(&url, &tls.ca).check().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    let report = probe(&url, &tls.other_ca).check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(
        report.detail.to_lowercase().contains("certificate"),
        "says it is the certificate: {}",
        report.detail
    );

    // Trusted CA, but the certificate is for 127.0.0.1, not localhost.
    let wrong_name = format!("https://localhost:{}/", server.port);
    let report = probe(&wrong_name, &tls.ca).check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(
        report.detail.to_lowercase().contains("certificate"),
        "says it is the certificate: {}",
        report.detail
    );
}
