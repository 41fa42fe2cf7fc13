//! The override file that pins a service to one immutable release tag.
//!
//! Rollback must never depend on a mutable tag such as `:latest`: deploykit writes a
//! small compose override naming the exact `<repo>:<release-id>` and passes it after
//! the project's own files. It is written as JSON (which every YAML parser reads), so
//! no value ever needs YAML quoting.

use std::path::{Path, PathBuf};

use deploykit_core::{Cmd, Error, Result, Shell, ShellExt};

/// Where one purpose's override for one service lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinFile {
    /// The file's path on the compose host.
    pub path: PathBuf,
}

impl PinFile {
    /// `<state_dir>/<project>.<service>.<purpose>.yml`.
    pub fn new(state_dir: &Path, project: &str, service: &str, purpose: &str) -> Self {
        Self {
            path: state_dir.join(format!("{project}.{service}.{purpose}.yml")),
        }
    }

    /// The override's text: `services.<service>.image = <image>`.
    pub fn render(service: &str, image: &str) -> String {
        let doc = serde_json::json!({ "services": { service: { "image": image } } });
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The commands that write `text` to the file atomically (temp file, then rename).
    pub fn write_cmds(&self) -> [Cmd; 3] {
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let tmp = self.path.with_extension("yml.tmp");
        [
            Cmd::new("mkdir").arg("-p").arg(dir.to_string_lossy()),
            Cmd::new("dd")
                .arg(format!("of={}", tmp.to_string_lossy()))
                .arg("status=none"),
            Cmd::new("mv")
                .arg("-f")
                .arg(tmp.to_string_lossy())
                .arg(self.path.to_string_lossy()),
        ]
    }

    /// Pins `service` to `image` by (re)writing the file on the compose host.
    pub async fn write(&self, shell: &dyn Shell, service: &str, image: &str) -> Result<()> {
        let text = Self::render(service, image);
        let [mkdir, write, rename] = self.write_cmds();
        shell.check("activate.pin", &mkdir).await?;
        let out = shell.run(&write, Some(text.as_bytes())).await?;
        if !out.success() {
            return Err(Error::from(deploykit_core::shell::CommandFailed::new(
                "activate.pin",
                shell.location(),
                &write,
                &out,
            )));
        }
        shell.check("activate.pin", &rename).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names_the_exact_release_tag() {
        let text = PinFile::render("backend", "crm/backend:20261126T100000Z-abc1234");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["services"]["backend"]["image"],
            "crm/backend:20261126T100000Z-abc1234"
        );
    }

    #[test]
    fn pin_path_and_atomic_write_commands() {
        let pin = PinFile::new(Path::new("/srv/crm/.deploykit"), "crm", "backend", "live");
        assert_eq!(
            pin.path,
            Path::new("/srv/crm/.deploykit/crm.backend.live.yml")
        );
        let [mkdir, write, rename] = pin.write_cmds();
        assert_eq!(mkdir.to_string(), "mkdir -p /srv/crm/.deploykit");
        assert_eq!(
            write.to_string(),
            "dd of=/srv/crm/.deploykit/crm.backend.live.yml.tmp status=none"
        );
        assert_eq!(
            rename.to_string(),
            "mv -f /srv/crm/.deploykit/crm.backend.live.yml.tmp /srv/crm/.deploykit/crm.backend.live.yml"
        );
    }

    #[tokio::test]
    async fn pin_is_written_through_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let pin = PinFile::new(&dir.path().join("state"), "p", "web", "live");
        pin.write(&deploykit_core::LocalShell::new(), "web", "r:1")
            .await
            .unwrap();
        let text = std::fs::read_to_string(&pin.path).unwrap();
        assert_eq!(text, PinFile::render("web", "r:1"));
    }
}
