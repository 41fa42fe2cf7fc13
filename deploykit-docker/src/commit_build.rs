//! Building a release's image from its commit, not from the checkout.
//!
//! `compose build` takes its context from the project directory, which is whatever
//! the working tree holds: another tag, uncommitted edits. A release is named after
//! a commit, so its image must be built from exactly that commit's files. The commit
//! is exported with `git archive` on the deploying machine, unpacked on the compose
//! host (over the same shell compose runs through, so a remote host works the same
//! way) and built there with the project's paths mapped into the export. The env
//! file is deploy-time configuration, not code, and stays where it is configured.

use std::path::{Path, PathBuf};

use deploykit_core::shell::CommandFailed;
use deploykit_core::{Cmd, CommitTree, Error, ReleaseSpec, Result, Shell, ShellExt};

use crate::compose::ComposeProject;

/// `project` with its files and directory moved from the checkout into `export`,
/// the compose host's copy of `tree`'s commit. Files outside the repository are
/// refused: the commit does not say what they hold.
pub fn project_in_export(
    project: &ComposeProject,
    tree: &CommitTree,
    export: &Path,
) -> Result<ComposeProject> {
    let mut mapped = project.clone();
    mapped.files = project
        .files
        .iter()
        .map(|f| tree.relative(f).map(|rel| export.join(rel)))
        .collect::<Result<Vec<PathBuf>>>()?;
    mapped.directory = export.join(tree.relative(&project.directory)?);
    Ok(mapped)
}

/// The command that unpacks a tar archive from stdin into a fresh `dir`.
pub fn unpack_cmd(dir: &Path) -> Cmd {
    Cmd::new("sh")
        .arg("-c")
        .arg(r#"rm -rf "$1" && mkdir -p "$1" && tar -x -C "$1""#)
        .arg("sh")
        .arg(dir.to_string_lossy())
}

/// Builds `service` of `project` from `spec.commit` of the repository `repo`, in
/// `<state_dir>/build-<release>` on the compose host (removed afterwards).
pub async fn build_from_commit(
    shell: &dyn Shell,
    project: &ComposeProject,
    service: &str,
    repo: &Path,
    spec: &ReleaseSpec,
    state_dir: &Path,
) -> Result<()> {
    let tree = CommitTree::open(repo, spec.commit.clone())?;
    let export = state_dir.join(format!("build-{}", spec.id));
    // Map first: refuse compose files outside the repository before any work.
    let mapped = project_in_export(project, &tree, &export)?;
    let archive = tree.archive()?;
    let unpack = unpack_cmd(&export);
    let out = shell.run(&unpack, Some(&archive)).await?;
    if !out.success() {
        return Err(Error::from(CommandFailed::new(
            "prepare.export",
            shell.location(),
            &unpack,
            &out,
        )));
    }
    let built = shell.check("prepare", &mapped.build(service)).await;
    let cleanup = Cmd::new("rm").arg("-rf").arg(export.to_string_lossy());
    let _ = shell.run(&cleanup, None).await;
    built.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::ComposeCli;

    #[test]
    fn the_project_moves_into_the_export_and_keeps_its_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().canonicalize().unwrap();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::create_dir_all(repo.join("deploy")).unwrap();
        std::fs::write(repo.join("deploy/compose.yml"), "services: {}\n").unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-qm", "one"]);
        let head = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        let commit =
            deploykit_core::Commit::parse(String::from_utf8(head.stdout).unwrap().trim()).unwrap();
        let tree = CommitTree::open(&repo, commit).unwrap();
        let project = ComposeProject::new(
            "crm",
            vec![repo.join("deploy/compose.yml")],
            ComposeCli::V2Plugin,
        )
        .unwrap();
        let mapped = project_in_export(&project, &tree, Path::new("/x/build-r1")).unwrap();
        assert_eq!(
            mapped.files,
            [PathBuf::from("/x/build-r1/deploy/compose.yml")]
        );
        assert_eq!(mapped.directory, PathBuf::from("/x/build-r1/deploy"));
        assert_eq!(mapped.env_file, repo.join("deploy/.env"));
        let outside =
            ComposeProject::new("crm", vec!["/elsewhere/c.yml".into()], ComposeCli::V2Plugin)
                .unwrap();
        assert!(project_in_export(&outside, &tree, Path::new("/x")).is_err());
    }
}
