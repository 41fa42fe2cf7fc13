//! [`CommitTree`]: the files of one commit, read from git's object store.
//!
//! # Why not the working tree
//!
//! A run is named after a commit, so everything it applies — code, migrations, down
//! scripts — must be that commit's. The working tree is whatever happens to be
//! checked out: another branch, a newer tag, uncommitted files. Reading through git
//! (`git ls-tree`, `git cat-file`, `git archive`) gives exactly the commit's content
//! whatever the checkout holds, and keeps giving it after the checkout has moved on.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::release::Commit;

/// One commit of a local repository, read without touching its working tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitTree {
    repo: PathBuf,
    commit: Commit,
}

impl CommitTree {
    /// `commit` of the repository that contains `path` (any path inside its working
    /// tree; the path need not exist in the checkout any more). Fails when `path`
    /// is in no repository. A commit missing from the repository is reported when
    /// its files are read, so parts that never need them (an undo that has what it
    /// needs in the journal) still work.
    pub fn open(path: &Path, commit: Commit) -> Result<Self> {
        Ok(Self {
            repo: toplevel(path)?,
            commit,
        })
    }

    /// True when the commit is in the repository.
    pub fn exists(&self) -> bool {
        let spec = format!("{}^{{commit}}", self.commit);
        self.git(&["cat-file", "-e", &spec], None)
            .map(|out| out.status.success())
            .unwrap_or(false)
    }

    fn require(&self) -> Result<()> {
        if self.exists() {
            return Ok(());
        }
        Err(Error::Refused {
            reason: format!(
                "commit {} is not in the repository {}",
                self.commit,
                self.repo.display()
            ),
            next: "fetch the commit into that repository (`git fetch`), then run again".into(),
        })
    }

    /// The top directory of the repository that contains `path`, e.g. to open
    /// commits of it later.
    pub fn repository_of(path: &Path) -> Result<PathBuf> {
        toplevel(path)
    }

    /// The repository's top directory.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// The commit.
    pub fn commit(&self) -> &Commit {
        &self.commit
    }

    /// Where `path` (a path in the working tree) is inside the repository, e.g.
    /// `supabase/migrations`. Paths outside the repository are refused: the commit
    /// says nothing about them.
    pub fn relative(&self, path: &Path) -> Result<PathBuf> {
        let absolute = canonical_prefix(path)?;
        absolute
            .strip_prefix(&self.repo)
            .map(Path::to_path_buf)
            .map_err(|_| Error::Refused {
                reason: format!(
                    "{} is outside the repository {} whose commit is deployed",
                    path.display(),
                    self.repo.display()
                ),
                next: "keep it in the repository, so the deployed commit decides its content"
                    .into(),
            })
    }

    /// How a file of the commit is named in messages: `<short commit>:<path>`.
    pub fn describe(&self, rel: &Path) -> String {
        format!("{}:{}", self.commit.short(), rel.display())
    }

