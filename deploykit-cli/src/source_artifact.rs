//! The tarball a PM2 release is made from when it is built once (`source =
//! "artifact"`): the run's `--artifact PATH`, or the target's `artifact` after
//! its `artifact_build` commands ran here. Checked, built and hashed before
//! anything connects, so every host is sent the same bytes and checks them.

use std::path::{Path, PathBuf};

use deploykit_core::shell::{Cmd, LocalShell, ShellExt};
use deploykit_core::{Commit, ReleaseSpec};
use deploykit_pm2::Tarball;

use crate::config::{Pm2Config, Pm2Source};

/// Settings that contradict the target's `source`, whatever the command.
pub fn check_source(env: &str, c: &Pm2Config) -> Result<(), String> {
    match c.source {
        Pm2Source::Git => {
            if c.repo.is_empty() {
                return Err(format!(
                    "environment {env}: a pm2 target needs repo, the repository the hosts \
                     fetch, or source = \"artifact\" to ship a tarball built once"
                ));
            }
            if c.artifact.is_some() || !c.artifact_build.is_empty() {
                return Err(format!(
                    "environment {env}: artifact and artifact_build are for source = \
                     \"artifact\"; set it, or remove them to fetch repo on the hosts"
                ));
            }
        }
        Pm2Source::Artifact => {
            if !c.repo.is_empty() {
                return Err(format!(
                    "environment {env}: source = \"artifact\" ships a tarball, so the hosts \
                     fetch no repo; remove repo (or set source = \"git\")"
                ));
            }
            if !c.artifact_build.is_empty() && c.artifact.is_none() {
                return Err(format!(
                    "environment {env}: artifact_build needs artifact, the tarball it writes \
                     (relative to the config file)"
                ));
            }
            if c.artifact_build.iter().any(|argv| argv.is_empty()) {
                return Err(format!(
                    "environment {env}: an artifact_build command is empty"
                ));
            }
        }
    }
    Ok(())
}

/// What a deploy needs to find its tarball.
pub struct ArtifactRequest<'a> {
    /// The environment's name, for messages.
    pub env: &'a str,
    /// The config file's directory: `artifact` is relative to it and
    /// `artifact_build` runs in it.
    pub base: &'a Path,
    /// `deploy --artifact PATH`.
    pub given: Option<&'a Path>,
    /// The release being deployed.
    pub spec: &'a ReleaseSpec,
    /// Run `artifact_build` (not for `--dry-run`, which changes nothing).
    pub build: bool,
}

/// This run's tarball, hashed once; `None` for a git target (or a dry run whose
/// tarball is still to be built). `Err` is a message for a config error (exit 2).
pub async fn tarball(c: &Pm2Config, r: &ArtifactRequest<'_>) -> Result<Option<Tarball>, String> {
    let env = r.env;
    check_source(env, c)?;
    if c.source == Pm2Source::Git {
        return match r.given {
            Some(_) => Err(format!(
                "environment {env}: --artifact names a tarball to ship, but the target fetches \
                 repo on the hosts; set source = \"artifact\", or leave --artifact out"
            )),
            None => Ok(None),
        };
    }
    let path: PathBuf = match (r.given, &c.artifact) {
        (Some(given), _) => given.to_path_buf(),
        (None, Some(file)) => {
            let file = crate::config::resolve_path(r.base, file);
            if !c.artifact_build.is_empty() {
                if !r.build {
                    return Ok(None);
                }
                build(c, r, &file).await?;
            }
            file
        }
        (None, None) => {
            return Err(format!(
                "environment {env}: source = \"artifact\" and no tarball: pass --artifact PATH \
                 (the tarball CI built from this commit), or set artifact (and artifact_build)"
            ))
        }
    };
    if !path.is_file() {
        return Err(format!(
            "environment {env}: artifact {} does not exist; build it first (or check the \
             path), nothing was changed",
            path.display()
        ));
    }
    Tarball::open(&path)
        .await
        .map(Some)
        .map_err(|e| format!("environment {env}: {e}"))
}

