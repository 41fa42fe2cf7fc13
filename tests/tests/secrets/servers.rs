//! Local HTTP servers for the secrets test: a git "dumb HTTP" repository behind
//! Basic auth (so the host must present the `repo` URL's credentials), and a
//! webhook receiver that keeps what it was sent.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Standard base64, for the Basic auth header the repository server expects.
fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One HTTP request read off `stream`: the request line, headers and body.
fn read_request(
    stream: &mut std::net::TcpStream,
) -> Option<(String, BTreeMap<String, String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((line.trim_end().to_string(), headers, body))
}

fn respond(stream: &mut std::net::TcpStream, status: &str, extra: &str, body: &[u8]) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}

/// A git "dumb HTTP" server for the bare repository `dir`, behind Basic auth
/// `user:password`: serves its files, answers 401 without the right credentials.
/// Returns its port and how many requests were authorised.
pub fn repo_server(dir: PathBuf, user: &str, password: &str) -> (u16, Arc<Mutex<usize>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
    let served = Arc::new(Mutex::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some((line, headers, _)) = read_request(&mut stream) else {
                continue;
            };
            if headers.get("authorization") != Some(&expected) {
                respond(
                    &mut stream,
                    "401 Unauthorized",
                    "WWW-Authenticate: Basic realm=\"git\"\r\n",
                    b"",
                );
                continue;
            }
            *count.lock().unwrap() += 1;
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or("");
            let rel = path.trim_start_matches("/repo.git/");
            match std::fs::read(dir.join(rel)) {
                Ok(bytes) if !rel.contains("..") => respond(&mut stream, "200 OK", "", &bytes),
                _ => respond(&mut stream, "404 Not Found", "", b""),
            }
        }
    });
    (port, served)
}

/// A webhook receiver: keeps every request (line and body) it gets.
pub fn webhook_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if let Some((line, _, body)) = read_request(&mut stream) {
                keep.lock()
                    .unwrap()
                    .push(format!("{line}\n{}", String::from_utf8_lossy(&body)));
                respond(&mut stream, "200 OK", "", b"ok");
            }
        }
    });
    (port, got)
}
