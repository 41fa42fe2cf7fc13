//! Where things live on a host: one directory per release, a `current` symlink, and
//! what outlives releases.

use std::path::{Path, PathBuf};

use deploykit_core::{Error, ReleaseId, Result};

/// The directory layout under `deploy_to`:
///
/// ```text
/// <deploy_to>/releases/<release-id>/   one complete copy of the app per release
/// <deploy_to>/current -> releases/<id> what PM2 runs; swapped atomically
/// <deploy_to>/shared/                  linked into every release (.env, uploads/, logs/)
/// <deploy_to>/repo/                    cached bare clone (git source only)
/// <deploy_to>/.deploykit/              deploykit's own state on the host
/// ```
///
/// Why a directory per release: the previous release stays complete and built on
/// disk, so rolling back is a symlink swap and a reload, not a reinstall and rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `deploy_to`, which must be an absolute, normalised path.
    pub fn new(deploy_to: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = deploy_to.into();
        let text = root.to_string_lossy();
        let reason = if !root.is_absolute() {
            Some("it must be an absolute path")
        } else if text.split('/').any(|seg| seg == "." || seg == "..") {
            Some("it must not contain '.' or '..'")
        } else if root.parent().is_none() {
            Some("deploying into / is refused")
        } else if text.chars().any(|c| c.is_control()) {
            Some("it must not contain control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::Invalid {
                what: "deploy_to",
                value: text.chars().take(80).collect(),
                reason: reason.into(),
            }),
            None => Ok(Self { root }),
        }
    }

    /// `<deploy_to>`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<deploy_to>/releases`.
    pub fn releases(&self) -> PathBuf {
        self.root.join("releases")
    }

    /// `<deploy_to>/releases/<id>`.
    pub fn release(&self, id: &ReleaseId) -> PathBuf {
        self.releases().join(id.as_str())
    }

    /// What `current` points at for `id`: relative, so the tree can be moved.
    pub fn link_target(id: &ReleaseId) -> String {
        format!("releases/{id}")
    }

    /// Reads a `current` link target back into a release id.
    pub fn parse_link_target(target: &str) -> Option<ReleaseId> {
        let target = target.trim().trim_end_matches('/');
        let name = target.rsplit('/').next()?;
        let parent_ok = target == name || target.ends_with(&format!("releases/{name}"));
        if !parent_ok {
            return None;
        }
        ReleaseId::parse(name).ok()
    }

    /// `<deploy_to>/current`.
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }

    /// The temporary link renamed over `current` (per release, so two runs never
    /// share one).
    pub fn next_current(&self, id: &ReleaseId) -> PathBuf {
        self.root.join(format!(".current-{id}.tmp"))
    }

    /// `<deploy_to>/shared`.
    pub fn shared(&self) -> PathBuf {
        self.root.join("shared")
    }

    /// `<deploy_to>/repo`, the cached bare clone.
    pub fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }

    /// `<deploy_to>/.deploykit`.
    pub fn state(&self) -> PathBuf {
        self.root.join(".deploykit")
    }

    /// `<deploy_to>/.deploykit/upload-<id>.tar.gz`: an artifact while it is
    /// uploaded and checked, before it is unpacked into the release (owner-only).
    pub fn upload(&self, id: &ReleaseId) -> PathBuf {
        self.state().join(format!("upload-{id}.tar.gz"))
    }

    /// `<deploy_to>/.deploykit/lock.json`: the host's deploy lock.
    pub fn lock(&self) -> PathBuf {
        self.state().join("lock.json")
    }

    /// `<deploy_to>/.deploykit/pm2.config.js`: the process file PM2 is started
    /// from, which loads the release's ecosystem file and puts deploykit's env over
    /// each app's `env` block (see [`commands::start_or_reload`](crate::commands::start_or_reload)).
    pub fn pm2_wrapper(&self) -> PathBuf {
        self.state().join("pm2.config.js")
    }

    /// `<deploy_to>/.deploykit/adopted.json`: the record of an app deploykit did
    /// not start but took over (a PM2 process file, owner-only: it holds the env).
    pub fn adopted(&self) -> PathBuf {
        self.state().join("adopted.json")
    }

    /// The marker written last by a successful prepare: a release without it is
    /// incomplete and never activated.
    pub fn prepared_marker(&self, id: &ReleaseId) -> PathBuf {
        self.release(id).join(".deploykit-prepared")
    }

    /// The PM2 apps a release was prepared with, one name a line: going back to
    /// it runs exactly those (an app added later is deleted).
    pub fn apps_record(&self, id: &ReleaseId) -> PathBuf {
        self.release(id).join(".deploykit-apps")
    }
}

/// A path relative to the release (and `shared/`), like `.env` or `public/uploads`.
/// Validated so a linked path cannot escape the deploy directory.
pub(crate) fn validate_relative(what: &'static str, path: &str) -> Result<()> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !p.is_absolute()
        && !path.split('/').any(|seg| seg == "." || seg == "..")
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        && !path.chars().any(|c| c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what,
            value: path.chars().take(80).collect(),
            reason: "expected a relative path inside the release, without '.' or '..'".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let l = Layout::new("/srv/app").unwrap();
        let id = ReleaseId::parse("20261126T100000Z-abc1234").unwrap();
        assert_eq!(
            l.release(&id),
            Path::new("/srv/app/releases/20261126T100000Z-abc1234")
        );
        assert_eq!(l.current(), Path::new("/srv/app/current"));
        assert_eq!(
            Layout::link_target(&id),
            "releases/20261126T100000Z-abc1234"
        );
        assert_eq!(
            Layout::parse_link_target("releases/20261126T100000Z-abc1234\n"),
            Some(id.clone())
        );
        assert_eq!(
            Layout::parse_link_target("/srv/app/releases/20261126T100000Z-abc1234"),
            Some(id)
        );
        assert_eq!(Layout::parse_link_target("/elsewhere/x;y"), None);
        assert_eq!(Layout::parse_link_target("/somewhere/else"), None);
    }

    #[test]
    fn unsafe_roots_and_relative_paths_are_refused() {
        for bad in ["relative", "/", "/srv/../etc", "/srv/./x"] {
            assert!(Layout::new(bad).is_err(), "{bad}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./a"] {
            assert!(validate_relative("linked path", bad).is_err(), "{bad}");
        }
        assert!(validate_relative("linked path", "public/uploads").is_ok());
        assert!(validate_relative("linked path", ".env").is_ok());
    }
}
