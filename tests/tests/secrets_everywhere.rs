//! A distinctive secret in every input slot — the database URL's password, the
//! app's env, a command migration's argv, the `repo` URL's token, the webhook URL —
//! then a deploy that fails and one that succeeds, through the `deploykit` binary
//! against the rig (sshd + PM2 + PostgreSQL). No secret may appear in any output
//! (stdout, stderr, `--json`, the GitHub step summary, the webhook body), in any
//! file deploykit wrote (state dir, journals, backup metadata, the host's deploy
//! dir), or on any command line of the deploy user's processes on the host; every
//! local file deploykit wrote is owner-only. And the app still gets its env.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod common;
use common::{copy_dir, free_port, get, run};
#[path = "secrets/servers.rs"]
mod servers;
use servers::{repo_server, webhook_server};

const DB_PASSWORD: &str = "PGPW-9f3k2-SECRET";
const APP_SECRET: &str = "APPENV-7x2q-SECRET";
const MIGRATION_TOKEN: &str = "MIGARG-4h8w-SECRET";
const REPO_TOKEN: &str = "REPO-5t6y-SECRET";
const HOOK_TOKEN: &str = "HOOK-2m9n-SECRET";
const ALL: [&str; 5] = [
    DB_PASSWORD,
    APP_SECRET,
    MIGRATION_TOKEN,
    REPO_TOKEN,
    HOOK_TOKEN,
];

struct Rig {
    ssh: String,
    ssh_user: String,
    ssh_key: String,
    known_hosts: String,
    pm2_root: PathBuf,
    pg_url: String,
}

fn rig() -> Option<Rig> {
    let vars = [
        "DEPLOYKIT_RIG_SSH_HOST",
        "DEPLOYKIT_RIG_SSH_PORT",
        "DEPLOYKIT_RIG_SSH_USER",
        "DEPLOYKIT_RIG_SSH_KEY",
        "DEPLOYKIT_RIG_SSH_KNOWN_HOSTS",
        "DEPLOYKIT_RIG_PM2_ROOT",
        "DEPLOYKIT_RIG_PG_URL",
    ];
    let v: Vec<Option<String>> = vars
        .iter()
        .map(|k| std::env::var(k).ok().filter(|s| !s.is_empty()))
        .collect();
    if let Some((name, _)) = vars.iter().zip(&v).find(|(_, x)| x.is_none()) {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is not set: the sshd/pm2/postgres rig is missing in CI (run through script/test)");
        }
        eprintln!("skipped: {name} is not set (run through script/test)");
        return None;
    }
    let v: Vec<String> = v.into_iter().map(Option::unwrap).collect();
    Some(Rig {
        ssh: format!("{}@{}:{}", v[2], v[0], v[1]),
        ssh_user: v[2].clone(),
        ssh_key: v[3].clone(),
        known_hosts: v[4].clone(),
        pm2_root: v[5].clone().into(),
        pg_url: v[6].clone(),
    })
}

/// Samples the command lines of `uid`'s processes until stopped; returns those
/// holding a secret.
fn watch_command_lines(uid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                if !e
                    .file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                {
                    continue;
                }
                if e.metadata().map(|m| m.uid()).ok() != Some(uid) {
                    continue;
                }
                if let Ok(bytes) = std::fs::read(e.path().join("cmdline")) {
                    let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
                    if ALL.iter().any(|s| line.contains(s)) && !seen.contains(&line) {
                        seen.push(line);
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        seen
    })
}

/// Every file under `dir` (not following links), skipping `skip` names.
fn walk(dir: &Path, skip: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if skip.iter().any(|s| e.file_name() == *s) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        out.push(p.clone());
        if meta.is_dir() {
            walk(&p, skip, out);
        }
    }
}

fn leaks(what: &str, text: &str) -> Vec<String> {
    ALL.iter()
        .filter(|s| text.contains(*s))
        .map(|s| format!("{what} holds {s}"))
        .collect()
}

