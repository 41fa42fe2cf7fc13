//! Images on the engine: whether one exists, and tagging releases so a rollback
//! never depends on a mutable tag.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListImagesOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use deploykit_core::{ReleaseId, Result};

use super::Engine;

impl Engine {
    /// True if an image with this reference exists.
    pub async fn image_exists(&self, reference: &str) -> Result<bool> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.fail("engine.image", format!("image {reference}"), e)),
        }
    }

    /// Tags `source` as `repo:tag`.
    pub async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| self.fail("engine.tag", format!("tag {source} as {repo}:{tag}"), e))
    }

    /// Removes the tag `reference`; an image still tagged otherwise stays. A missing
    /// tag is not an error (discard is idempotent).
    pub async fn untag(&self, reference: &str) -> Result<()> {
        let options = RemoveImageOptionsBuilder::new().noprune(false).build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.fail("engine.untag", format!("image {reference}"), e)),
        }
    }

    /// Every tag of repository `repo` (the part after `repo:`).
    pub async fn tags_of(&self, repo: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([("reference", vec![repo.to_string()])]);
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|e| self.fail("engine.images", format!("images of {repo}"), e))?;
        let prefix = format!("{repo}:");
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter_map(|t| t.strip_prefix(&prefix).map(str::to_string))
            .collect())
    }

    /// The releases tagged in repository `repo`, oldest first: its tags that are
    /// release ids, never the mutable aliases ([`ALIAS_TAGS`](crate::target::ALIAS_TAGS)).
    /// What a Compose or Swarm target lists, from the same tags.
    pub async fn release_tags(&self, repo: &str) -> Result<Vec<ReleaseId>> {
        let mut releases: Vec<ReleaseId> = self
            .tags_of(repo)
            .await?
            .into_iter()
            .filter(|t| !crate::target::ALIAS_TAGS.contains(&t.as_str()))
            .filter_map(|t| ReleaseId::parse(t).ok())
            .collect();
        releases.sort();
        Ok(releases)
    }
}
