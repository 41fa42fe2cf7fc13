//! PM2 itself: start or reload, delete, save, the process list.

use deploykit_core::{Cmd, ReleaseId};

use super::{path, script};
use crate::config::Pm2Config;
use crate::layout::Layout;

/// `pm2 …` with `PM2_HOME` when configured. Non-secret variables travel as `env`
/// arguments so they stay readable in logs; the app's env (secrets) as `Cmd::env`.
pub(super) fn pm2(config: &Pm2Config, extra_env: &[(&str, String)]) -> Cmd {
    let mut vars: Vec<String> = Vec::new();
    if let Some(home) = &config.pm2_home {
        vars.push(format!("PM2_HOME={home}"));
    }
    vars.extend(extra_env.iter().map(|(k, v)| format!("{k}={v}")));
    if vars.is_empty() {
        Cmd::new(config.pm2.clone())
    } else {
        Cmd::new("env").args(vars).arg(config.pm2.clone())
    }
}

/// Starts the app from the ecosystem file of `current` if it is not running, or
/// reloads it (cluster mode: worker by worker, zero downtime) with the new env.
///
/// The app sees `DEPLOYKIT_APP_DIR` (the `current` path, the stable `cwd` for the
/// ecosystem file) and `DEPLOYKIT_RELEASE`.
pub fn start_or_reload(config: &Pm2Config, layout: &Layout, release: &ReleaseId) -> Cmd {
    let current = path(&layout.current());
    let mut cmd = pm2(
        config,
        &[
            ("DEPLOYKIT_APP_DIR", current.clone()),
            ("DEPLOYKIT_RELEASE", release.to_string()),
        ],
    )
    .arg("startOrReload")
    .arg(path(&layout.current().join(&config.ecosystem)))
    .arg("--update-env")
    .arg("--only")
    .arg(config.app.clone())
    .cwd(current);
    for (k, v) in &config.env {
        cmd = cmd.env(k.clone(), v.expose());
    }
    cmd
}

/// Reloads the running app by name (keeps its ecosystem settings).
pub fn reload(config: &Pm2Config) -> Cmd {
    pm2(config, &[])
        .arg("reload")
        .arg(config.app.clone())
        .arg("--update-env")
}

/// Stops and forgets the app (the undo of a first deploy).
pub fn delete(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("delete").arg(config.app.clone())
}

/// Saves the process list so a host reboot resurrects what is live now.
pub fn save(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("save").arg("--force")
}

/// The process list as JSON.
pub fn jlist(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("jlist")
}

/// `pm2 jlist` preceded by a line `deploykit-clock-ms <ms>`, the host's clock read
/// just before the list, and a line `deploykit-current <link target>`, so the
/// probe can check that every worker runs the live release. The probe judges an instance's age as that clock
/// minus its `pm_uptime` — both from the host, so the deploying machine's clock
/// never enters it — and reading the clock first can only understate an age,
/// never overstate it. Where `date` has no `%N` (not GNU), whole seconds rounded
/// down: again only younger. One round trip, one `pm2` start-up.
pub fn clocked_jlist(config: &Pm2Config) -> Cmd {
    let list = jlist(config);
    script(
        r#"now=$(date +%s%3N 2>/dev/null)
case "$now" in ''|*[!0-9]*) now=$(($(date +%s) * 1000)) ;; esac
printf 'deploykit-clock-ms %s\n' "$now"
printf 'deploykit-current %s\n' "$(readlink "$1" 2>/dev/null)"
shift
exec "$@""#,
        std::iter::once(path(&config.deploy_to.join("current")))
            .chain(std::iter::once(list.program))
            .chain(list.args),
    )
}

/// Stops the PM2 daemon itself (tests and the rig; never part of a deploy).
pub fn kill_daemon(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("kill")
}
