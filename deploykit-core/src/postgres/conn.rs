//! Connecting to PostgreSQL with errors that say what went wrong and never show
//! the password, and the connection URL split into libpq environment variables
//! so external tools (`pg_dump`, `pg_restore`, `psql`) never get it on argv.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::ConnectOptions;

use crate::error::{Error, Result};
use crate::secret::{redact, Secret};
use crate::shell::Cmd;

/// A PostgreSQL connection URL, parsed once, kept secret.
#[derive(Clone)]
pub struct PgTarget {
    url: Secret,
    options: PgConnectOptions,
    location: String,
    env: Vec<(String, String)>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({})", self.location)
    }
}

impl PgTarget {
    /// Parses `postgres://user:password@host:port/db?sslmode=…`.
    pub fn parse(url: &Secret) -> Result<Self> {
        let options = PgConnectOptions::from_str(url.expose()).map_err(|e| Error::Invalid {
            what: "database url",
            value: redact(url.expose(), &[url]),
            reason: redact(&e.to_string(), &[url]),
        })?;
        let location = format!(
            "postgres {}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres")
        );
        let env = libpq_env(url.expose());
        Ok(Self {
            url: url.clone(),
            options,
            location,
            env,
        })
    }

    /// `postgres user@host:port/db`, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// `postgres://host:port/db`: which database this is, without the user or
    /// password, recorded in backups so environments sharing a store tell theirs
    /// apart.
    pub fn identity(&self) -> String {
        format!(
            "postgres://{}:{}/{}",
            self.options.get_host(),
            self.options.get_port(),
            self.database()
        )
    }

    /// The database name.
    pub fn database(&self) -> &str {
        self.options.get_database().unwrap_or("postgres")
    }

    /// The same server with another database (e.g. a scratch one for deep verify).
    pub fn with_database(&self, db: &str) -> Self {
        let mut t = self.clone();
        t.options = t.options.clone().database(db);
        t.location = format!(
            "postgres {}@{}:{}/{db}",
            t.options.get_username(),
            t.options.get_host(),
            t.options.get_port()
        );
        for (k, v) in &mut t.env {
            if k == "PGDATABASE" {
                *v = db.to_string();
            }
        }
        if !t.env.iter().any(|(k, _)| k == "PGDATABASE") {
            t.env.push(("PGDATABASE".into(), db.into()));
        }
        t
    }

    /// Adds the libpq environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
    /// `PGDATABASE`, `PGSSLMODE`…) to `cmd`: the password travels in the child's
    /// environment, never in its argv where `ps` would show it.
    pub fn libpq(&self, mut cmd: Cmd) -> Cmd {
        for (k, v) in &self.env {
            // Where to connect is shown in messages; anything else stays secret.
            const SHOWN: [&str; 5] = ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE"];
            cmd = if SHOWN.contains(&k.as_str()) {
                cmd.public_env(k.clone(), v.clone())
            } else {
                cmd.env(k.clone(), v.clone())
            };
        }
        cmd
    }

    /// Removes the URL and password from `text`.
    pub fn redact(&self, text: &str) -> String {
        let password = self
            .env
            .iter()
            .find(|(k, _)| k == "PGPASSWORD")
            .map(|(_, v)| Secret::new(v.clone()));
        let mut secrets = vec![&self.url];
        if let Some(p) = &password {
            secrets.push(p);
        }
        redact(text, &secrets)
    }

    /// Connects, turning the common failures into errors that say what next.
    pub async fn connect(&self, step: &str) -> Result<PgConnection> {
        self.options
            .clone()
            .application_name("deploykit")
            .connect()
            .await
            .map_err(|e| self.connect_error(step, &e))
    }

    /// Classifies a connection failure (refused, auth, missing database).
    pub fn connect_error(&self, step: &str, e: &sqlx::Error) -> Error {
        let code = e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        let (message, hint) = match (e, code.as_deref()) {
            (sqlx::Error::Io(io), _) if io.kind() == std::io::ErrorKind::ConnectionRefused => (
                format!(
                    "connection refused by {}:{}",
                    self.options.get_host(),
                    self.options.get_port()
                ),
                "is PostgreSQL running and listening on that host and port?".to_string(),
            ),
            (_, Some("28P01")) | (_, Some("28000")) => (
                format!(
                    "authentication failed for user {:?}",
                    self.options.get_username()
                ),
                "check the user and password in the database URL (the password is not shown)"
                    .to_string(),
            ),
            (_, Some("3D000")) => (
                format!("database {:?} does not exist", self.database()),
                "create it, or fix the database name in the URL".to_string(),
            ),
            _ => (
                format!("cannot connect: {}", self.redact(&e.to_string())),
                "check the database URL and that the server is reachable".to_string(),
            ),
        };
        Error::part(step, &self.location, message).with_hint(hint)
    }
}

/// Splits a `postgres://` URL into libpq environment variables.
fn libpq_env(url: &str) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        let (user, pass) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u, None),
        };
        if !user.is_empty() {
            env.push(("PGUSER".into(), percent_decode(user)));
        }
        if let Some(p) = pass {
            env.push(("PGPASSWORD".into(), percent_decode(p)));
        }
    }
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        match h.split_once(']') {
            Some((h, p)) => (h.to_string(), p.strip_prefix(':').map(String::from)),
            None => (h.to_string(), None),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (hostport.to_string(), None),
        }
    };
    if !host.is_empty() {
        env.push(("PGHOST".into(), percent_decode(&host)));
    }
    if let Some(p) = port.filter(|p| !p.is_empty()) {
        env.push(("PGPORT".into(), p));
    }
    if !path.is_empty() {
        env.push(("PGDATABASE".into(), percent_decode(path)));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let var = match k {
            "sslmode" => "PGSSLMODE",
            "sslrootcert" => "PGSSLROOTCERT",
            "sslcert" => "PGSSLCERT",
            "sslkey" => "PGSSLKEY",
            "application_name" => "PGAPPNAME",
            "options" => "PGOPTIONS",
            "connect_timeout" => "PGCONNECT_TIMEOUT",
            _ => continue,
        };
        env.push((var.into(), percent_decode(v)));
    }
    env
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_becomes_libpq_env_and_the_password_never_reaches_argv() {
        let url = Secret::new("postgres://app:p%40ss%3Aw@db.example:6543/shop?sslmode=require");
        let t = PgTarget::parse(&url).unwrap();
        assert_eq!(t.location(), "postgres app@db.example:6543/shop");
        let cmd = t.libpq(Cmd::new("pg_dump").arg("--format=custom"));
        let env: Vec<(String, String)> = cmd
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect();
        assert!(env.contains(&("PGPASSWORD".into(), "p@ss:w".into())));
        assert!(env.contains(&("PGHOST".into(), "db.example".into())));
        assert!(env.contains(&("PGPORT".into(), "6543".into())));
        assert!(env.contains(&("PGDATABASE".into(), "shop".into())));
        assert!(env.contains(&("PGSSLMODE".into(), "require".into())));
        assert!(!cmd
            .args
            .iter()
            .any(|a| a.contains("p@ss") || a.contains("p%40ss")));
        assert!(!cmd.to_string().contains("p@ss"));
        assert_eq!(t.with_database("scratch").database(), "scratch");
        let shown =
            t.redact("failed for postgres://app:p%40ss%3Aw@db.example:6543/shop and p@ss:w");
        assert!(
            !shown.contains("p%40ss") && !shown.contains("p@ss"),
            "{shown}"
        );
    }
}
