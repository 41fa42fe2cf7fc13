//! A tiny HTTP server for start-first tests and benchmarks (not a cargo target: the
//! tests compile it with plain `rustc`, std only, and put it in a FROM-busybox image).
//!
//! * Binds 127.0.0.1:$APP_PORT with `SO_REUSEPORT`, so under `network_mode: host`
//!   a new container can bind the port while the old one still serves.
//! * Answers every request `200` with `$APP_VERSION` as the body.
//! * Writes `/tmp/ready` once it listens (the image's HEALTHCHECK tests that file:
//!   an HTTP check on the shared port could be answered by the *other* container).
//! * `APP_READY=0` plays a broken release: it never binds and never gets ready.
//! * On SIGTERM it stops accepting (after taking what is already queued), closes its
//!   listener, finishes in-flight requests and exits 0.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: i32) {
    TERM.store(true, Ordering::SeqCst);
}

#[repr(C)]
struct SockaddrIn {
    family: u16,
    port: u16,
    addr: u32,
    zero: [u8; 8],
}

extern "C" {
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
    fn bind(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
    fn listen(fd: i32, backlog: i32) -> i32;
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
}

const AF_INET: i32 = 2;
const SOCK_STREAM: i32 = 1;
const SOL_SOCKET: i32 = 1;
const SO_REUSEADDR: i32 = 2;
const SO_REUSEPORT: i32 = 15;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

fn listen_reuseport(port: u16) -> std::io::Result<TcpListener> {
    let os = std::io::Error::last_os_error;
    // SAFETY: plain socket syscalls on a descriptor this function owns; it is handed
    // to TcpListener (which closes it) only after every call succeeded.
    unsafe {
        let fd = socket(AF_INET, SOCK_STREAM, 0);
        if fd < 0 {
            return Err(os());
        }
        let one: i32 = 1;
        for opt in [SO_REUSEADDR, SO_REUSEPORT] {
            if setsockopt(fd, SOL_SOCKET, opt, &one, 4) != 0 {
                return Err(os());
            }
        }
        let addr = SockaddrIn {
            family: AF_INET as u16,
            port: port.to_be(),
            addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            zero: [0; 8],
        };
        if bind(fd, &addr, std::mem::size_of::<SockaddrIn>() as u32) != 0 {
            return Err(os());
        }
        if listen(fd, 128) != 0 {
            return Err(os());
        }
        Ok(TcpListener::from_raw_fd(fd))
    }
}

fn serve(mut stream: TcpStream, version: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("{version}\n");
    let _ = stream.write_all(
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

fn main() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
    }
    let version = std::env::var("APP_VERSION").unwrap_or_else(|_| "unversioned".into());
    let port: u16 = std::env::var("APP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    if std::env::var("APP_READY").as_deref() == Ok("0") {
        eprintln!("{version}: cannot connect to the database; not listening");
        while !TERM.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::process::exit(1);
    }
    // A slow start (APP_DELAY_MS): the container runs before the app listens.
    if let Some(ms) = std::env::var("APP_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let listener = match listen_reuseport(port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{version}: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let _ = std::fs::write("/tmp/ready", b"ok\n");
    eprintln!("{version}: serving on 127.0.0.1:{port} (SO_REUSEPORT)");
    let mut workers = Vec::new();
    loop {
        let stopping = TERM.load(Ordering::SeqCst);
        match listener.accept() {
            Ok((stream, _)) => {
                let v = version.clone();
                workers.push(std::thread::spawn(move || serve(stream, &v)));
                workers.retain(|w| !w.is_finished());
            }
            // Nothing queued: stop now if asked to, else wait a little.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if stopping {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => eprintln!("{version}: accept: {e}"),
        }
    }
    drop(listener);
    let _ = std::fs::remove_file("/tmp/ready");
    for w in workers {
        let _ = w.join();
    }
    eprintln!("{version}: stopped cleanly");
}
