//! [`SwarmTarget`] as a [`Target`]: current, prepare, activate (and its exact
//! undo), discard and list.

use async_trait::async_trait;
use bollard::models::{Service, ServiceSpec, ServiceUpdateStatusStateEnum};
use deploykit_core::{Error, Event, ReleaseId, ReleaseSpec, Result, Target};

use super::spec::{self, record_of, release_of, replicas, without_record};
use super::SwarmTarget;

#[async_trait]
impl Target for SwarmTarget {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        let Some(service) = self.engine.service(&self.service).await? else {
            return Ok(None);
        };
        let spec = service.spec.unwrap_or_default();
        if replicas(&spec) == Some(0) {
            return Ok(None);
        }
        Ok(release_of(&spec, &self.repo))
    }

    async fn prepare(&self, release: &ReleaseSpec) -> Result<()> {
        let service = self.service_now("prepare").await?;
        if let Some(state) = service
            .update_status
            .as_ref()
            .and_then(|u| u.state.as_ref())
        {
            if matches!(
                state,
                ServiceUpdateStatusStateEnum::UPDATING
                    | ServiceUpdateStatusStateEnum::PAUSED
                    | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                    | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
            ) {
                return Err(Error::part(
                    "prepare",
                    self.where_(),
                    format!("the service's last update is {state}, not completed"),
                )
                .with_hint(
                    "see `docker service ps` for why; finish or roll back that update \
                     (or recover the run that started it), then deploy again; nothing was changed",
                ));
            }
        }
        let image = self.image_of(&release.id);
        if self.engine.image_exists(&image).await? || self.engine.registry_has(&image).await {
            return Ok(());
        }
        Err(Error::part(
            "prepare",
            self.where_(),
            format!(
                "release image {image} is neither on the manager nor on a registry it can reach"
            ),
        )
        .with_hint(
            "push the image to the registry the nodes pull from (or load it on every node); \
             nothing was changed",
        ))
    }

    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        let service = self.service_now("activate").await?;
        let current = service.spec.clone().unwrap_or_default();
        let running = release_of(&current, &self.repo).filter(|_| replicas(&current) != Some(0));
        let record = record_of(&current).filter(|r| r.previous.as_ref() == release);

        let Some(release) = release else {
            return self.take_offline(&service, &current, record).await;
        };
        let image = self.image_of(release);
        if running.as_ref() == Some(release) {
            // Already the spec: re-ensure it runs (an undo replayed after a crash).
            return self.wait_converged(&image).await;
        }
        let next = match record {
            // Back to the release this spec replaced: exactly the spec it had.
            Some(record) => without_record(&record.spec),
            None => spec::switched(&current, running.as_ref(), &image, release),
        };
        if spec::image_of(&next) != Some(image.as_str()) {
            return Err(Error::part(
                "activate",
                self.where_(),
                format!(
                    "the recorded spec of release {release} runs {}, not {image}",
                    spec::image_of(&next).unwrap_or("no image")
                ),
            )
            .with_hint(
                "check the service's labels (docker service inspect); nothing was changed",
            ));
        }
        self.update(&service, next).await?;
        self.wait_converged(&image).await
    }

    async fn discard(&self, release: &ReleaseId) -> Result<()> {
        if self.current().await?.as_ref() == Some(release) {
            return Err(Error::part(
                "discard",
                self.where_(),
                format!("release {release} is live; a live release is never removed"),
            )
            .with_hint("activate another release first"));
        }
        self.engine.untag(&self.image_of(release)).await
    }

    async fn list(&self) -> Result<Vec<ReleaseId>> {
        self.engine.release_tags(&self.repo).await
    }
}

impl SwarmTarget {
    /// Writes `spec` over `service`'s, at the version it was read at.
    async fn update(&self, service: &Service, spec: ServiceSpec) -> Result<()> {
        let version = service
            .version
            .as_ref()
            .and_then(|v| v.index)
            .ok_or_else(|| {
                Error::part(
                    "activate",
                    self.where_(),
                    "the manager gave no version index",
                )
            })?;
        for warning in self
            .engine
            .update_service(&self.service, spec, version)
            .await?
        {
            self.events.emit(Event::Warning {
                message: format!("{}: {warning}", self.where_()),
            });
        }
        Ok(())
    }

    /// The undo of a first deploy: the spec deployed by hand before it, if the
    /// switch recorded one; otherwise no replicas.
    async fn take_offline(
        &self,
        service: &Service,
        current: &ServiceSpec,
        record: Option<spec::Record>,
    ) -> Result<()> {
        if let Some(record) = record {
            let before = without_record(&record.spec);
            let image = spec::image_of(&before).unwrap_or_default().to_string();
            self.update(service, before).await?;
            return self.wait_converged(&image).await;
        }
        if release_of(current, &self.repo).is_none() || replicas(current) == Some(0) {
            // Runs no release of ours (or none at all): nothing of this run to undo.
            return Ok(());
        }
        let Some(zero) = spec::scaled_to_zero(current) else {
            return Err(Error::part(
                "activate",
                self.where_(),
                "a global service cannot be scaled to zero, and no spec before the first \
                 deploy was recorded",
            )
            .with_hint("remove the service or deploy a release by hand (docker service update)"));
        };
        self.update(service, zero).await?;
        self.events.emit(Event::Warning {
            message: format!(
                "scaled {} to zero replicas: this was its first deploy and no spec before it \
                 was recorded, so the service is down until a release is deployed",
                self.where_()
            ),
        });
        Ok(())
    }
}
