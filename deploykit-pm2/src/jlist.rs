//! `pm2 jlist` read with serde: the state of every PM2 process on a host.

use serde::Deserialize;

/// One PM2 process (one instance of an app in cluster mode). Only the fields
/// deploykit reads; PM2 prints many more.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pm2Process {
    /// The app name.
    pub name: String,
    /// PM2's id for this instance.
    pub pm_id: u32,
    /// The OS process id (0 or absent when not running).
    #[serde(default)]
    pub pid: Option<u32>,
    /// PM2's view of the process.
    pub pm2_env: Pm2Env,
}

/// The part of `pm2_env` deploykit reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pm2Env {
    /// `online`, `launching`, `stopping`, `stopped`, `errored`, `one-launch-status`.
    pub status: String,
    /// How often PM2 restarted this instance (crashes and reloads).
    #[serde(default)]
    pub restart_time: u64,
    /// Restarts PM2 counted as unstable (died before `min_uptime`).
    #[serde(default)]
    pub unstable_restarts: u64,
    /// `cluster_mode` or `fork_mode`.
    #[serde(default)]
    pub exec_mode: Option<String>,
    /// When this instance last started, in milliseconds since the epoch on the
    /// host's clock. PM2 resets it on every start: first start, crash restart and
    /// reload alike (checked with PM2 7), so "up for at least the settle window"
    /// means "no restart during it".
    #[serde(default)]
    pub pm_uptime: Option<u64>,
    /// The directory PM2 started the instance in (as given, symlinks unresolved).
    #[serde(default)]
    pub pm_cwd: Option<String>,
    /// The script PM2 runs (absolute).
    #[serde(default)]
    pub pm_exec_path: Option<String>,
    /// `DEPLOYKIT_RELEASE` as the instance was (re)started with: PM2 lists the
    /// process env at the top of `pm2_env`.
    #[serde(default, rename = "DEPLOYKIT_RELEASE")]
    pub deploykit_release: Option<String>,
    /// The one variable of the instance's env deploykit reads (never the others:
    /// they hold the app's secrets).
    #[serde(default)]
    pub env: Option<ReleaseVar>,
}

/// `DEPLOYKIT_RELEASE` in `pm2_env.env`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ReleaseVar {
    /// The release deploykit started the instance for.
    #[serde(default, rename = "DEPLOYKIT_RELEASE")]
    pub deploykit_release: Option<String>,
}

impl Pm2Process {
    /// Whether PM2 reports the instance as serving.
    pub fn online(&self) -> bool {
        self.pm2_env.status == "online"
    }

    /// The release deploykit started this instance for, from its env.
    pub fn release_var(&self) -> Option<&str> {
        let env = &self.pm2_env;
        env.env
            .as_ref()
            .and_then(|e| e.deploykit_release.as_deref())
            .or(env.deploykit_release.as_deref())
            .filter(|r| !r.is_empty())
    }
}

/// Parses `pm2 jlist` output. PM2 may print daemon start-up lines before the JSON
/// (e.g. when the daemon was not running), so the JSON array is looked for.
pub fn parse(output: &str) -> Result<Vec<Pm2Process>, String> {
    parse_as(output)
}

/// [`parse`], into any shape (the adoption record reads every field).
pub(crate) fn parse_as<T: serde::de::DeserializeOwned>(output: &str) -> Result<Vec<T>, String> {
    let lines: Vec<&str> = output.lines().collect();
    let mut last_error = None;
    for (i, line) in lines.iter().enumerate() {
        // Daemon notices look like `[PM2] …`; the list starts with `[{` or is `[]`.
        let t = line.trim_start();
        if !(t.starts_with("[{") || t.starts_with("[]") || t == "[") {
            continue;
        }
        let json = lines[i..].join("\n");
        match serde_json::from_str(&json) {
            Ok(list) => return Ok(list),
            Err(e) => {
                last_error = Some(format!(
                    "cannot read `pm2 jlist` output ({e}): {}",
                    excerpt(&json)
                ))
            }
        }
    }
    Err(last_error
        .unwrap_or_else(|| format!("no JSON list in `pm2 jlist` output: {}", excerpt(output))))
}

/// The first line [`commands::clocked_jlist`](crate::commands::clocked_jlist)
/// prints: the host's clock, read just before `pm2 jlist` ran.
pub const CLOCK_LINE: &str = "deploykit-clock-ms";

/// The second line [`commands::clocked_jlist`](crate::commands::clocked_jlist)
/// prints: where `current` points (nothing after it when there is no link).
pub const CURRENT_LINE: &str = "deploykit-current";

