//! Release identity: the one name every part uses for "this version of the app".

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;

/// The name of one release, e.g. `20261126T100000Z-abc1234`.
///
/// Release ids end up in directory names, image tags and remote command lines, so
/// they are validated once here: ASCII letters, digits, `.`, `_` and `-`, 1 to 64
/// characters, not starting with `.` or `-`. Nothing else can be constructed, which
/// is what lets adapters put them into paths and argv without further checks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseId(String);

impl ReleaseId {
    /// Validates `value` as a release id.
    pub fn parse(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        validate_name("release id", &value, 64)?;
        Ok(Self(value))
    }

    /// The conventional id for a commit deployed at `at`: UTC time first so ids sort
    /// by age, then the short commit so a human can tell releases apart.
    pub fn for_commit(at: OffsetDateTime, commit: &Commit) -> Self {
        Self(format!("{}-{}", utc_stamp(at), commit.short()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ReleaseId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(value)
    }
}

impl From<ReleaseId> for String {
    fn from(id: ReleaseId) -> String {
        id.0
    }
}

impl std::str::FromStr for ReleaseId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// A source-control revision (a git commit hash or a symbolic tag).
///
/// Validated like [`ReleaseId`] because it travels into the same command lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Commit(String);

impl Commit {
    /// Validates `value` as a commit reference.
    pub fn parse(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        validate_name("commit", &value, 128)?;
        Ok(Self(value))
    }

    /// The first seven characters, as git shows them.
    pub fn short(&self) -> &str {
        let end = self.0.len().min(7);
        &self.0[..end]
    }

    /// The full reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Commit {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(value)
    }
}

impl From<Commit> for String {
    fn from(c: Commit) -> String {
        c.0
    }
}

/// Everything a target needs to stage one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSpec {
    /// The id the release will be known by.
    pub id: ReleaseId,
    /// The exact commit to ship; never "whatever the branch points at now".
    pub commit: Commit,
    /// The branch it came from, for the record only.
    pub branch: Option<String>,
}

/// `at` as `YYYYMMDDTHHMMSSZ`: sorts like time, and is safe in names and paths.
pub(crate) fn utc_stamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Checks the shared charset of names that end up in paths and command lines:
/// one path segment, never `.`/`..`, never an option. Public so a config loader
/// can refuse such a name before anything runs.
pub fn validate_name(what: &'static str, value: &str, max: usize) -> Result<(), Error> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > max {
        Some("it is too long")
    } else if value.starts_with('.') || value.starts_with('-') {
        Some("it starts with '.' or '-'")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::Invalid {
            what,
            value: value.chars().take(80).collect(),
            reason: format!("{reason} (at most {max} characters)"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ids_reject_shell_metacharacters_and_paths() {
        for bad in [
            "",
            "a b",
            "a;rm -rf /",
            "../x",
            "-rf",
            ".hidden",
            "a/b",
            "$(id)",
            "a`b`",
        ] {
            assert!(ReleaseId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(ReleaseId::parse("x".repeat(65)).is_err());
        assert!(ReleaseId::parse("20261126T100000Z-abc1234").is_ok());
    }

    #[test]
    fn release_id_for_commit_sorts_by_time() {
        let c = Commit::parse("abcdef0123456789").unwrap();
        let a = ReleaseId::for_commit(time::macros::datetime!(2026-01-02 03:04:05 UTC), &c);
        let b = ReleaseId::for_commit(time::macros::datetime!(2026-11-02 03:04:05 UTC), &c);
        assert_eq!(a.as_str(), "20260102T030405Z-abcdef0");
        assert!(a < b);
    }

    #[test]
    fn release_id_deserialisation_validates() {
        let err = serde_json::from_str::<ReleaseId>("\"a;b\"").unwrap_err();
        assert!(err.to_string().contains("release id"), "{err}");
    }
}
