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
}

impl Pm2Process {
    /// Whether PM2 reports the instance as serving.
    pub fn online(&self) -> bool {
        self.pm2_env.status == "online"
    }
}

/// Parses `pm2 jlist` output. PM2 may print daemon start-up lines before the JSON
/// (e.g. when the daemon was not running), so the JSON array is looked for.
pub fn parse(output: &str) -> Result<Vec<Pm2Process>, String> {
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
    fn garbage_is_an_explained_error() {
        let err = parse("pm2: command not found").unwrap_err();
        assert!(err.contains("no JSON list"), "{err}");
        let err = parse("[{\"broken\":").unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
