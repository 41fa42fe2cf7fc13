//! Taking over an app that PM2 ran before deploykit's first deploy (started by
//! hand, or by the seeds' scripts), and giving it back on undo.
//!
//! Such an app is refused unless the target is configured to adopt it
//! ([`Pm2Config::adopt_running`]). Adopting it means: before the first release
//! replaces it, its PM2 process spec (script, cwd, exec mode, instance count,
//! args, interpreter and env) is written as a PM2 process file to
//! `<deploy_to>/.deploykit/adopted.json`, owner-only because the env holds the
//! app's secrets (which is also why it lives on the host and not in the journal:
//! the journal carries only the release id [`ADOPTED`]). Making [`ADOPTED`] live
//! again — the undo of that first deploy, or a later rollback to it — removes
//! deploykit's processes and `current`, and starts the app from that file.

use deploykit_core::shell::CommandFailed;
use deploykit_core::{Error, NextStep, ReleaseId, Result, Shell, ShellExt};
use serde_json::{json, Map, Value};

use crate::commands;
use crate::config::Pm2Config;
use crate::jlist::{self, Pm2Process};
use crate::layout::Layout;
use crate::ownership::{not_ours, what_runs, where_from, Runs};

/// The release id an adopted app goes by: what `current` reports for it, what
/// the journal records as the previous release, what an undo makes live again.
pub const ADOPTED: &str = "adopted";

/// [`ADOPTED`] as a release id.
pub(crate) fn adopted_id() -> ReleaseId {
    ReleaseId::parse(ADOPTED).expect("a valid release id")
}

/// The refusal for an app deploykit did not start, saying how to adopt it.
pub(crate) fn refusal(config: &Pm2Config, location: &str, theirs: &[&Pm2Process]) -> Error {
    Error::Refused {
        reason: format!(
            "PM2 on {location} already runs {} ({} process(es) from {}), which deploykit did not start; \
             nothing was changed, because an undo could not put it back",
            config.app,
            theirs.len(),
            where_from(theirs)
        ),
        next: format!(
            "to let deploykit take it over, set `adopt_running = true` in the target config: the first \
             deploy records its script, cwd, instances and env in {} (owner-only) and an undo restarts it \
             from there; or stop it yourself (`pm2 delete {}`) and deploy again",
            Layout::new(&config.deploy_to)
                .map(|l| l.adopted().display().to_string())
                .unwrap_or_else(|_| "<deploy_to>/.deploykit/adopted.json".into()),
            config.app
        ),
    }
}

/// What is live when there is no `current` link, from `pm2 jlist`'s output:
/// nothing; the adopted app (when adopting); or, for an app of that name that
/// deploykit did not start, a refusal before anything changes.
pub(crate) fn live_without_link(
    config: &Pm2Config,
    layout: &Layout,
    location: &str,
    jlist_output: &str,
) -> Result<Option<ReleaseId>> {
    let list = jlist::parse(jlist_output).map_err(|e| Error::part("current", location, e))?;
    match first_not_ours(config, layout, &list) {
        None => Ok(None),
        Some(_) if config.adopt_running => Ok(Some(adopted_id())),
        Some((app, theirs)) => Err(refusal(&config.for_app(&app), location, &theirs)),
    }
}

/// The first app of the release that PM2 runs processes of that deploykit did
/// not start, with those processes.
fn first_not_ours<'a>(
    config: &Pm2Config,
    layout: &Layout,
    list: &'a [Pm2Process],
) -> Option<(String, Vec<&'a Pm2Process>)> {
    config.app_names().into_iter().find_map(|app| {
        let theirs = not_ours(layout, &app, list);
        (!theirs.is_empty()).then_some((app, theirs))
    })
}

/// The refusal of a `current` that is a real directory (an in-place deploy):
/// deploykit can neither swap it nor tell what runs from it.
pub(crate) fn not_a_link(config: &Pm2Config, layout: &Layout, location: &str) -> Error {
    Error::Refused {
        reason: format!(
            "{} on {location} is a real directory, not a link deploykit made (an in-place deploy?); nothing was changed",
            layout.current().display()
        ),
        next: format!(
            "move it aside (e.g. `mv current current.pre-deploykit`), start the app from there, \
             and deploy with `adopt_running = true` so deploykit records it and an undo restores it; \
             or stop {} and remove it",
            config.app
        ),
    }
}

