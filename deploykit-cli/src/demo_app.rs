//! The demo's bundled app: a tiny HTTP server whose health the demo's releases
//! control through files in the release directory.
//!
//! `VERSION` holds the version it reports; `HEALTHY` holds `yes` or `no`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// Serves until killed: `GET /api/health` answers from the release's files.
pub fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let version = std::fs::read_to_string("VERSION")
        .unwrap_or_else(|_| "unknown".into())
        .trim()
        .to_string();
    let healthy = std::fs::read_to_string("HEALTHY")
        .map(|s| s.trim() == "yes")
        .unwrap_or(false);
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request_line = String::new();
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut request_line).is_err() {
            continue;
        }
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
            line.clear();
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = match path {
            "/api/health" if healthy => (
                "200 OK",
                format!("{{\"status\":\"healthy\",\"version\":\"{version}\"}}"),
            ),
            "/api/health" => (
                "503 Service Unavailable",
                format!("{{\"status\":\"unhealthy\",\"version\":\"{version}\"}}"),
            ),
            _ => (
                "200 OK",
                format!("{{\"app\":\"deploykit demo\",\"version\":\"{version}\"}}"),
            ),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(())
}
