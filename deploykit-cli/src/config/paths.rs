//! Paths written in the config file, made absolute the way a user expects.

use std::path::{Path, PathBuf};

/// Resolves a path from the config: `~/…` under the user's home (as a shell and
/// `ssh` would read it), other relative paths against the config file's directory.
///
/// Why it matters: `known_hosts = "~/.ssh/known_hosts"` joined onto the config
/// directory names a file that does not exist, and with `accept_new_host_keys`
/// ssh then silently accepts any host key.
pub fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    resolve_with_home(base, p, home.as_deref())
}

fn resolve_with_home(base: &Path, p: &Path, home: Option<&Path>) -> PathBuf {
    if let (Ok(rest), Some(home)) = (p.strip_prefix("~"), home) {
        return home.join(rest);
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tilde_path_is_under_home_not_under_the_config_directory() {
        let home = Path::new("/home/ana");
        let base = Path::new("/srv/project");
        assert_eq!(
            resolve_with_home(base, Path::new("~/.ssh/known_hosts"), Some(home)),
            Path::new("/home/ana/.ssh/known_hosts")
        );
        assert_eq!(
            resolve_with_home(base, Path::new("~"), Some(home)),
            Path::new("/home/ana")
        );
        assert_eq!(
            resolve_with_home(base, Path::new("keys/id"), Some(home)),
            Path::new("/srv/project/keys/id")
        );
        assert_eq!(
            resolve_with_home(base, Path::new("/etc/ssh/known"), Some(home)),
            Path::new("/etc/ssh/known")
        );
        // `~user` is not expanded (no user database lookup): it stays a relative name.
        assert_eq!(
            resolve_with_home(base, Path::new("~bob/k"), Some(home)),
            Path::new("/srv/project/~bob/k")
        );
    }
}