/// The third line [`commands::clocked_jlist`](crate::commands::clocked_jlist)
/// prints when the live release recorded its apps: their names, space-separated.
pub const APPS_LINE: &str = "deploykit-apps";

/// A `pm2 jlist` taken together with the host's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The host's clock (ms since the epoch) just before the list was read; `None`
    /// when the host did not print it. Compared only with the list's own
    /// `pm_uptime` values, never with this machine's clock, so clock skew between
    /// the two machines does not matter.
    pub clock_ms: Option<u64>,
    /// Where `current` pointed when the list was read (`Some("")`: no link);
    /// `None` when the host did not say.
    pub live: Option<String>,
    /// The apps the live release was prepared with; `None` when it did not
    /// record them (prepared by an older deploykit) or the host did not say.
    pub live_apps: Option<Vec<String>>,
    /// Every process PM2 lists.
    pub processes: Vec<Pm2Process>,
}

/// Parses the output of [`commands::clocked_jlist`](crate::commands::clocked_jlist):
/// an optional clock line, then whatever `pm2 jlist` printed.
pub fn parse_snapshot(output: &str) -> Result<Snapshot, String> {
    let clock_ms = output.lines().find_map(|l| {
        l.trim()
            .strip_prefix(CLOCK_LINE)
            .and_then(|v| v.trim().parse().ok())
    });
    let live = output.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix(CURRENT_LINE)
            .map(|v| v.trim().to_string())
    });
    let live_apps = output.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix(APPS_LINE)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
    });
    Ok(Snapshot {
        clock_ms,
        live,
        live_apps,
        processes: parse(output)?,
    })
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    if t.len() > 200 {
        let mut end = 200;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &t[..end])
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[PM2] Spawning PM2 daemon with pm2_home=/tmp/x
[PM2] PM2 Successfully daemonized
[{"pid":4242,"name":"web","pm2_env":{"status":"online","restart_time":1,"unstable_restarts":0,"exec_mode":"cluster_mode","instances":2,"env":{"SECRET":"x"}},"pm_id":0,"monit":{"memory":1,"cpu":0}},{"pid":0,"name":"web","pm2_env":{"status":"errored","restart_time":15,"exec_mode":"cluster_mode"},"pm_id":1},{"pid":7,"name":"other","pm2_env":{"status":"online"},"pm_id":2}]"#;

    #[test]
    fn reads_status_and_restarts_after_daemon_noise() {
        let list = parse(SAMPLE).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].name, "web");
        assert!(list[0].online());
        assert_eq!(list[0].pm2_env.restart_time, 1);
        assert_eq!(list[0].pm2_env.exec_mode.as_deref(), Some("cluster_mode"));
        assert!(!list[1].online());
        assert_eq!(list[1].pm2_env.restart_time, 15);
        assert_eq!(list[2].pm2_env.restart_time, 0);
        assert_eq!(parse("[]").unwrap(), vec![]);
    }

    #[test]
    fn a_snapshot_carries_the_hosts_clock_and_start_times() {
        let out = format!(
            "{CLOCK_LINE} 1795695753098\n{}",
            r#"[{"pid":1,"name":"web","pm_id":0,"pm2_env":{"status":"online","restart_time":2,"pm_uptime":1795695751000}}]"#
        );
        let snap = parse_snapshot(&out).unwrap();
        assert_eq!(snap.clock_ms, Some(1795695753098));
        assert_eq!(snap.processes[0].pm2_env.pm_uptime, Some(1795695751000));
        // Without the clock line (or with garbage in it) the list is still read.
        let snap = parse_snapshot(&format!("{CLOCK_LINE} %3N\n[]")).unwrap();
        assert_eq!(snap.clock_ms, None);
        assert_eq!(parse_snapshot(SAMPLE).unwrap().clock_ms, None);
        assert_eq!(
            parse_snapshot(SAMPLE).unwrap().processes[0]
                .pm2_env
                .pm_uptime,
            None
        );
        assert!(parse_snapshot(&format!("{CLOCK_LINE} 5\n")).is_err());
        assert_eq!(parse_snapshot(SAMPLE).unwrap().live_apps, None);
        let snap = parse_snapshot(&format!("{APPS_LINE} web worker \n[]")).unwrap();
        assert_eq!(snap.live_apps, Some(vec!["web".into(), "worker".into()]));
    }

    #[test]
    fn garbage_is_an_explained_error() {
        let err = parse("pm2: command not found").unwrap_err();
        assert!(err.contains("no JSON list"), "{err}");
        let err = parse("[{\"broken\":").unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
