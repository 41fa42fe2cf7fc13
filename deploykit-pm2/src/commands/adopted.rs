//! The record of an app PM2 ran before deploykit took it over, and its processes.

use deploykit_core::Cmd;

use super::pm2::pm2;
use super::{path, script};
use crate::config::Pm2Config;
use crate::layout::Layout;

/// Writes the record of an adopted app (JSON on stdin: it holds the app's env)
/// owner-only, replacing the file atomically.
pub fn write_adopted(layout: &Layout) -> Cmd {
    script(
        r#"set -e
umask 077
mkdir -p "$(dirname "$1")"
cat > "$1.tmp"
mv -f "$1.tmp" "$1""#,
        [path(&layout.adopted())],
    )
}

/// Forgets the record of an adopted app.
pub fn remove_adopted(layout: &Layout) -> Cmd {
    Cmd::new("rm").arg("-f").arg(path(&layout.adopted()))
}

/// Whether the record of an adopted app exists (exit 0) or not.
pub fn adopted_exists(layout: &Layout) -> Cmd {
    Cmd::new("test").arg("-f").arg(path(&layout.adopted()))
}

/// Starts the adopted app again from its record (a PM2 process file): the
/// script, cwd, instances, mode and env it ran with before deploykit took over.
pub fn start_adopted(config: &Pm2Config, layout: &Layout) -> Cmd {
    pm2(config, &[]).arg("start").arg(path(&layout.adopted()))
}

/// Stops and forgets one PM2 process by id (never the app by name, when other
/// processes of that name are not deploykit's).
pub fn delete_id(config: &Pm2Config, pm_id: u32) -> Cmd {
    pm2(config, &[]).arg("delete").arg(pm_id.to_string())
}
