//! Commands as data.

use std::fmt;
use std::path::PathBuf;

use crate::secret::{redact, Secret, REDACTED};

/// The shell variable [`Cmd::to_remote`]'s env script sets last, so the command
/// runs only when all of it arrived.
const ENV_READ_MARKER: &str = "__deploykit_env";

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

    /// The command as one POSIX shell string, every piece quoted.
    /// Contains env values: pass it to the transport, never to a log (use `Display`).
    /// For a remote host use [`Cmd::to_remote`], which keeps them off its argv.
    pub fn to_shell(&self) -> String {
        self.shell_string(&self.env)
    }

    /// What a remote host gets: a shell string in which no secret env value appears,
    /// and the bytes for its stdin, which carry those values ahead of `stdin`.
    ///
    /// A command line is public on a host: other users read it in `ps` and
    /// `/proc/*/cmdline`, for the `sh -c` that runs it and for every process it
    /// starts. So the secrets travel on stdin instead: a line with the byte length
    /// of an `export 'KEY=value'` script, the script, then the command's own
    /// input. The string reads exactly that many bytes (`dd bs=1`, so the rest of
    /// stdin stays for the command), `eval`s it in the shell itself (`export` is a
    /// builtin: no process gets the values as arguments), checks it all arrived,
    /// then runs the command, which inherits them. Public env stays on the line.
    pub fn to_remote(&self, stdin: Option<&[u8]>) -> (String, Option<Vec<u8>>) {
        let secrets: Vec<&(String, Secret)> = self
            .env
            .iter()
            .filter(|(k, _)| !self.public.contains(k))
            .collect();
        if secrets.is_empty() {
            return (self.to_shell(), stdin.map(<[u8]>::to_vec));
        }
        let mut script = String::new();
        for (k, v) in &secrets {
            script.push_str("export ");
            script.push_str(&quote(&format!("{k}={}", v.expose())));
            script.push('\n');
        }
        script.push_str(&format!("{ENV_READ_MARKER}=ok\n"));
        let mut input = format!("{}\n", script.len()).into_bytes();
        input.extend_from_slice(script.as_bytes());
        input.extend_from_slice(stdin.unwrap_or_default());
        let public: Vec<(String, Secret)> = self
            .env
            .iter()
            .filter(|(k, _)| self.public.contains(k))
            .cloned()
            .collect();
        let line = format!(
            "IFS= read -r {m}_len && eval \"$(dd bs=1 count=\"${m}_len\" 2>/dev/null)\" && \
             [ \"${{{m}-}}\" = ok ] || {{ echo 'deploykit: the environment did not arrive on stdin' >&2; exit 125; }}; {}",
            self.shell_string(&public),
            m = ENV_READ_MARKER,
        );
        (line, Some(input))
    }

    fn shell_string(&self, env: &[(String, Secret)]) -> String {
        let mut parts = Vec::new();
        if let Some(dir) = &self.cwd {
            parts.push(format!("cd {} &&", quote(&dir.to_string_lossy())));
        }
        if !env.is_empty() {
            parts.push("env".to_string());
            for (k, v) in env {
                parts.push(quote(&format!("{k}={}", v.expose())));
            }
        }
        parts.push(quote(&self.program));
        parts.extend(self.args.iter().map(|a| quote(a)));
        parts.join(" ")
    }
}

impl fmt::Display for Cmd {
    /// The command for humans: quoted like `to_shell`, env values redacted, and in
    /// every word the [`mask`](crate::secret::mask)ed values and URL passwords
    /// (`--database-url postgres://app:[redacted]@db/app`, a `repo` with a token).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets = self.secret_env();
        let shown = |word: &str| quote(&redact(word, &secrets));
        if let Some(dir) = &self.cwd {
            write!(f, "cd {} && ", shown(&dir.to_string_lossy()))?;
        }
        for (k, v) in &self.env {
            if self.public.contains(k) {
                write!(f, "{} ", shown(&format!("{k}={}", v.expose())))?;
            } else {
                write!(f, "{k}={REDACTED} ")?;
            }
        }
        write!(f, "{}", shown(&self.program))?;
        for a in &self.args {
            write!(f, " {}", shown(a))?;
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

    #[test]
    fn arguments_never_show_masked_values_or_url_passwords() {
        crate::secret::mask(&Secret::new("postgres://app:cmd-arg-pw-77@db/app"));
        let cmd = Cmd::new("sqlx")
            .args(["migrate", "run", "--database-url"])
            .arg("postgres://app:cmd-arg-pw-77@db/app")
            .arg("https://deploy:other-token-88@git.example/app.git")
            .arg("--token=cmd-arg-pw-77");
        let shown = cmd.to_string();
        assert!(!shown.contains("cmd-arg-pw-77"), "{shown}");
        assert!(!shown.contains("other-token-88"), "{shown}");
        assert!(
            shown.starts_with("sqlx migrate run --database-url"),
            "{shown}"
        );
        assert!(
            cmd.to_shell().contains("cmd-arg-pw-77"),
            "the host still gets it"
        );
    }

    #[tokio::test]
    async fn a_remote_command_gets_its_secret_env_on_stdin_never_on_its_command_line() {
        let secret = "s3cret 'quoted' $(x)\nline2";
        let dir = tempfile::tempdir().unwrap();
        let cmd = Cmd::new("sh")
            .arg("-c")
            .arg("printf '%s|%s|' \"$DB\" \"$PORT\"; cat; cat /proc/$$/cmdline /proc/$PPID/cmdline | tr '\\0' ' '")
            .env("DB", secret)
            .public_env("PORT", "8080")
            .cwd(dir.path());
        let (line, input) = cmd.to_remote(Some(b"own-input"));
        assert!(!line.contains("s3cret"), "{line}");
        assert!(
            line.contains("PORT=8080"),
            "public env stays readable: {line}"
        );
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(&input.unwrap()).await.unwrap();
        drop(pipe);
        let out = child.wait_with_output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (shown, rest) = text.split_at(text.find("|8080|").unwrap());
        assert_eq!(shown, secret);
        assert!(rest.starts_with("|8080|own-input"), "{rest}");
        assert!(!rest.contains("s3cret"), "no argv holds it: {rest}");

        let (line, input) = Cmd::new("true").env("A", "x").to_remote(None);
        let out = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(input.is_some());
        assert_eq!(out.status.code(), Some(125), "no env, no run");
        let plain = Cmd::new("ls").public_env("A", "1");
        assert_eq!(plain.to_remote(None), (plain.to_shell(), None));
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