    /// The files (not subdirectories) directly in `dir` (relative to the repository)
    /// as the commit has them, name and content. A directory the commit does not
    /// have is an error, as reading a missing directory would be.
    pub fn read_dir(&self, dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
        self.require()?;
        let tree = format!("{}:{}", self.commit, git_path(dir));
        let out = self.git(&["ls-tree", "-z", &tree], None)?;
        if !out.status.success() {
            return Err(self.fail(
                "read migrations",
                format!(
                    "the commit has no directory {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        let mut names = Vec::new();
        for entry in out.stdout.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, name)) = entry.split_once('\t') else {
                continue;
            };
            if meta.split_whitespace().nth(1) == Some("blob") {
                names.push(name.to_string());
            }
        }
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // One `cat-file --batch` for every file: a process per file is slow on
        // projects with hundreds of migrations.
        let mut input = String::new();
        for name in &names {
            input.push_str(&format!("{tree}/{name}\n"));
        }
        let out = self.git(&["cat-file", "--batch"], Some(input.as_bytes()))?;
        if !out.status.success() {
            return Err(self.fail(
                "read migrations",
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        let mut rest = out.stdout.as_slice();
        let mut files = Vec::new();
        for name in names {
            let end = rest
                .iter()
                .position(|b| *b == b'\n')
                .ok_or_else(|| self.fail("read migrations", "git cat-file output ended early"))?;
            let header = String::from_utf8_lossy(&rest[..end]).to_string();
            let size: usize = header
                .split_whitespace()
                .nth(2)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    self.fail(
                        "read migrations",
                        format!("unexpected git cat-file answer for {name}: {header}"),
                    )
                })?;
            let body = rest
                .get(end + 1..end + 1 + size)
                .ok_or_else(|| self.fail("read migrations", "git cat-file output is truncated"))?;
            files.push((name, body.to_vec()));
            rest = rest.get(end + 2 + size..).unwrap_or_default();
        }
        Ok(files)
    }

    /// The whole commit as a tar archive (`git archive`), e.g. to build from.
    pub fn archive(&self) -> Result<Vec<u8>> {
        self.require()?;
        let out = self.git(&["archive", "--format=tar", self.commit.as_str()], None)?;
        if !out.status.success() {
            return Err(self.fail(
                "export commit",
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(out.stdout)
    }

    /// Writes the commit's files into the directory `into` (created if missing).
    pub fn export_to(&self, into: &Path) -> Result<()> {
        std::fs::create_dir_all(into).map_err(|e| Error::io("export commit", into, e))?;
        let archive = self.archive()?;
        let mut child = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(into)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("export commit (tar)", into, e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&archive)
                .map_err(|e| Error::io("export commit (tar)", into, e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("export commit (tar)", into, e))?;
        if !out.status.success() {
            return Err(self.fail(
                "export commit",
                format!(
                    "tar -x into {} failed: {}",
                    into.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(())
    }

    fn fail(&self, step: &str, message: impl Into<String>) -> Error {
        Error::part(
            step,
            format!("{} at {}", self.repo.display(), self.commit.short()),
            message,
        )
    }

    fn git(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<std::process::Output> {
        run_git(&self.repo, args, stdin)
    }
}

fn run_git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<std::process::Output> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("run git", dir, e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Written from a thread: git answers while it reads, and both pipes are finite.
        let input = input.to_vec();
        let writer = std::thread::spawn(move || pipe.write_all(&input));
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("run git", dir, e))?;
        let _ = writer.join();
        return Ok(out);
    }
    child
        .wait_with_output()
        .map_err(|e| Error::io("run git", dir, e))
}

/// The top directory of the repository containing `path` (or its nearest existing
/// ancestor: a directory deleted from the checkout is still inside the repository).
fn toplevel(path: &Path) -> Result<PathBuf> {
    let existing = canonical_prefix(path)?;
    let mut dir = existing.as_path();
    while !dir.is_dir() {
        dir = dir.parent().unwrap_or(Path::new("/"));
    }
    let out = run_git(dir, &["rev-parse", "--show-toplevel"], None)?;
    if !out.status.success() {
        return Err(Error::Refused {
            reason: format!("{} is not inside a git repository", path.display()),
            next: "deploy from a git checkout: deploykit deploys commits".into(),
        });
    }
    let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Ok(top.canonicalize().unwrap_or(top))
}

/// `path` made absolute with its longest existing prefix canonicalised (symlinks
/// resolved), so it compares with git's top directory.
fn canonical_prefix(path: &Path) -> Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("resolve path", path, e))?
            .join(path)
    };
    let mut existing = absolute.clone();
    let mut missing = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in missing.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return Ok(absolute),
        }
    }
}

/// A relative path as git spells it (`/` separators, no `.` parts).
fn git_path(rel: &Path) -> String {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn reads_the_commit_not_the_working_tree() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        git(repo, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(repo.join("db/migrations/sub")).unwrap();
        std::fs::write(repo.join("db/migrations/1_a.sql"), "select 1;").unwrap();
        std::fs::write(repo.join("db/migrations/sub/x"), "nested").unwrap();
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-q", "-m", "v1"]);
        let v1 = Commit::parse(git(repo, &["rev-parse", "HEAD"])).unwrap();
        // The working tree moves on: an edit, an uncommitted file, then the whole dir gone.
        std::fs::write(repo.join("db/migrations/1_a.sql"), "select 'edited';").unwrap();
        std::fs::write(repo.join("db/migrations/2_b.sql"), "select 2;").unwrap();
        let tree = CommitTree::open(&repo.join("db/migrations"), v1.clone()).unwrap();
        let rel = tree.relative(&repo.join("db/migrations")).unwrap();
        assert_eq!(rel, Path::new("db/migrations"));
        std::fs::remove_dir_all(repo.join("db")).unwrap();
        let files = tree.read_dir(&rel).unwrap();
        assert_eq!(files, vec![("1_a.sql".to_string(), b"select 1;".to_vec())]);
        assert!(tree.read_dir(Path::new("nope")).is_err());
        assert!(tree.relative(Path::new("/elsewhere")).is_err());
        let missing = CommitTree::open(repo, Commit::parse("0".repeat(40)).unwrap()).unwrap();
        assert!(!missing.exists());
        let err = missing.read_dir(&rel).unwrap_err().to_string();
        assert!(err.contains("is not in the repository"), "{err}");
        let out = tempfile::tempdir().unwrap();
        tree.export_to(out.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.path().join("db/migrations/1_a.sql")).unwrap(),
            "select 1;"
        );
        assert!(!out.path().join("db/migrations/2_b.sql").exists());
    }
}
