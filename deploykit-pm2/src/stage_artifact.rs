//! Staging a release from a [`Tarball`]: upload it over the host's shell (the
//! SSH master), have the host hash what it received, and unpack it only when
//! that digest is the one computed on the deploying machine.

use deploykit_core::shell::CommandFailed;
use deploykit_core::{Error, ReleaseSpec, Result, Shell, ShellExt};
use tokio::io::AsyncReadExt;

use crate::commands;
use crate::layout::Layout;
use crate::tarball::{Tarball, CHUNK};

/// Uploads, checks and unpacks `tarball` into `spec`'s release directory. The
/// upload file is removed whatever happens; the live release is never touched.
pub(crate) async fn stage(
    shell: &dyn Shell,
    layout: &Layout,
    spec: &ReleaseSpec,
    tarball: &Tarball,
) -> Result<()> {
    let result = upload_and_unpack(shell, layout, spec, tarball).await;
    if result.is_err() {
        let _ = shell
            .run(&commands::remove_upload(layout, &spec.id), None)
            .await;
    }
    result
}

async fn upload_and_unpack(
    shell: &dyn Shell,
    layout: &Layout,
    spec: &ReleaseSpec,
    tarball: &Tarball,
) -> Result<()> {
    upload(shell, layout, spec, tarball).await?;
    verify_upload(shell, layout, spec, tarball).await?;
    shell
        .check(
            "prepare.unpack",
            &commands::unpack_artifact(layout, &spec.id, &spec.commit, tarball.sha256()),
        )
        .await
        .map_err(|e| {
            e.with_hint(format!(
                "check that {} is a gzipped tarball (tar -tzf) and the host has disk space",
                tarball.path().display()
            ))
        })?;
    Ok(())
}

/// Sends the file in [`CHUNK`]s, each on the stdin of one command over the
/// shell's connection: never in argv, never the whole file in memory.
async fn upload(
    shell: &dyn Shell,
    layout: &Layout,
    spec: &ReleaseSpec,
    tarball: &Tarball,
) -> Result<()> {
    let path = tarball.path();
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io("reading artifact", path, e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut first = true;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = file
                .read(&mut buf[filled..])
                .await
                .map_err(|e| Error::io("reading artifact", path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 && !first {
            return Ok(());
        }
        let cmd = commands::upload_chunk(layout, &spec.id, first);
        let out = shell.run(&cmd, Some(&buf[..filled])).await?;
        if !out.success() {
            return Err(Error::from(CommandFailed::new(
                "prepare.upload",
                shell.location(),
                &cmd,
                &out,
            ))
            .with_hint("check the host's disk space and permissions on deploy_to"));
        }
        first = false;
        if filled < buf.len() {
            return Ok(());
        }
    }
}

/// The host's `sha256sum` of the upload must be the tarball's digest; otherwise
/// prepare fails on this host, naming both digests.
async fn verify_upload(
    shell: &dyn Shell,
    layout: &Layout,
    spec: &ReleaseSpec,
    tarball: &Tarball,
) -> Result<()> {
    let out = shell
        .check(
            "prepare.checksum",
            &commands::upload_digest(layout, &spec.id),
        )
        .await
        .map_err(|e| e.with_hint("install sha256sum (coreutils) on the host"))?;
    let text = out.stdout_text();
    let actual = text.split_whitespace().next().unwrap_or("").to_string();
    if actual.eq_ignore_ascii_case(tarball.sha256()) {
        return Ok(());
    }
    Err(Error::part(
        "prepare.checksum",
        shell.location(),
        format!(
            "the artifact received has sha256 {actual}, but {} has sha256 {}; it was not unpacked",
            tarball.path().display(),
            tarball.sha256()
        ),
    )
    .with_hint(
        "the bytes changed on the way or the local file changed during the deploy: \
         check the host's disk space, leave the tarball alone while deploying, and deploy again",
    ))
}

/// The artifact digest recorded with `release` on the host (`sha256:<hex>`), or
/// `None` when the release was not made from an artifact (or is not there).
pub async fn recorded_artifact(
    shell: &dyn Shell,
    layout: &Layout,
    release: &deploykit_core::ReleaseId,
) -> Result<Option<String>> {
    let out = shell
        .run(&commands::read_artifact(layout, release), None)
        .await?;
    let text = out.stdout_text();
    let digest = text.trim();
    Ok((out.success() && digest.starts_with("sha256:")).then(|| digest.to_string()))
}

/// A release already complete on the host is reused only when it was made from
/// this very tarball: the same release id with other bytes is refused, never
/// silently kept.
pub(crate) async fn refuse_other_bytes(
    shell: &dyn Shell,
    layout: &Layout,
    spec: &ReleaseSpec,
    tarball: &Tarball,
) -> Result<()> {
    let recorded = recorded_artifact(shell, layout, &spec.id).await?;
    let wanted = format!("sha256:{}", tarball.sha256());
    match recorded {
        Some(r) if r == wanted => Ok(()),
        other => Err(Error::part(
            "prepare",
            shell.location(),
            format!(
                "release {} is already on this host, made from {}, not from {} ({wanted})",
                spec.id,
                other.as_deref().unwrap_or("the repository"),
                tarball.path().display()
            ),
        )
        .with_hint("deploy under a new release id")),
    }
}
