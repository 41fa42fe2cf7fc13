//! The rig's PostgreSQL and S3-compatible server for the object-store backup
//! tests: throwaway databases, unique bucket prefixes, and a look at uploads in
//! flight. Under `CI` a missing server fails the test.
#![allow(dead_code)] // each test file uses only some of these

use std::io::{Read, Write};
use std::process::Command as Std;

/// The rig's servers, from script/rig's `DEPLOYKIT_RIG_*` variables.
#[derive(Debug, Clone)]
pub struct Rig {
    /// Superuser URL of the rig's PostgreSQL.
    pub pg_admin: String,
    /// `http://127.0.0.1:<port>` of the S3-compatible server.
    pub endpoint: String,
    /// A bucket that exists.
    pub bucket: String,
    /// Its region.
    pub region: String,
    /// Throwaway credentials, which must never show in output or on disk.
    pub access_key: String,
    /// See `access_key`.
    pub secret_key: String,
}

/// The rig, or `None` (skipped, said on stderr) outside CI when it is not running.
pub fn rig() -> Option<Rig> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("DEPLOYKIT_RIG_PG_URL"),
        var("DEPLOYKIT_RIG_S3_ENDPOINT"),
    ) {
        (Some(pg_admin), Some(endpoint)) => Some(Rig {
            pg_admin,
            endpoint,
            bucket: var("DEPLOYKIT_RIG_S3_BUCKET").expect("DEPLOYKIT_RIG_S3_BUCKET"),
            region: var("DEPLOYKIT_RIG_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key: var("DEPLOYKIT_RIG_S3_ACCESS_KEY_ID").expect("S3 access key"),
            secret_key: var("DEPLOYKIT_RIG_S3_SECRET_ACCESS_KEY").expect("S3 secret key"),
        }),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "DEPLOYKIT_RIG_PG_URL or DEPLOYKIT_RIG_S3_ENDPOINT is not set but CI is: \
                     run the tests through script/test, which starts PostgreSQL and the S3 server"
                );
            }
            eprintln!("skipped: the rig's PostgreSQL or S3 server is not running (run through script/test)");
            None
        }
    }
}

/// `label` made unique to this process and moment (for names and prefixes).
pub fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{label}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// Runs one SQL statement with psql; asserts success; returns the output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Std::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Rig {
    /// A new, empty database; returns its URL.
    pub fn database(&self, label: &str) -> String {
        let name = unique(&format!("dk_{label}"));
        psql(&self.pg_admin, &format!("create database {name}"));
        let (base, _) = self.pg_admin.rsplit_once('/').unwrap();
        format!("{base}/{name}")
    }

    /// `s3://<bucket>/<prefix>`.
    pub fn store_url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// Parts already uploaded to unfinished multipart uploads under `prefix`.
    /// (Plain requests: the rig's server, moto, does not check signatures.)
    pub fn parts_uploaded(&self, prefix: &str) -> usize {
        let uploads = self.get(&format!("/{}?uploads&prefix={prefix}", self.bucket));
        let mut parts = 0;
        for upload in uploads.split("<Upload>").skip(1) {
            let (Some(key), Some(id)) = (tag(upload, "Key"), tag(upload, "UploadId")) else {
                continue;
            };
            let listed = self.get(&format!("/{}/{key}?uploadId={id}", self.bucket));
            parts += listed.matches("<Part>").count();
        }
        parts
    }

    fn get(&self, path_and_query: &str) -> String {
        let authority = self.endpoint.trim_start_matches("http://");
        let Ok(mut conn) = std::net::TcpStream::connect(authority) else {
            return String::new();
        };
        let _ = write!(
            conn,
            "GET {path_and_query} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        );
        let mut body = String::new();
        let _ = conn.read_to_string(&mut body);
        body
    }
}

fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// Pids of the direct children of `pid` whose command is `name`.
pub fn children_named(pid: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "<pid> (<comm>) <state> <ppid> …"
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
        else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if comm == name && ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}
