//! The last lines a release's PM2 processes wrote to their out and err logs: PM2
//! names each instance's log files in `pm2 jlist`, and `tail` reads them over the
//! same shell, as argv (no secret involved).

use deploykit_core::shell::Shell;
use deploykit_core::{Cmd, Error, LogLines, ReleaseId, Result, ShellExt};
use serde::Deserialize;

use crate::commands;
use crate::config::Pm2Config;
use crate::jlist::ReleaseVar;

/// The fields of a `pm2 jlist` entry that locate its logs.
#[derive(Debug, Deserialize)]
struct Logged {
    name: String,
    pm_id: u32,
    pm2_env: LoggedEnv,
}

#[derive(Debug, Deserialize)]
struct LoggedEnv {
    #[serde(default)]
    pm_out_log_path: Option<String>,
    #[serde(default)]
    pm_err_log_path: Option<String>,
    #[serde(default, rename = "DEPLOYKIT_RELEASE")]
    deploykit_release: Option<String>,
    #[serde(default)]
    env: Option<ReleaseVar>,
}

impl Logged {
    fn release(&self) -> Option<&str> {
        let env = &self.pm2_env;
        env.env
            .as_ref()
            .and_then(|e| e.deploykit_release.as_deref())
            .or(env.deploykit_release.as_deref())
    }
}

/// `tail -n <lines> -- <file>`.
pub(crate) fn tail(file: &str, lines: usize) -> Cmd {
    Cmd::new("tail")
        .arg("-n")
        .arg(lines.to_string())
        .arg("--")
        .arg(file)
}

/// The log files of every app of the release to read for `release`, as (source,
/// path), app by app: its instances
/// started for `release`, or every instance of the app when none says which
/// release it runs (started by an older deploykit). A file shared by instances
/// (`merge_logs`, one `log_file`) is read once.
fn files(
    procs: &[Logged],
    config: &Pm2Config,
    release: &ReleaseId,
    location: &str,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for name in config.app_names() {
        let app: Vec<&Logged> = procs.iter().filter(|p| p.name == name).collect();
        let of_release: Vec<&Logged> = app
            .iter()
            .copied()
            .filter(|p| p.release() == Some(release.as_str()))
            .collect();
        let chosen = if of_release.is_empty() {
            app
        } else {
            of_release
        };
        add_files(&mut out, &chosen, location);
    }
    out
}

/// Adds each log file of `chosen` not yet in `out`.
fn add_files(out: &mut Vec<(String, String)>, chosen: &[&Logged], location: &str) {
    for p in chosen {
        for (stream, path) in [
            ("stdout", &p.pm2_env.pm_out_log_path),
            ("stderr", &p.pm2_env.pm_err_log_path),
        ] {
            let Some(path) = path.as_deref().filter(|f| *f != "/dev/null") else {
                continue;
            };
            if out.iter().any(|(_, seen)| seen == path) {
                continue;
            }
            let source = format!("{location}: {}[{}] {stream}", p.name, p.pm_id);
            out.push((source, path.to_string()));
        }
    }
}

/// The last `lines` lines of each log file of `release`'s instances on this host.
pub(crate) async fn recent(
    shell: &dyn Shell,
    config: &Pm2Config,
    release: &ReleaseId,
    lines: usize,
) -> Result<Vec<LogLines>> {
    let location = shell.location().to_string();
    let list = shell.check("logs", &commands::jlist(config)).await?;
    let procs: Vec<Logged> = crate::jlist::parse_as(&list.stdout_text())
        .map_err(|e| Error::part("logs", &location, e))?;
    let mut out = Vec::new();
    for (source, path) in files(&procs, config, release, &location) {
        let read = shell.run(&tail(&path, lines), None).await?;
        let text = if read.success() {
            read.stdout_text()
        } else {
            format!("(cannot read {path}: {})", read.tail(3).trim())
        };
        out.push(LogLines {
            source: format!("{source} ({path})"),
            lines: text.lines().map(str::to_string).collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn config() -> Pm2Config {
        Pm2Config::new(
            "web",
            "/srv/app",
            Source::Git {
                repo: "file:///r".into(),
            },
        )
    }

    fn procs(json: &str) -> Vec<Logged> {
        crate::jlist::parse_as(json).unwrap()
    }

    #[test]
    fn the_new_releases_instances_are_read_once_per_file_and_other_apps_never() {
        let list = procs(
            r#"[
 {"name":"web","pm_id":0,"pm2_env":{"pm_out_log_path":"/h/web-out-0.log","pm_err_log_path":"/h/web-error-0.log","env":{"DEPLOYKIT_RELEASE":"r1"}}},
 {"name":"web","pm_id":1,"pm2_env":{"pm_out_log_path":"/h/web-out.log","pm_err_log_path":"/h/web-error.log","env":{"DEPLOYKIT_RELEASE":"r2"}}},
 {"name":"web","pm_id":2,"pm2_env":{"pm_out_log_path":"/h/web-out.log","pm_err_log_path":"/dev/null","env":{"DEPLOYKIT_RELEASE":"r2"}}},
 {"name":"other","pm_id":3,"pm2_env":{"pm_out_log_path":"/h/other.log","env":{"DEPLOYKIT_RELEASE":"r2"}}}
]"#,
        );
        let r2 = ReleaseId::parse("r2").unwrap();
        let got = files(&list, &config(), &r2, "deploy@web1");
        assert_eq!(
            got,
            vec![
                (
                    "deploy@web1: web[1] stdout".to_string(),
                    "/h/web-out.log".to_string()
                ),
                (
                    "deploy@web1: web[1] stderr".to_string(),
                    "/h/web-error.log".to_string()
                ),
            ]
        );
        // No instance says which release it runs: every instance of the app.
        let r9 = ReleaseId::parse("r9").unwrap();
        assert_eq!(files(&list, &config(), &r9, "h").len(), 4);
    }

    #[test]
    fn every_app_of_the_release_is_read() {
        let list = procs(
            r#"[
 {"name":"web","pm_id":0,"pm2_env":{"pm_out_log_path":"/h/web-out.log","env":{"DEPLOYKIT_RELEASE":"r2"}}},
 {"name":"worker","pm_id":1,"pm2_env":{"pm_out_log_path":"/h/worker-out.log","env":{"DEPLOYKIT_RELEASE":"r2"}}},
 {"name":"other","pm_id":2,"pm2_env":{"pm_out_log_path":"/h/other.log","env":{"DEPLOYKIT_RELEASE":"r2"}}}
]"#,
        );
        let r2 = ReleaseId::parse("r2").unwrap();
        let got: Vec<String> = files(&list, &config().with_app("worker"), &r2, "h")
            .into_iter()
            .map(|(_, path)| path)
            .collect();
        assert_eq!(got, ["/h/web-out.log", "/h/worker-out.log"]);
    }

    #[test]
    fn tail_is_argv_with_the_path_after_a_double_dash() {
        let c = tail("-weird name.log", 30);
        assert_eq!(c.program, "tail");
        assert_eq!(c.args, ["-n", "30", "--", "-weird name.log"]);
    }
}