/// The PM2 process file that starts each of `apps` again as it ran, from the
/// raw `pm2 jlist` output (every field, env included): one entry per app PM2
/// runs processes of that deploykit did not start. `None` when there are none.
pub(crate) fn process_file(
    layout: &Layout,
    apps: &[String],
    jlist_output: &str,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let typed = jlist::parse(jlist_output)?;
    let raw: Vec<Value> = jlist::parse_as(jlist_output)?;
    let specs: Vec<Value> = apps
        .iter()
        .filter_map(|app| {
            let theirs: Vec<&Value> = typed
                .iter()
                .zip(&raw)
                .filter(|(p, _)| &p.name == app && matches!(what_runs(layout, p), Runs::NotOurs(_)))
                .map(|(_, v)| v)
                .collect();
            app_spec(app, &theirs)
        })
        .collect();
    if specs.is_empty() {
        return Ok(None);
    }
    let file = json!({ "apps": specs });
    Ok(Some(
        serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?,
    ))
}

/// One app's entry of the process file, from its processes' raw jlist entries.
fn app_spec(app: &str, theirs: &[&Value]) -> Option<Value> {
    let first = theirs.first()?;
    let env = &first["pm2_env"];
    let mut spec = Map::new();
    spec.insert("name".into(), json!(app));
    for (key, from) in [
        ("script", "pm_exec_path"),
        ("cwd", "pm_cwd"),
        ("args", "args"),
        ("node_args", "node_args"),
        ("interpreter", "exec_interpreter"),
    ] {
        if !env[from].is_null() {
            spec.insert(key.into(), env[from].clone());
        }
    }
    // The variables the app was started with; PM2 also keeps its own bookkeeping
    // there (a per-process `unique_id`, an object under the app's name), which a
    // new start makes afresh.
    if let Some(vars) = env["env"].as_object() {
        let vars: Map<String, Value> = vars
            .iter()
            .filter(|(k, v)| v.is_string() && k.as_str() != "unique_id")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        spec.insert("env".into(), Value::Object(vars));
    }
    let cluster = env["exec_mode"] == "cluster_mode";
    spec.insert(
        "exec_mode".into(),
        json!(if cluster { "cluster" } else { "fork" }),
    );
    spec.insert("instances".into(), json!(theirs.len()));
    Some(Value::Object(spec))
}

/// Reads the app's processes now.
async fn processes(
    shell: &dyn Shell,
    config: &Pm2Config,
    step: &str,
) -> Result<(String, Vec<Pm2Process>)> {
    let out = shell
        .check(step, &commands::jlist(config))
        .await?
        .stdout_text();
    let list = jlist::parse(&out).map_err(|e| Error::part(step, shell.location(), e))?;
    Ok((out, list))
}

/// Before a first deploy's switch: an app of that name that deploykit did not
/// start is refused (nothing changed yet), or, when adopting, recorded and then
/// removed so the release starts fresh from `current` instead of PM2 reloading
/// the old processes in their own directory.
pub(crate) async fn take_over(
    shell: &dyn Shell,
    config: &Pm2Config,
    layout: &Layout,
) -> Result<()> {
    let (out, list) = processes(shell, config, "activate.adopt").await?;
    let Some((app, theirs)) = first_not_ours(config, layout, &list) else {
        return Ok(());
    };
    if !config.adopt_running {
        return Err(refusal(&config.for_app(&app), shell.location(), &theirs));
    }
    let names = config.app_names();
    let file = process_file(layout, &names, &out)
        .map_err(|e| Error::part("activate.adopt", shell.location(), e))?
        .expect("processes not deploykit's are listed");
    let write = commands::write_adopted(layout);
    let out = shell.run(&write, Some(&file)).await?;
    if !out.success() {
        return Err(CommandFailed::new("activate.adopt", shell.location(), &write, &out).into());
    }
    let theirs = names.iter().flat_map(|app| not_ours(layout, app, &list));
    for p in theirs {
        shell
            .check("activate.adopt", &commands::delete_id(config, p.pm_id))
            .await?;
    }
    Ok(())
}

