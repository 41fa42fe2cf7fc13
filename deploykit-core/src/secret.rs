//! Keeping secrets out of output: a wrapper that cannot be printed, a redactor for
//! text that may contain credentials (URLs, `KEY=value` lines), and the process's
//! list of masked values.
//!
//! Why a process-wide list: a secret value reaches places that never see its
//! [`Secret`] — a command migration's argv (`--database-url ${DATABASE_URL}`), a
//! tool's stderr, an error built three layers down. Like GitHub Actions'
//! `add-mask`, whoever loads the secrets [`mask`]s them once, and every place that
//! renders a command, an error, an event or a journal line for people runs
//! [`redact`], which hides every masked value.

use std::fmt;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// What is printed instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// A secret value (password, token, URL with credentials). `Debug` and `Display`
/// print `[redacted]`; only [`Secret::expose`] gives the value, to the code that
/// must pass it on.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself; never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    /// Serialises as `[redacted]`: configs and journals written to disk never hold it.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Shorter values are not masked: they would blank out ordinary words.
const MIN_MASKED_LEN: usize = 4;

static MASKED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Masks `secret` for the rest of the process: [`redact`] hides it wherever it
/// appears. A URL's password (as written and percent-decoded) is masked too, and
/// so is its user when it has no password (`https://TOKEN@host/…`).
pub fn mask(secret: &Secret) {
    let value = secret.expose();
    let mut values = vec![value.to_string()];
    if let Some((user, password)) = url_userinfo(value) {
        match password {
            Some(p) => {
                values.push(percent_decode(p));
                values.push(p.to_string());
            }
            None => {
                values.push(percent_decode(user));
                values.push(user.to_string());
            }
        }
    }
    let mut masked = MASKED.write().unwrap_or_else(|e| e.into_inner());
    for v in values {
        if v.len() >= MIN_MASKED_LEN && !masked.contains(&v) {
            masked.push(v);
        }
    }
    // Longest first, so a URL is replaced whole before its password alone.
    masked.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// An `http(s)` URL's credentials taken out: the URL without them, and the user
/// and password (percent-decoded; the password empty when the URL has only a user,
/// as in `https://TOKEN@host/…`). `None` when it carries none, or is not http(s).
///
/// For handing credentials to a tool some other way than on its command line,
/// where every user of the host can read them.
pub fn split_url_credentials(url: &str) -> Option<(String, String, Secret)> {
    let scheme_end = url.find("://")? + 3;
    if !matches!(&url[..scheme_end], "https://" | "http://") {
        return None;
    }
    let (user, password) = url_userinfo(url)?;
    let rest = &url[scheme_end..];
    let at = rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())].rfind('@')?;
    let bare = format!("{}{}", &url[..scheme_end], &rest[at + 1..]);
    Some((
        bare,
        percent_decode(user),
        Secret::new(password.map(percent_decode).unwrap_or_default()),
    ))
}

/// The `user` and `password` of `scheme://user[:password]@host…`, if it has them.
fn url_userinfo(url: &str) -> Option<(&str, Option<&str>)> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    match userinfo.split_once(':') {
        Some((user, password)) => Some((user, Some(password))),
        None => Some((userinfo, None)),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes credentials from free text before it reaches a log, event or error:
/// the password of `scheme://user:password@host` URLs, every [`mask`]ed value and
/// every value in `secrets`.
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.0.len() >= MIN_MASKED_LEN {
            out = out.replace(&s.0, REDACTED);
        }
    }
    for v in MASKED.read().unwrap_or_else(|e| e.into_inner()).iter() {
        out = out.replace(v.as_str(), REDACTED);
    }
    redact_url_passwords(&out)
}

/// [`redact`] applied to every string in a JSON value: for output built from
/// serialised data (events, reports), whatever fields they grow.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            let r = redact(s, &[]);
            if r != *s {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_json),
        _ => {}
    }
}

fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn url_passwords_and_known_values_are_redacted() {
        let token = Secret::new("tok_abcdef");
        let text =
            "connect postgres://app:p%40ss@db:5432/app failed; header tok_abcdef; http://host/x";
        let out = redact(text, &[&token]);
        assert_eq!(out, "connect postgres://app:[redacted]@db:5432/app failed; header [redacted]; http://host/x");
    }

    #[test]
    fn credentials_come_out_of_http_urls_only() {
        let (bare, user, pw) =
            split_url_credentials("https://x-access-token:t%40k@git.example/a.git").unwrap();
        assert_eq!(
            (bare.as_str(), user.as_str(), pw.expose()),
            ("https://git.example/a.git", "x-access-token", "t@k")
        );
        let (bare, user, pw) = split_url_credentials("http://TOKEN@127.0.0.1:9/r.git").unwrap();
        assert_eq!(
            (bare.as_str(), user.as_str(), pw.expose()),
            ("http://127.0.0.1:9/r.git", "TOKEN", "")
        );
        assert!(split_url_credentials("https://git.example/a.git").is_none());
        assert!(split_url_credentials("ssh://git@git.example/a.git").is_none());
        assert!(split_url_credentials("git@git.example:a.git").is_none());
    }

    #[test]
    fn masked_values_are_hidden_everywhere_with_their_url_credentials() {
        mask(&Secret::new("postgres://app:Zq%2Fmask-pw-1@db/app"));
        mask(&Secret::new("https://mask-token-2@git.example/app.git"));
        mask(&Secret::new("abc"));
        let out = redact(
            "url postgres://app:Zq%2Fmask-pw-1@db/app, decoded Zq/mask-pw-1, \
             raw Zq%2Fmask-pw-1, token mask-token-2, short abc",
            &[],
        );
        assert!(!out.contains("mask-pw-1"), "{out}");
        assert!(!out.contains("mask-token-2"), "{out}");
        assert!(out.contains("short abc"), "short values stay: {out}");
        let mut v = serde_json::json!({"a": ["x mask-token-2"], "b": {"c": "Zq/mask-pw-1"}});
        redact_json(&mut v);
        assert!(!v.to_string().contains("mask-"), "{v}");
    }
}
