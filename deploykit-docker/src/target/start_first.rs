//! Start-first activation: the release's container starts next to the running
//! one, which is retired only once the new one serves (see [`Strategy`]).

use std::time::Duration;

use deploykit_core::{Error, Event, HealthStatus, ReleaseId, Result, ShellExt};

use super::ComposeTarget;
use crate::engine::ContainerState;
use crate::strategy::{StartFirstSettings, Strategy, StrategyChoice};

impl ComposeTarget {
    /// The service's start-first settings from `compose config`, or the refusal,
    /// whatever strategy is configured.
    pub async fn start_first_settings(&self) -> Result<StartFirstSettings> {
        let out = self
            .shell
            .check("start-first.config", &self.project.config())
            .await?;
        StartFirstSettings::from_config(&out.stdout_text(), &self.service, &self.where_())
    }

    /// The strategy of this deploy (decided once per target, see
    /// [`StrategyChoice::resolve`]). When auto falls back to stop-first, the
    /// reason is sent as a warning event, once.
    pub async fn strategy_choice(&self) -> Result<StrategyChoice> {
        if let Some(choice) = self.choice.get() {
            return Ok(choice.clone());
        }
        let choice = match self.strategy {
            Strategy::StopFirst => StrategyChoice::stop_first(),
            wanted => {
                let out = self
                    .shell
                    .check("start-first.config", &self.project.config())
                    .await?;
                StrategyChoice::resolve(wanted, &out.stdout_text(), &self.service, &self.where_())?
            }
        };
        if self.choice.set(choice.clone()).is_ok() {
            if let Some(message) = &choice.stop_first_because {
                self.events.emit(Event::Warning {
                    message: message.clone(),
                });
            }
        }
        Ok(choice)
    }

    /// Start-first activation of `image` (see the type's docs).
    pub(super) async fn activate_start_first(
        &self,
        release: &ReleaseId,
        image: &str,
        settings: StartFirstSettings,
    ) -> Result<()> {
        let all = self
            .engine
            .service_containers(&self.project.name, &self.service)
            .await?;
        let pin = self.pin_file();
        // Done already (a re-run, or a killed run got this far): keep the serving
        // container of the release, retire everything else.
        if let Some(keep) = all.iter().find(|c| c.image == image && c.is_serving()) {
            if keep.health.is_none() {
                self.wait_ready(keep).await?;
            }
            pin.write(self.shell.as_ref(), &self.service, image).await?;
            for c in all.iter().filter(|c| c.id != keep.id) {
                self.retire(c, settings.stop_grace).await?;
            }
            return Ok(());
        }
        // Keep what runs another release (it serves until the new one is healthy);
        // remove leftovers that serve nothing: stopped containers, and an unfinished
        // container of this release from a killed run.
        let mut old = Vec::new();
        for c in all {
            if c.image != image && matches!(c.status.as_str(), "running" | "restarting") {
                old.push(c);
            } else {
                self.engine.remove(&c.id).await?;
            }
        }
        if self.rollback_alias {
            if let Some(previous) = old.first().and_then(|c| self.release_of(c)) {
                if &previous != release {
                    self.engine
                        .tag(&self.image_of(&previous), &self.repo, "rollback")
                        .await?;
                }
            }
        }
        pin.write(self.shell.as_ref(), &self.service, image).await?;
        let scaled = self
            .shell
            .check(
                "activate",
                &self
                    .project
                    .up_scaled(&self.service, &pin.path, old.len() + 1),
            )
            .await;
        let fresh: Vec<ContainerState> = self
            .engine
            .service_containers(&self.project.name, &self.service)
            .await?
            .into_iter()
            .filter(|c| c.image == image && !old.iter().any(|o| o.id == c.id))
            .collect();
        let waited = match (scaled, fresh.first()) {
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(Error::part(
                "activate",
                self.where_(),
                format!("compose started no container of {image}"),
            )
            .with_hint("check `compose up` for the service by hand")),
            (Ok(_), Some(new)) => match self.wait_until_serving(image, Some(&new.id)).await {
                Ok(c) if c.health.is_none() => self.wait_ready(&c).await,
                other => other.map(|_| ()),
            },
        };
        match waited {
            Ok(_) => {
                for c in &old {
                    self.retire(c, settings.stop_grace).await?;
                }
                Ok(())
            }
            Err(e) => {
                // The old container(s) were never touched: remove the new one and
                // point the pin back at what still serves.
                for c in &fresh {
                    self.engine.remove(&c.id).await?;
                }
                if let Some(serving) = old.first() {
                    pin.write(self.shell.as_ref(), &self.service, &serving.image)
                        .await?;
                }
                Err(e)
            }
        }
    }

    /// Runs the readiness probes until all pass in one round while `new` (which has
    /// no HEALTHCHECK) keeps running: until then the old container serves alone.
    async fn wait_ready(&self, new: &ContainerState) -> Result<()> {
        if self.readiness.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.health_deadline;
        loop {
            let mut failed = Vec::new();
            for probe in &self.readiness {
                let report = probe.check().await;
                if report.status == HealthStatus::Unhealthy {
                    failed.push(format!("{}: {}", probe.name(), report.detail));
                }
            }
            let now = match self.engine.inspect(&new.id).await? {
                Some(c) => c,
                None => {
                    return Err(Error::part(
                        "activate.health",
                        self.where_(),
                        format!("the new container {} disappeared", new.id),
                    )
                    .with_hint("something else removed it; deploy again"))
                }
            };
            if !matches!(now.status.as_str(), "running") {
                return Err(self.not_serving(&now, "").await);
            }
            if failed.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() + self.poll > deadline {
                let why = format!(
                    "has no HEALTHCHECK and its readiness probes did not pass within {:?} ({}); ",
                    self.health_deadline,
                    failed.join("; ")
                );
                return Err(self.not_serving(&now, &why).await);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Stops a container that is no longer wanted (SIGTERM, `grace`, SIGKILL) and removes it.
    async fn retire(&self, c: &ContainerState, grace: Duration) -> Result<()> {
        if matches!(c.status.as_str(), "running" | "restarting") {
            self.engine.stop(&c.id, grace).await?;
        }
        self.engine.remove(&c.id).await
    }
}
