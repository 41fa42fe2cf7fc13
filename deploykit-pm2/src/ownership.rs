//! Whose PM2 process is it, and which release does it run? Read from `pm2 jlist`
//! alone (pure), so the target, the probe and their tests agree.
//!
//! deploykit starts an app only from `<deploy_to>/current` (a link to a release)
//! or from a release directory, so a process whose cwd or script lies anywhere
//! else was started by someone else (by hand, by the seeds' scripts): deploykit
//! must neither reload it as if it were a release nor delete it in an undo.

use std::path::Path;

use deploykit_core::ReleaseId;

use crate::jlist::Pm2Process;
use crate::layout::Layout;

/// What one PM2 process runs, as far as deploykit can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Runs {
    /// A deploykit release.
    Release(ReleaseId),
    /// Started from `deploy_to`, but which release it runs cannot be told (why).
    Unknown(String),
    /// Started outside `releases/` and `current`: not by deploykit (the path).
    NotOurs(String),
}

fn inside(path: &str, dir: &Path) -> bool {
    Path::new(path).starts_with(dir)
}

/// What `p` runs: its cwd and script must both lie in `current` or a release; the
/// release is the directory under `releases/` it runs in, or, when started through
/// `current` (the symlink, resolved by the kernel at start), the `DEPLOYKIT_RELEASE`
/// it was started with.
pub(crate) fn what_runs(layout: &Layout, p: &Pm2Process) -> Runs {
    let paths: Vec<&str> = [&p.pm2_env.pm_cwd, &p.pm2_env.pm_exec_path]
        .into_iter()
        .filter_map(|x| x.as_deref())
        .collect();
    if paths.is_empty() {
        return Runs::Unknown("PM2 lists neither its cwd nor its script".into());
    }
    let (current, releases) = (layout.current(), layout.releases());
    if let Some(outside) = paths
        .iter()
        .find(|path| !inside(path, &current) && !inside(path, &releases))
    {
        return Runs::NotOurs(outside.to_string());
    }
    let in_release = paths.iter().find_map(|path| {
        let rest = Path::new(path).strip_prefix(&releases).ok()?;
        let first = rest.components().next()?;
        ReleaseId::parse(first.as_os_str().to_string_lossy().into_owned()).ok()
    });
    match in_release.or_else(|| p.release_var().and_then(|r| ReleaseId::parse(r).ok())) {
        Some(id) => Runs::Release(id),
        None => Runs::Unknown(format!(
            "started from {} without DEPLOYKIT_RELEASE",
            paths[0]
        )),
    }
}

/// The processes of `app` that deploykit did not start.
pub(crate) fn not_ours<'a>(
    layout: &Layout,
    app: &str,
    processes: &'a [Pm2Process],
) -> Vec<&'a Pm2Process> {
    processes
        .iter()
        .filter(|p| p.name == app && matches!(what_runs(layout, p), Runs::NotOurs(_)))
        .collect()
}

/// Where the first of `procs` runs from, for messages.
pub(crate) fn where_from(procs: &[&Pm2Process]) -> String {
    procs
        .first()
        .and_then(|p| p.pm2_env.pm_cwd.clone().or(p.pm2_env.pm_exec_path.clone()))
        .unwrap_or_else(|| "an unknown directory".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jlist::parse;

    fn proc(cwd: &str, script: &str, release: Option<&str>) -> Pm2Process {
        let env = release.map_or(String::new(), |r| {
            format!(r#","env":{{"DEPLOYKIT_RELEASE":"{r}"}}"#)
        });
        let json = format!(
            r#"[{{"name":"web","pm_id":0,"pm2_env":{{"status":"online","pm_cwd":"{cwd}","pm_exec_path":"{script}"{env}}}}}]"#
        );
        parse(&json).unwrap().remove(0)
    }

    #[test]
    fn a_process_started_elsewhere_is_not_ours_and_a_release_is_read_from_path_or_env() {
        let l = Layout::new("/srv/web").unwrap();
        let r = |s: &str| ReleaseId::parse(s).unwrap();
        assert_eq!(
            what_runs(&l, &proc("/home/u/app", "/home/u/app/server.js", None)),
            Runs::NotOurs("/home/u/app".into())
        );
        // A cwd in deploy_to but a script elsewhere is not ours either.
        assert_eq!(
            what_runs(&l, &proc("/srv/web/current", "/opt/server.js", Some("r1"))),
            Runs::NotOurs("/opt/server.js".into())
        );
        // Siblings of current/ and releases/ under deploy_to are not releases.
        assert!(matches!(
            what_runs(
                &l,
                &proc("/srv/web/current.old", "/srv/web/current.old/s.js", None)
            ),
            Runs::NotOurs(_)
        ));
        assert_eq!(
            what_runs(
                &l,
                &proc(
                    "/srv/web/releases/r2",
                    "/srv/web/releases/r2/s.js",
                    Some("r1")
                )
            ),
            Runs::Release(r("r2")),
            "the directory wins over the variable"
        );
        assert_eq!(
            what_runs(
                &l,
                &proc("/srv/web/current", "/srv/web/current/s.js", Some("r3"))
            ),
            Runs::Release(r("r3"))
        );
        assert!(matches!(
            what_runs(&l, &proc("/srv/web/current", "/srv/web/current/s.js", None)),
            Runs::Unknown(_)
        ));
        let procs = vec![
            proc("/home/u/app", "/home/u/app/server.js", None),
            proc("/srv/web/current", "/srv/web/current/s.js", Some("r3")),
        ];
        let theirs = not_ours(&l, "web", &procs);
        assert_eq!(theirs.len(), 1);
        assert_eq!(where_from(&theirs), "/home/u/app");
        assert!(not_ours(&l, "other", &procs).is_empty());
    }
}