#[test]
fn no_secret_reaches_output_files_or_host_command_lines() {
    let Some(rig) = rig() else { return };
    let base = rig
        .pm2_root
        .join(format!("secrets-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let repo = base.join("repo");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    copy_dir(&root.join("examples/node-app"), &repo);
    // The migration tool is committed (deploykit runs the deployed commit's copy);
    // its revision and the switch that makes it fail live outside the checkout, as a
    // real tool's state lives in the database.
    std::fs::create_dir_all(repo.join("mig")).unwrap();
    std::fs::write(repo.join("mig/README"), "the migration tool's directory\n").unwrap();
    let mig_state = base.join("migstate");
    std::fs::create_dir_all(&mig_state).unwrap();
    std::fs::write(
        repo.join(".gitignore"),
        "dist/\n.deploykit/\nbackups/\nmig/rev\nsummary.md\n",
    )
    .unwrap();
    let deploy_to = base.join("srv");
    let pm2_home = base.join("pm2home");
    let remote = base.join("remote.git");

    // The database, reached as a role whose password is one of the secrets.
    let tag = format!("sek_{}", std::process::id());
    let psql = |sql: &str| run(Std::new("psql").arg(&rig.pg_url).args(["-qtAc", sql]));
    psql(&format!("DROP DATABASE IF EXISTS {tag}"));
    psql(&format!("DROP ROLE IF EXISTS {tag}"));
    psql(&format!("CREATE ROLE {tag} LOGIN PASSWORD '{DB_PASSWORD}'"));
    psql(&format!("CREATE DATABASE {tag} OWNER {tag}"));
    let host_part = rig
        .pg_url
        .split('@')
        .nth(1)
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0;
    let db_url = format!("postgres://{tag}:{DB_PASSWORD}@{host_part}/{tag}");

    let (repo_port, repo_served) = repo_server(remote.clone(), "deploy", REPO_TOKEN);
    let (hook_port, hooks) = webhook_server();
    let app_port = free_port();
    let toml = format!(
        r#"[environments.staging.target]
kind = "pm2"
hosts = ["{ssh}"]
deploy_to = "{deploy_to}"
app = "sek"
repo = "${{SEK_REPO}}"
pm2_home = "{pm2_home}"
build = [["npm", "run", "build"]]
instances = 1
key_file = "{key}"
known_hosts = "{known}"

[environments.staging.target.env]
PORT = "{app_port}"
APP_NAME = "sek"
APP_INSTANCES = "1"
DATABASE_URL = "${{DATABASE_URL}}"
API_SECRET = "${{API_SECRET}}"

[environments.staging.database]
url = "${{DATABASE_URL}}"

[environments.staging.backup]
kind = "pg_dump"
dir = "backups/staging"

[environments.staging.migrations]
kind = "command"
dir = "mig"
up = ["sh", "-c", "psql \"$1\" -qc 'CREATE TABLE IF NOT EXISTS sek (id int)' || exit 1; if [ -f {state}/fail ]; then echo \"cannot migrate $1 with $3\" >&2; exit 1; fi; echo r2 > {state}/rev", "sh", "${{DATABASE_URL}}", "--token", "${{MIGRATION_TOKEN}}"]
current = ["sh", "-c", "cat {state}/rev 2>/dev/null || true"]
down = ["sh", "-c", "echo \"$1\" > {state}/rev", "sh", "{{revision}}", "${{MIGRATION_TOKEN}}"]

[[environments.staging.probes]]
kind = "http"
url = "http://127.0.0.1:{app_port}/api/health"
json_status = true

[[environments.staging.probes]]
kind = "pm2"
settle_secs = 1

[environments.staging.policy]
health_deadline_secs = 60
health_attempts = 30
health_interval_secs = 1
migration_failure = "down"

[environments.staging.notify]
webhook = "${{WEBHOOK_URL}}"
"#,
        ssh = rig.ssh,
        deploy_to = deploy_to.display(),
        pm2_home = pm2_home.display(),
        key = rig.ssh_key,
        known = rig.known_hosts,
        state = mig_state.display(),
    );
    std::fs::write(repo.join("deploykit.toml"), toml).unwrap();
    let git = |args: &[&str]| {
        run(Std::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args))
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "v1"]);
    let publish = || {
        let _ = std::fs::remove_dir_all(&remote);
        run(Std::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(&repo)
            .arg(&remote));
        run(Std::new("git")
            .arg("-C")
            .arg(&remote)
            .arg("update-server-info"));
    };
    publish();
    run(Std::new("chown").arg("-R").arg(&rig.ssh_user).arg(&base));
    let uid = std::fs::metadata(&base).unwrap().uid();

    let summary = repo.join("summary.md");
    let deploykit = |args: &[&str]| {
        let out = common::deploykit()
            .current_dir(&repo)
            .env("NO_COLOR", "1")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "safe.directory")
            .env("GIT_CONFIG_VALUE_0", "*")
            .env(
                "SEK_REPO",
                format!("http://deploy:{REPO_TOKEN}@127.0.0.1:{repo_port}/repo.git"),
            )
            .env("DATABASE_URL", &db_url)
            .env("API_SECRET", APP_SECRET)
            .env("MIGRATION_TOKEN", MIGRATION_TOKEN)
            .env(
                "WEBHOOK_URL",
                format!("http://127.0.0.1:{hook_port}/hooks/{HOOK_TOKEN}"),
            )
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_command_lines(uid, stop.clone());
    let mut found = Vec::new();

    // A deploy that fails: the migration fails, echoing its secret arguments.
    std::fs::write(mig_state.join("fail"), "").unwrap();
    let (code, text) = deploykit(&["--json", "deploy", "-e", "staging", "--ref", "HEAD"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("cannot migrate"),
        "the tool's error is shown: {text}"
    );
    found.extend(leaks("output of the failed deploy", &text));
    let (code, text) = deploykit(&["deploy", "-e", "staging", "--ref", "HEAD"]);
    assert_eq!(code, Some(1), "{text}");
    found.extend(leaks("plain output of the failed deploy", &text));

    // A deploy that succeeds.
    std::fs::remove_file(mig_state.join("fail")).unwrap();
    let (code, text) = deploykit(&["--json", "deploy", "-e", "staging", "--ref", "HEAD"]);
    assert_eq!(code, Some(0), "{text}");
    found.extend(leaks("output of the good deploy", &text));
    for args in [
        &["history", "-e", "staging"][..],
        &["status", "-e", "staging"][..],
        &["--json", "history", "-e", "staging"][..],
        &["config", "show"][..],
    ] {
        let (_, text) = deploykit(args);
        found.extend(leaks(&format!("output of {args:?}"), &text));
    }
    stop.store(true, Ordering::Relaxed);
    for line in watcher.join().unwrap() {
        found.push(format!(
            "a host process's command line holds a secret: {line}"
        ));
    }

    // The app runs with its env, secrets included.
    let (status, body) = get(app_port, "/api/health").expect("the app answers");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    // PM2 hands a cluster worker its env inside node (its `/proc/<pid>/environ` is
    // the daemon's), so ask PM2 what env the serving worker runs with.
    let jlist = run(Std::new("su")
        .args([&rig.ssh_user, "-c"])
        .arg(format!("PM2_HOME={} pm2 jlist", pm2_home.display())));
    let procs: Vec<serde_json::Value> =
        serde_json::from_str(jlist.lines().last().unwrap_or("[]")).expect("pm2 jlist prints JSON");
    let worker = procs
        .iter()
        .find(|p| p["pid"] == v["pid"])
        .unwrap_or_else(|| panic!("PM2 runs the worker that answered (pid {})", v["pid"]));
    let env = &worker["pm2_env"]["env"];
    assert_eq!(
        env["API_SECRET"].as_str(),
        Some(APP_SECRET),
        "the app got its secret env"
    );
    assert_eq!(env["DATABASE_URL"].as_str(), Some(db_url.as_str()));
    assert!(
        *repo_served.lock().unwrap() > 0,
        "the host fetched with the repo's credentials"
    );

    // The webhook got both runs' outcomes, and no secret in them.
    let hooks = hooks.lock().unwrap().clone();
    assert!(hooks.len() >= 3, "{hooks:?}");
    for h in &hooks {
        let body = h.split_once('\n').map(|b| b.1).unwrap_or("");
        found.extend(leaks("a webhook body", body));
    }
    let summary_text = std::fs::read_to_string(&summary).unwrap();
    assert!(summary_text.contains("deploykit"), "{summary_text}");

    // Every file deploykit wrote, here and on the host.
    let mut files = Vec::new();
    walk(&repo, &[".git", "node_modules"], &mut files);
    walk(&deploy_to, &[], &mut files);
    for f in &files {
        if let Ok(bytes) = std::fs::read(f) {
            found.extend(leaks(
                &f.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            ));
        }
    }
    // What deploykit writes: its backups here, and the environment's state (journals,
    // lock) on the host, under the deploy directory; a local state_dir only if the
    // run left one.
    let mut dirs = vec![repo.join("backups"), deploy_to.join(".deploykit")];
    if repo.join(".deploykit").exists() {
        dirs.push(repo.join(".deploykit"));
    }
    for dir in dirs {
        let mut ours = Vec::new();
        walk(&dir, &[], &mut ours);
        ours.push(dir);
        for f in ours {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            let want = if f.is_dir() { 0o700 } else { 0o600 };
            if mode != want {
                found.push(format!("{} has mode {mode:o}, not {want:o}", f.display()));
            }
        }
    }
    let _ = Std::new("su")
        .args([&rig.ssh_user, "-c"])
        .arg(format!(
            "PM2_HOME={} pm2 kill >/dev/null 2>&1",
            pm2_home.display()
        ))
        .status();
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    psql(&format!("DROP DATABASE IF EXISTS {tag}"));
    psql(&format!("DROP ROLE IF EXISTS {tag}"));
    let _ = std::fs::remove_dir_all(&base);
}
