//! Making a release live for every app of it: one `current` switch, then each
//! app's canary gate, then each app's reload.
//!
//! The apps of a release (a web app and its worker from one ecosystem file)
//! switch together: every canary runs before any live worker is reloaded, so a
//! release refused by one app's gate leaves every app untouched; a failure after
//! some apps were reloaded is undone by activating the previous release, which
//! reloads every app back. An app the target release does not have (new in the
//! release being undone) is deleted, so an undo ends fully on the old release.

use deploykit_core::{Error, ReleaseId, Result, ShellExt, Target};

use super::Pm2Target;
use crate::adopt;
use crate::commands;
use crate::config::Pm2Config;
use crate::gate;

impl Pm2Target {
    /// [`Target::activate`](deploykit_core::Target::activate) of a deploykit release.
    pub(super) async fn activate_release(&self, id: &ReleaseId) -> Result<()> {
        let sh = &self.shell;
        let back = self.gated_from.lock().expect("not poisoned").take();
        let before = match self.config.reload_gate {
            // Only remembered; a `current` that is no link is refused by the switch.
            Some(_) => self.current().await.ok().flatten(),
            None => None,
        };
        self.switch(id).await?;
        let (apps, absent) = self.apps_of(id).await?;
        for app in &absent {
            self.remove_app(app).await?;
        }
        let refused = std::mem::take(&mut *self.gate_refused.lock().expect("not poisoned"));
        let mut reload: Vec<Pm2Config> = Vec::new();
        for app in &apps {
            let one = self.config.for_app(app);
            // The undo of a refused canary: every worker of this app still runs
            // `id`, so a reload would only risk requests.
            if refused.contains(app) && gate::all_run(sh.as_ref(), &one, &self.layout, id).await? {
                continue;
            }
            reload.push(one);
        }
        if reload.is_empty() {
            return Ok(());
        }
        // Every app's canary before any live worker is touched (a going back to
        // the release that served a moment ago needs none, nor a release trusted
        // for a rollback: see `Pm2Target::trust`).
        let trusted = self.trusted.lock().expect("not poisoned").contains(id);
        let mut canaries: Vec<&Pm2Config> = Vec::new();
        if back.as_ref() != Some(id) && !trusted {
            for one in &reload {
                match gate::canary(sh, one, &self.layout, id).await {
                    Ok(true) => canaries.push(one),
                    Ok(false) => {}
                    Err(e) => {
                        for c in &canaries {
                            let _ = gate::retire(sh.as_ref(), c).await;
                        }
                        // No live worker of any app was reloaded.
                        *self.gate_refused.lock().expect("not poisoned") =
                            apps.iter().cloned().collect();
                        return Err(e);
                    }
                }
            }
        }
        if !canaries.is_empty() || trusted {
            // The undo goes back to `before` without a canary: it served a moment ago.
            *self.gated_from.lock().expect("not poisoned") = before;
        }
        let mut reloaded = Ok(());
        for one in &reload {
            let out = sh
                .check(
                    "activate.reload",
                    &commands::start_or_reload(one, &self.layout, id),
                )
                .await;
            if let Err(e) = out {
                reloaded = Err(e.with_hint(format!(
                    "`current` already points at {id}; the run's undo swaps it back and reloads the previous release of every app"
                )));
                break;
            }
        }
        let mut retired = Ok(());
        for c in &canaries {
            let r = gate::retire(sh.as_ref(), c).await;
            retired = retired.and(r);
        }
        retired?;
        reloaded?;
        sh.check("activate.save", &commands::save(&self.config))
            .await?;
        Ok(())
    }

    /// Points `current` at `id` (after refusing or adopting what PM2 runs on a
    /// first deploy).
    async fn switch(&self, id: &ReleaseId) -> Result<()> {
        let sh = &self.shell;
        let mut switch = commands::switch_over_link(&self.layout, id);
        let mut out = sh.run(&switch, None).await?;
        if out.status == commands::NO_LINK {
            // A first deploy: PM2 may already run an app of these names that
            // deploykit did not start; refuse it, or record it and take it over.
            adopt::take_over(sh.as_ref(), &self.config, &self.layout).await?;
            switch = commands::switch_current(&self.layout, id);
            out = sh.run(&switch, None).await?;
        }
        if out.status == commands::CHECK_FAILED {
            return Err(Error::part(
                "activate",
                self.location(),
                format!("release {id} is not (completely) prepared on this host"),
            )
            .with_hint("prepare it first; an incomplete release is never made live"));
        }
        self.fail_unless("activate.swap", &switch, &out).map_err(|e| {
            e.with_hint(format!(
                "nothing was switched; if {} is a real directory (an earlier in-place deploy), move it aside so deploykit can manage it as a symlink",
                self.layout.current().display()
            ))
        })
    }

    /// The configured apps release `id` has and those it lacks (its ecosystem
    /// file, read on the host). One app: it, without a round trip (its prepare
    /// checked it).
    async fn apps_of(&self, id: &ReleaseId) -> Result<(Vec<String>, Vec<String>)> {
        let names = self.config.app_names();
        if names.len() == 1 {
            return Ok((names, Vec::new()));
        }
        let cmd = commands::apps_in_release(&self.config, &self.layout, id);
        let out = self.shell.run(&cmd, None).await?;
        if out.status == commands::APPS_MISSING {
            let text = out.stdout_text();
            let missing: Vec<&str> = text.lines().map(str::trim).collect();
            return Ok(names
                .into_iter()
                .partition(|n| !missing.contains(&n.as_str())));
        }
        self.fail_unless("activate.apps", &cmd, &out)?;
        Ok((names, Vec::new()))
    }

    /// Stops and forgets `app`, which the release being made live does not have;
    /// processes of that name deploykit did not start are refused, never deleted.
    async fn remove_app(&self, app: &str) -> Result<()> {
        let one = self.config.for_app(app);
        adopt::refuse_if_not_ours(self.shell.as_ref(), &one, &self.layout).await?;
        // `delete` fails when the app is not in PM2: already gone, the goal.
        let _ = self.shell.run(&commands::delete(&one), None).await?;
        Ok(())
    }
}
