//! The `SO_REUSEPORT` test app (tests/apps/reuseport_httpd.rs) as a container image:
//! compiled with plain `rustc` (std only, so no cargo lock or dependency build), then
//! copied with the shared libraries `ldd` names into a FROM-busybox build context.
//! Shared by the start-first tests and the `bench_compose` example.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The app's source.
pub const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/reuseport_httpd.rs");

/// Compiles the app into `out_dir/reuseport_httpd` (once per process) and returns it.
pub fn build_app(out_dir: &Path) -> Result<PathBuf, String> {
    static BUILT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.as_ref() {
        return Ok(path.clone());
    }
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let out = out_dir.join("reuseport_httpd");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(&rustc)
        .args(["--edition", "2021", "-O", "-o"])
        .arg(&out)
        .arg(SOURCE)
        .status()
        .map_err(|e| format!("cannot run {rustc}: {e}"))?;
    if !status.success() {
        return Err(format!("{rustc} {SOURCE} failed: {status}"));
    }
    *built = Some(out.clone());
    Ok(out)
}

/// Copies `app` to `<ctx>/root/reuseport_httpd` and every library `ldd` lists for it
/// to `<ctx>/root/<its path>`, so `COPY root/ /` on a libc-less busybox image runs it.
pub fn write_root(ctx: &Path, app: &Path) -> Result<(), String> {
    let root = ctx.join("root");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    std::fs::copy(app, root.join("reuseport_httpd")).map_err(|e| e.to_string())?;
    let ldd = Command::new("ldd")
        .arg(app)
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let lib = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(lib) = lib.filter(|l| l.starts_with('/')) else {
            continue;
        };
        let dest = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::copy(lib, &dest).map_err(|e| format!("{lib}: {e}"))?;
    }
    Ok(())
}

/// A loopback port nobody listens on now, from the kernel's ephemeral range: other
/// checkouts of this repository test on the same machine with host networking, so a
/// fixed port could be taken by their containers.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The Dockerfile of one release: serves `version` on 127.0.0.1:`port` with
/// `SO_REUSEPORT`; `ready = false` never listens (its HEALTHCHECK fails).
pub fn dockerfile(base: &str, port: u16, version: &str, ready: bool) -> String {
    format!(
        "FROM {base}\n\
         COPY root/ /\n\
         ENV APP_PORT={port} APP_VERSION={version} APP_READY={ready}\n\
         HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD test -f /tmp/ready\n\
         CMD [\"/reuseport_httpd\"]\n",
        ready = u8::from(ready)
    )
}

/// The Dockerfile of a release without a HEALTHCHECK whose app starts listening
/// `delay_ms` after its container starts.
pub fn dockerfile_unchecked(base: &str, port: u16, version: &str, delay_ms: u64) -> String {
    format!(
        "FROM {base}\n\
         COPY root/ /\n\
         ENV APP_PORT={port} APP_VERSION={version} APP_READY=1 APP_DELAY_MS={delay_ms}\n\
         CMD [\"/reuseport_httpd\"]\n"
    )
}
