//! A remote host's Docker engine, reached over the run's SSH connection.
//!
//! The engine socket is never exposed on the network: the remote socket is forwarded
//! over the same OpenSSH master that carries every other command of the run to a
//! local unix socket, and [`Engine::connect`] uses that socket exactly as it uses a
//! local engine's. Compose commands run on the remote host through the same
//! [`SshShell`].

use std::path::Path;

use deploykit_core::shell::SshShell;
use deploykit_core::Result;

use crate::engine::Engine;

/// The remote engine's default socket.
pub const DEFAULT_REMOTE_SOCKET: &str = "/var/run/docker.sock";

/// Forwards `remote_socket` on `shell`'s host to `local_socket` (which must not exist
/// yet; its directory must) and connects to the engine through it.
pub async fn connect_over_ssh(
    shell: &SshShell,
    remote_socket: &Path,
    local_socket: &Path,
) -> Result<Engine> {
    use deploykit_core::Shell;
    shell
        .forward_unix_socket(remote_socket, local_socket)
        .await?;
    let location = format!(
        "docker engine {} on {}",
        remote_socket.display(),
        shell.location()
    );
    Engine::connect(&local_socket.to_string_lossy(), location).await
}
