//! Where a [`SqlMigrator`]'s files come from: the working tree, or the deployed
//! commit ([`SqlMigrator::from_commit`]); and what the journal keeps so an undo
//! reverts with that commit's down scripts after the checkout has moved on.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::commit_tree::CommitTree;
use crate::error::Result;
use crate::migrate::{DownScript, MigrationOrigin};
use crate::release::Commit;

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
    /// Reads the migrations of `tree`'s commit instead of the working tree: `dir`
    /// names the same directory, and is where in the repository to look. What a
    /// deploy plans, applies and reverts is then the deployed commit's, whatever is
    /// checked out or uncommitted. Refuses a `dir` outside the repository.
    pub fn from_commit(mut self, tree: CommitTree) -> Result<Self> {
        let rel = tree.relative(&self.dir)?;
        self.commit = Some(Arc::new(CommitSource {
            tree,
            rel,
            files: OnceLock::new(),
        }));
        Ok(self)
    }

    pub(crate) fn files(&self) -> Result<Vec<MigrationFile>> {
        let Some(source) = &self.commit else {
            return load_dir(&self.dir);
        };
        if let Some(files) = source.files.get() {
            return Ok(files.clone());
        }
        let files = load_commit(&source.tree, &source.rel)?;
        Ok(source.files.get_or_init(|| files).clone())
    }

    /// Where the files come from, for messages.
    pub(crate) fn origin_name(&self) -> String {
        match &self.commit {
            Some(c) => c.tree.describe(&c.rel),
            None => self.dir.display().to_string(),
        }
    }

    /// What the journal keeps to revert `files` later (see [`MigrationOrigin`]).
    pub(crate) fn origin_of(&self, files: &[&MigrationFile]) -> MigrationOrigin {
        MigrationOrigin {
            commit: self.commit.as_ref().map(|c| c.tree.commit().clone()),
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
