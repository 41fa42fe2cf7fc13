//! [`ComposeTarget`] as a [`Target`]: the release lifecycle (current, prepare,
//! activate, discard, list) over image tags and the pin file.

use std::time::Duration;

use async_trait::async_trait;
use deploykit_core::{Error, Event, ReleaseId, ReleaseSpec, Result, ShellExt, Target};

use super::{ComposeTarget, ImageSource};

#[async_trait]
impl Target for ComposeTarget {
    async fn current(&self) -> Result<Option<ReleaseId>> {
        match self.container().await? {
            Some(c) if matches!(c.status.as_str(), "running" | "restarting") => {
                match self.release_of(&c) {
                    Some(release) => Ok(Some(release)),
                    None if self.adopt => self.adopt(&c).await,
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    async fn prepare(&self, spec: &ReleaseSpec) -> Result<()> {
        // Refuse (or say why auto falls back) before building or tagging anything.
        self.strategy_choice().await?;
        let target = self.image_of(&spec.id);
        if self.engine.image_exists(&target).await? {
            // Release tags are immutable: a re-run of prepare keeps what was staged.
            return Ok(());
        }
        let image = match &self.source {
            ImageSource::Build { image } => {
                match &self.build_repo {
                    Some(repo) => {
                        crate::commit_build::build_from_commit(
                            self.shell.as_ref(),
                            &self.project,
                            &self.service,
                            repo,
                            spec,
                            &self.state_dir,
                        )
                        .await?
                    }
                    None => {
                        self.shell
                            .check("prepare", &self.project.build(&self.service))
                            .await?;
                    }
                }
                image
            }
            ImageSource::Pull { image } => {
                self.shell
                    .check("prepare.pull", &self.project.pull_image(image))
                    .await?;
                image
            }
            ImageSource::Present { image } => image,
        };
        if !self.engine.image_exists(image).await? {
            let hint = match &self.source {
                ImageSource::Present { .. } => {
                    "load the image CI built onto this engine first (docker load), or check \
                     source_image and --image-tag; nothing was changed"
                }
                _ => "set the target's image source to the name compose gives the built image",
            };
            return Err(Error::part(
                "prepare",
                self.where_(),
                format!("the image {image} to tag as {target} does not exist"),
            )
            .with_hint(hint));
        }
        self.engine.tag(image, &self.repo, spec.id.as_str()).await
    }

    async fn activate(&self, release: Option<&ReleaseId>) -> Result<()> {
        let Some(release) = release else {
            let mut stopped = Vec::new();
            for c in self
                .engine
                .service_containers(&self.project.name, &self.service)
                .await?
            {
                if c.status == "running" || c.status == "restarting" {
                    self.engine.stop(&c.id, Duration::from_secs(10)).await?;
                    stopped.push(c.name);
                }
            }
            let message = if stopped.is_empty() {
                format!(
                    "{} has no running container: nothing to stop (first deploy, no previous release)",
                    self.where_()
                )
            } else {
                format!(
                    "stopped {} of {}: this was its first deploy, so there is no previous \
                     release to go back to; the service is down until a release is deployed \
                     (the journal keeps the record)",
                    stopped.join(", "),
                    self.where_()
                )
            };
            self.events.emit(Event::Warning { message });
            return Ok(());
        };
        let image = self.image_of(release);
        // Refuse start-first before touching anything.
        let start_first = self.strategy_choice().await?.start_first;
        if !self.engine.image_exists(&image).await? {
            return Err(Error::part(
                "activate",
                self.where_(),
                format!("release image {image} does not exist"),
            )
            .with_hint("prepare the release first (it may have been pruned)"));
        }
        if let Some(settings) = start_first {
            return self.activate_start_first(release, &image, settings).await;
        }
        let live = self.container().await?;
        if let Some(c) = &live {
            if c.image == image && c.is_serving() {
                return Ok(());
            }
        }
        if self.rollback_alias {
            if let Some(previous) = live.as_ref().and_then(|c| self.release_of(c)) {
                if &previous != release {
                    self.engine
                        .tag(&self.image_of(&previous), &self.repo, "rollback")
                        .await?;
                }
            }
        }
        let pin = self.pin_file();
        pin.write(self.shell.as_ref(), &self.service, &image)
            .await?;
        self.shell
            .check("activate", &self.project.up(&self.service, &pin.path))
            .await?;
        self.wait_serving(&image).await.map(|_| ())
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

    async fn recent_logs(
        &self,
        release: &ReleaseId,
        lines: usize,
    ) -> Result<Vec<deploykit_core::LogLines>> {
        self.logs_of(release, lines).await
    }
}