/// Runs `artifact_build` in the config's directory, which must be checked out
/// at the deployed commit: what ships is that commit, never other code.
async fn build(c: &Pm2Config, r: &ArtifactRequest<'_>, file: &Path) -> Result<(), String> {
    let env = r.env;
    let head = Cmd::new("git")
        .arg("-C")
        .arg(r.base.to_string_lossy())
        .args(["rev-parse", "--verify", "HEAD"]);
    let at = LocalShell::new()
        .check("artifact_build", &head)
        .await
        .map_err(|e| format!("environment {env}: {e}"))?
        .stdout_text();
    if Commit::parse(at.trim()).ok().as_ref() != Some(&r.spec.commit) {
        return Err(format!(
            "environment {env}: artifact_build builds the checkout in {}, which is at {}, not \
             at the deployed commit {}; check that commit out, or pass --artifact",
            r.base.display(),
            at.trim(),
            r.spec.commit
        ));
    }
    // A stale tarball from an earlier build must never ship as this one.
    let _ = std::fs::remove_file(file);
    for argv in &c.artifact_build {
        let (program, args) = argv.split_first().expect("checked: not empty");
        let cmd = Cmd::new(program)
            .args(args.iter().cloned())
            .cwd(r.base)
            .public_env("DEPLOYKIT_COMMIT", r.spec.commit.as_str())
            .public_env("DEPLOYKIT_RELEASE", r.spec.id.as_str())
            .public_env("DEPLOYKIT_ARTIFACT", file.to_string_lossy());
        LocalShell::new()
            .check("artifact_build", &cmd)
            .await
            .map_err(|e| {
                format!(
                    "environment {env}: {e}; nothing was changed: fix the build and deploy again"
                )
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm2(extra: &str) -> Pm2Config {
        let text = format!("hosts = [\"d@h\"]\ndeploy_to = \"/srv/a\"\napp = \"web\"\n{extra}");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn source_settings_that_contradict_each_other_are_refused() {
        assert!(check_source("p", &pm2("repo = \"git@x:a.git\"")).is_ok());
        assert!(check_source("p", &pm2(""))
            .unwrap_err()
            .contains("needs repo"));
        assert!(
            check_source("p", &pm2("repo = \"r\"\nartifact = \"a.tar.gz\""))
                .unwrap_err()
                .contains("are for source = \"artifact\"")
        );
        let art = "source = \"artifact\"\n";
        assert!(check_source("p", &pm2(art)).is_ok());
        assert!(check_source("p", &pm2(&format!("{art}repo = \"r\"")))
            .unwrap_err()
            .contains("remove repo"));
        assert!(
            check_source("p", &pm2(&format!("{art}artifact_build = [[\"make\"]]")))
                .unwrap_err()
                .contains("needs artifact")
        );
    }

    #[tokio::test]
    async fn a_run_names_a_tarball_that_exists_or_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ReleaseSpec {
            id: deploykit_core::ReleaseId::parse("r1").unwrap(),
            commit: Commit::parse("0123456789abcdef0123456789abcdef01234567").unwrap(),
            branch: None,
        };
        let given = dir.path().join("app.tar.gz");
        let req = |given: Option<&'static Path>| ArtifactRequest {
            env: "p",
            base: Path::new("/nonexistent"),
            given,
            spec: &spec,
            build: true,
        };
        let git = pm2("repo = \"r\"");
        assert!(tarball(&git, &req(None)).await.unwrap().is_none());
        let art = pm2("source = \"artifact\"");
        let err = tarball(&art, &req(None)).await.unwrap_err();
        assert!(err.contains("pass --artifact PATH"), "{err}");
        let leaked: &'static Path = Box::leak(given.clone().into_boxed_path());
        let err = tarball(&art, &req(Some(leaked))).await.unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("app.tar.gz"), "{err}");
        std::fs::write(&given, b"abc").unwrap();
        let t = tarball(&art, &req(Some(leaked))).await.unwrap().unwrap();
        assert_eq!(t.size(), 3);
        let err = tarball(&git, &req(Some(leaked))).await.unwrap_err();
        assert!(err.contains("leave --artifact out"), "{err}");
    }
}
