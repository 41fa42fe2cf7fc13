//! Where a [`SqlMigrator`]'s files come from: the working tree, or the deployed
//! commit ([`SqlMigrator::from_commit`]); and what the journal keeps so an undo
//! reverts with that commit's down scripts after the checkout has moved on.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::commit_tree::CommitTree;
use crate::error::Result;
use crate::migrate::{DownScript, MigrationOrigin};
use crate::release::{Commit, ReleaseSpec};

use super::migrator::SqlMigrator;
use super::source::{load_commit, load_dir, MigrationFile};

/// Migrations read from one commit (immutable, so read once).
#[derive(Debug)]
pub(crate) struct CommitSource {
    tree: CommitTree,
    rel: PathBuf,
    files: OnceLock<Vec<MigrationFile>>,
}

impl CommitSource {
    pub(crate) fn commit(&self) -> &Commit {
        self.tree.commit()
    }
}

impl SqlMigrator {
    /// Reads the migrations of `tree`'s commit instead of the working tree, for
    /// every call: `dir` names the same directory, and is where in the repository
    /// to look. Refuses a `dir` outside the repository.
    pub fn from_commit(mut self, tree: CommitTree) -> Result<Self> {
        let rel = tree.relative(&self.dir)?;
        self.commit = Some(Arc::new(CommitSource {
            tree,
            rel,
            files: OnceLock::new(),
        }));
        Ok(self)
    }

    /// Reads each call's release's migrations from that release's commit, in the
    /// git repository holding `dir`, whatever is checked out or uncommitted: what
    /// a deploy plans and applies is the deployed commit's. Calls without a release
    /// read `dir` as it is.
    pub fn from_release_commits(mut self) -> Self {
        self.release_commits = true;
        self
    }

    /// Where `release`'s files come from: a pinned commit, the release's commit,
    /// or (`None`) the directory.
    pub(crate) fn source(
        &self,
        release: Option<&ReleaseSpec>,
    ) -> Result<Option<Arc<CommitSource>>> {
        if let Some(pinned) = &self.commit {
            return Ok(Some(pinned.clone()));
        }
        match release {
            Some(spec) if self.release_commits => {
                let tree = CommitTree::open(&self.dir, spec.commit.clone())?;
                let rel = tree.relative(&self.dir)?;
                Ok(Some(Arc::new(CommitSource {
                    tree,
                    rel,
                    files: OnceLock::new(),
                })))
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn files(&self, source: Option<&CommitSource>) -> Result<Vec<MigrationFile>> {
        let Some(source) = source else {
            return load_dir(&self.dir);
        };
        if let Some(files) = source.files.get() {
            return Ok(files.clone());
        }
        let files = load_commit(&source.tree, &source.rel)?;
        Ok(source.files.get_or_init(|| files).clone())
    }

    /// Where the files come from, for messages.
    pub(crate) fn origin_name(&self, source: Option<&CommitSource>) -> String {
        match source {
            Some(c) => c.tree.describe(&c.rel),
            None => self.dir.display().to_string(),
        }
    }

    /// What the journal keeps to revert `files` later (see [`MigrationOrigin`]).
    pub(crate) fn origin_of(
        &self,
        source: Option<&CommitSource>,
        files: &[&MigrationFile],
    ) -> MigrationOrigin {
        MigrationOrigin {
            commit: source.map(|c| c.tree.commit().clone()),
            down_scripts: files
                .iter()
                .map(|f| DownScript {
                    id: f.id.clone(),
                    sql: f.down.clone(),
                })
                .collect(),
        }
    }
}

/// The journaled down scripts as files (their up scripts are not needed to revert).
pub(crate) fn journaled(origin: &MigrationOrigin) -> Vec<MigrationFile> {
    let from = origin
        .commit
        .as_ref()
        .map(|c| format!("{}:", c.short()))
        .unwrap_or_default();
    origin
        .down_scripts
        .iter()
        .map(|d| MigrationFile {
            id: d.id.clone(),
            path: PathBuf::from(format!("{from}{}.down.sql", d.id)),
            up: String::new(),
            down: d.sql.clone(),
        })
        .collect()
}
