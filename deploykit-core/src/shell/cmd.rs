//! Commands as data.

use std::fmt;
use std::path::PathBuf;

use crate::secret::{Secret, REDACTED};

/// A command as a program and its arguments, plus environment and working
/// directory. Built by pure functions, compared in tests as data.
#[derive(Clone, PartialEq, Eq)]
pub struct Cmd {
    /// The program to run.
    pub program: String,
    /// Its arguments, never interpreted by a shell.
    pub args: Vec<String>,
    /// Extra environment; values are secrets and never printed, except those of
    /// the keys in `public`.
    pub env: Vec<(String, Secret)>,
    /// Keys of `env` whose values are not secret (a socket path, a port), shown in
    /// messages so they stay readable.
    pub public: Vec<String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
}

impl Cmd {
    /// `program` with no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            public: Vec::new(),
            cwd: None,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (its value is treated as a secret).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), Secret::new(value)));
        self
    }

    /// Sets an environment variable whose value is not secret (a port, a socket
    /// path, a host name): printed in messages like an argument.
    pub fn public_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.public.push(key.clone());
        self.env.push((key, Secret::new(value)));
        self
    }

    /// The env values that must not appear in output.
    pub fn secret_env(&self) -> Vec<&Secret> {
        self.env
            .iter()
            .filter(|(k, _)| !self.public.contains(k))
            .map(|(_, v)| v)
            .collect()
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The command as one POSIX shell string, every piece quoted: what SSH needs.
    /// Contains env values: pass it to the transport, never to a log (use `Display`).
    pub fn to_shell(&self) -> String {
        let mut parts = Vec::new();
        if let Some(dir) = &self.cwd {
            parts.push(format!("cd {} &&", quote(&dir.to_string_lossy())));
        }
        if !self.env.is_empty() {
            parts.push("env".to_string());
            for (k, v) in &self.env {
                parts.push(quote(&format!("{k}={}", v.expose())));
            }
        }
        parts.push(quote(&self.program));
        parts.extend(self.args.iter().map(|a| quote(a)));
        parts.join(" ")
    }
}

impl fmt::Display for Cmd {
    /// The command for humans: quoted like `to_shell`, env values redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.cwd {
            write!(f, "cd {} && ", quote(&dir.to_string_lossy()))?;
        }
        for (k, v) in &self.env {
            if self.public.contains(k) {
                write!(f, "{} ", quote(&format!("{k}={}", v.expose())))?;
            } else {
                write!(f, "{k}={REDACTED} ")?;
            }
        }
        write!(f, "{}", quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cmd({self})")
    }
}

/// Quotes one word for a POSIX shell. Words made only of safe characters stay as
/// they are (readable logs); anything else is single-quoted, with `'` written as
/// `'\''`. This is the only quoting function in deploykit.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_shell_metacharacters() {
        assert_eq!(quote("pm2"), "pm2");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(quote("a&b;c|d`e`"), "'a&b;c|d`e`'");
    }

    #[test]
    fn public_env_values_are_displayed_and_secret_ones_are_not() {
        let cmd = Cmd::new("docker-compose")
            .public_env("DOCKER_HOST", "unix:///run/dk.sock")
            .env("TOKEN", "s3cr3t");
        let shown = cmd.to_string();
        assert!(shown.contains("DOCKER_HOST=unix:///run/dk.sock"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(cmd.secret_env().len(), 1);
        assert_eq!(cmd.secret_env()[0].expose(), "s3cr3t");
        let out = crate::shell::Output {
            status: 1,
            stdout: Vec::new(),
            stderr: b"cannot reach unix:///run/dk.sock with s3cr3t".to_vec(),
        };
        let failed = crate::shell::CommandFailed::new("up", "here", &cmd, &out).to_string();
        assert!(
            failed.contains("unix:///run/dk.sock with [redacted]"),
            "{failed}"
        );
    }

    #[test]
    fn env_values_are_in_the_shell_string_but_never_displayed() {
        let cmd = Cmd::new("node")
            .arg("server.js")
            .env("DATABASE_URL", "postgres://u:pw@h/db")
            .cwd("/srv/app");
        assert_eq!(
            cmd.to_shell(),
            "cd /srv/app && env DATABASE_URL=postgres://u:pw@h/db node server.js"
        );
        let shown = cmd.to_string();
        assert!(!shown.contains("pw"), "{shown}");
        assert!(shown.contains("DATABASE_URL=[redacted]"));
        assert!(!format!("{cmd:?}").contains("pw"));
    }

    #[tokio::test]
    async fn quoted_words_reach_the_program_unchanged() {
        let hostile = [
            "a b",
            "it's",
            "$(echo pwned)",
            "x;y",
            "`id`",
            "\"q\"",
            "back\\slash",
            "*",
            "~",
        ];
        let cmd = Cmd::new("printf").arg("%s\\n").args(hostile);
        let out = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd.to_shell())
            .output()
            .await
            .unwrap();
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(lines, hostile);
    }
}