/// Makes the adopted app live again: deploykit's processes of the app are
/// deleted, `current` removed, and the app started from its record. Idempotent:
/// when the adopted processes still run (a crash before they were replaced),
/// only deploykit's are removed.
pub(crate) async fn restore(shell: &dyn Shell, config: &Pm2Config, layout: &Layout) -> Result<()> {
    let step = "activate.adopted";
    if !shell
        .run(&commands::adopted_exists(layout), None)
        .await?
        .success()
    {
        return Err(Error::Refused {
            reason: format!(
                "there is no record of an adopted app on {} ({} is missing)",
                shell.location(),
                layout.adopted().display()
            ),
            next: format!(
                "start {} by hand as it ran before deploykit, or deploy a release",
                config.app
            ),
        });
    }
    let (_, list) = processes(shell, config, step).await?;
    let names = config.app_names();
    let still_running = first_not_ours(config, layout, &list).is_some();
    // Every app's processes deploykit started, also those of an app the adopted
    // setup did not have: going back is going fully back.
    for p in list.iter().filter(|p| names.contains(&p.name)) {
        if !matches!(what_runs(layout, p), Runs::NotOurs(_)) {
            shell
                .check(step, &commands::delete_id(config, p.pm_id))
                .await?;
        }
    }
    shell.check(step, &commands::remove_current(layout)).await?;
    if !still_running {
        shell
            .check(step, &commands::start_adopted(config, layout))
            .await
            .map_err(|e| {
                e.with_hint(format!(
                    "the record is {}; start the app from it with `pm2 start` once the cause is fixed",
                    layout.adopted().display()
                ))
            })?;
    }
    shell.check(step, &commands::save(config)).await?;
    Ok(())
}

/// Before taking the app offline (the undo of a first deploy): refuses when PM2
/// runs processes of that name that deploykit did not start, so they are never
/// deleted.
pub(crate) async fn refuse_if_not_ours(
    shell: &dyn Shell,
    config: &Pm2Config,
    layout: &Layout,
) -> Result<()> {
    let (_, list) = processes(shell, config, "activate.offline").await?;
    let theirs = not_ours(layout, &config.app, &list);
    if theirs.is_empty() {
        return Ok(());
    }
    Err(Error::RefusedUntil {
        reason: format!(
            "PM2 on {} runs {} from {}, which deploykit did not start, so it was not deleted",
            shell.location(),
            config.app,
            where_from(&theirs)
        ),
        next: NextStep::Recover {
            env: None,
            first: Some("check what serves; stop that app by hand if it should not run".into()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_script_cwd_instances_mode_and_env_of_the_hand_started_app() {
        let out = r#"[PM2] noise
[{"name":"web","pm_id":0,"pid":5,"pm2_env":{"status":"online","pm_cwd":"/home/u/app","pm_exec_path":"/home/u/app/server.js","exec_mode":"cluster_mode","args":["--x"],"exec_interpreter":"node","env":{"PORT":"3000","SECRET":"s3"}}},
 {"name":"web","pm_id":1,"pid":6,"pm2_env":{"status":"online","pm_cwd":"/home/u/app","pm_exec_path":"/home/u/app/server.js","exec_mode":"cluster_mode","env":{"PORT":"3000"}}},
 {"name":"web","pm_id":2,"pid":7,"pm2_env":{"status":"online","pm_cwd":"/srv/web/current","pm_exec_path":"/srv/web/current/server.js","exec_mode":"cluster_mode","env":{"DEPLOYKIT_RELEASE":"r1"}}},
 {"name":"other","pm_id":3,"pid":8,"pm2_env":{"status":"online","pm_cwd":"/x","pm_exec_path":"/x/a.js"}}]"#;
        let layout = Layout::new("/srv/web").unwrap();
        let file = process_file(&layout, &["web".into()], out)
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&file).unwrap();
        let app = &v["apps"][0];
        assert_eq!(app["name"], "web");
        assert_eq!(app["script"], "/home/u/app/server.js");
        assert_eq!(app["cwd"], "/home/u/app");
        assert_eq!(app["exec_mode"], "cluster");
        assert_eq!(app["instances"], 2, "only the processes not deploykit's");
        assert_eq!(app["args"], json!(["--x"]));
        assert_eq!(app["interpreter"], "node");
        assert_eq!(app["env"]["SECRET"], "s3");
        assert_eq!(
            process_file(&layout, &["other2".into()], out).unwrap(),
            None
        );
        // Several apps: one entry each, for those started by hand.
        let both = process_file(&layout, &["web".into(), "other".into()], out)
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_slice(&both).unwrap();
        assert_eq!(v["apps"][0]["name"], "web");
        assert_eq!(v["apps"][1]["name"], "other");
        assert_eq!(v["apps"][1]["instances"], 1);
        assert_eq!(adopted_id().as_str(), ADOPTED);
        let err = refusal(
            &Pm2Config::new("web", "/srv/web", crate::Source::Git { repo: "r".into() }),
            "d@h",
            &[],
        )
        .to_string();
        assert!(err.contains("adopt_running = true"), "{err}");
        assert!(err.contains("/srv/web/.deploykit/adopted.json"), "{err}");
    }
}
