//! Keeping secrets out of output: a wrapper that cannot be printed, and a redactor
//! for text that may contain credentials (URLs, `KEY=value` lines).

use std::fmt;

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

/// Removes credentials from free text before it reaches a log, event or error:
/// the password of `scheme://user:password@host` URLs and every known secret value.
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = redact_url_passwords(text);
    for s in secrets {
        if s.0.len() >= 4 {
            out = out.replace(&s.0, REDACTED);
        }
    }
    out
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
}
