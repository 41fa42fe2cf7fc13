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

/// The process file deploykit starts PM2 from: it loads the release's ecosystem
/// file (`DEPLOYKIT_ECOSYSTEM`) and sets every variable named in
/// `DEPLOYKIT_ENV_KEYS` in each app's `env` block. PM2 (7.0.4) reloads a worker
/// of an app that has an `env` block with that block alone, dropping the
/// deploying shell's variables: every worker would keep the `DEPLOYKIT_RELEASE`
/// (and secrets) it first started with. Through the block, deploykit's env wins,
/// on a first start and on every reload. With `DEPLOYKIT_CANARY` set, the app
/// named `DEPLOYKIT_CANARY_OF` becomes one worker under the canary's name with
/// `PORT=0` (see [`start_canary`]). A fixed text: values arrive as env.
pub const PM2_WRAPPER: &str = r#"// Written by deploykit on every activation; edit the release's ecosystem file instead.
const conf = require(process.env.DEPLOYKIT_ECOSYSTEM);
const keys = (process.env.DEPLOYKIT_ENV_KEYS || '').split(',').filter(Boolean);
const canary = process.env.DEPLOYKIT_CANARY;
const apps = Array.isArray(conf) ? conf : conf.apps ? [].concat(conf.apps) : [conf];
for (const app of apps) {
  app.env = Object.assign({}, app.env);
  for (const key of keys) if (key in process.env) app.env[key] = process.env[key];
  if (canary && app.name === process.env.DEPLOYKIT_CANARY_OF) {
    app.name = canary;
    app.instances = 1;
    app.env.PORT = '0';
  }
}
module.exports = conf;
"#;

/// Whether the ecosystem file can be loaded by [`PM2_WRAPPER`] (`require`); any
/// other (YAML) is given to PM2 directly, and an `env` block in it pins the
/// first release's env.
pub(super) fn wrappable(ecosystem: &str) -> bool {
    [".js", ".cjs", ".json"]
        .iter()
        .any(|ext| ecosystem.ends_with(ext))
}

/// Starts the app from the ecosystem file of `current` if it is not running, or
/// reloads it (cluster mode: worker by worker, zero downtime) with the new env.
///
/// The app sees `DEPLOYKIT_APP_DIR` (the `current` path, the stable `cwd` for the
/// ecosystem file) and `DEPLOYKIT_RELEASE`, and the configured env, over any
/// `env` block of the ecosystem file: PM2 is given [`PM2_WRAPPER`], written
/// (owner-only) to [`Layout::pm2_wrapper`] first, in the same round trip.
pub fn start_or_reload(config: &Pm2Config, layout: &Layout, release: &ReleaseId) -> Cmd {
    start_from_wrapper(config, layout, release, None)
}

/// The name of the canary of `config.app` (the reload gate's one worker).
pub fn canary_name(config: &Pm2Config) -> String {
    format!("{}-deploykit-canary", config.app)
}

/// Starts one worker of the release `current` points at as its own PM2 app,
/// [`canary_name`], from the same ecosystem entry (env, `cwd`, exec mode), with
/// `PORT=0`: an app that takes its port from `PORT` listens on a port of the
/// kernel's choosing, so the canary takes no traffic and its death costs no
/// request. (An app that binds a fixed port shares the live port in cluster mode
/// and takes a share of the traffic.) `None` when the ecosystem file cannot be
/// wrapped (YAML): no canary then.
pub fn start_canary(config: &Pm2Config, layout: &Layout, release: &ReleaseId) -> Option<Cmd> {
    wrappable(&config.ecosystem)
        .then(|| start_from_wrapper(config, layout, release, Some(canary_name(config))))
}

/// Stops and forgets the canary (never the live app).
pub fn delete_canary(config: &Pm2Config) -> Cmd {
    pm2(config, &[]).arg("delete").arg(canary_name(config))
}

fn start_from_wrapper(
    config: &Pm2Config,
    layout: &Layout,
    release: &ReleaseId,
    canary: Option<String>,
) -> Cmd {
    let current = path(&layout.current());
    let ecosystem = path(&layout.current().join(&config.ecosystem));
    let keys: Vec<&str> = ["DEPLOYKIT_APP_DIR", "DEPLOYKIT_RELEASE"]
        .into_iter()
        .chain(config.env.iter().map(|(k, _)| k.as_str()))
        .collect();
    let wrap = wrappable(&config.ecosystem);
    let mut vars = vec![
        ("DEPLOYKIT_APP_DIR", current.clone()),
        ("DEPLOYKIT_RELEASE", release.to_string()),
    ];
    if wrap {
        vars.push(("DEPLOYKIT_ECOSYSTEM", ecosystem.clone()));
        vars.push(("DEPLOYKIT_ENV_KEYS", keys.join(",")));
    }
    if let Some(name) = &canary {
        vars.push(("DEPLOYKIT_CANARY", name.clone()));
        vars.push(("DEPLOYKIT_CANARY_OF", config.app.clone()));
    }
    let file = if wrap {
        path(&layout.pm2_wrapper())
    } else {
        ecosystem
    };
    let reload = pm2(config, &vars)
        .arg("startOrReload")
        .arg(file.clone())
        .arg("--update-env")
        .arg("--only")
        .arg(canary.unwrap_or_else(|| config.app.clone()));
    let mut cmd = if wrap {
        script(
            r#"set -e
umask 077
mkdir -p "$(dirname "$1")"
printf '%s' "$2" > "$1.tmp"
mv -f "$1.tmp" "$1"
shift 2
exec "$@""#,
            [file, PM2_WRAPPER.to_string(), reload.program]
                .into_iter()
                .chain(reload.args),
        )
    } else {
        reload
    }
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
/// just before the list, a line `deploykit-current <link target>`, so the
/// probe can check that every worker runs the live release, and, when the live
/// release recorded them, a line `deploykit-apps <names>`: the apps it runs. The probe judges an instance's age as that clock
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
if [ -f "$1/.deploykit-apps" ]; then printf 'deploykit-apps %s\n' "$(tr '\n' ' ' < "$1/.deploykit-apps")"; fi
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
