//! [`DumpCompression`]: how hard a database dump is compressed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The zlib level (0–9) a dump is written with.
///
/// The pre-deploy backup sits on a deploy's critical path: migrations wait for it.
/// Level 1 took 30–60 % of the time of `pg_dump`'s default level for an artifact
/// 3–10 % larger (a 1.1 GB and a 43 MB database; docs/BENCHMARKS.md), so it is the
/// default here; 0 turns compression off, 9 trades time for the smallest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct DumpCompression(u8);

impl DumpCompression {
    /// Level 1: fast, still several times smaller than the data.
    pub const FAST: DumpCompression = DumpCompression(1);

    /// A level from 0 (none) to 9 (smallest); anything else is refused.
    pub fn new(level: u8) -> Result<Self> {
        if level <= 9 {
            Ok(Self(level))
        } else {
            Err(Error::Refused {
                reason: format!("dump compression level {level} is out of range"),
                next: "use a level from 0 (none) to 9 (smallest, slowest); 1 is the default".into(),
            })
        }
    }

    /// The level as a number.
    pub fn level(self) -> u8 {
        self.0
    }

    /// `pg_dump`'s option for this level.
    pub fn pg_dump_arg(self) -> String {
        format!("--compress={}", self.0)
    }
}

impl Default for DumpCompression {
    fn default() -> Self {
        Self::FAST
    }
}

impl TryFrom<u8> for DumpCompression {
    type Error = String;

    fn try_from(level: u8) -> std::result::Result<Self, String> {
        Self::new(level).map_err(|e| e.to_string())
    }
}

impl From<DumpCompression> for u8 {
    fn from(c: DumpCompression) -> u8 {
        c.0
    }
}

impl fmt::Display for DumpCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_zero_to_nine_are_pg_dump_arguments_and_ten_is_refused() {
        assert_eq!(DumpCompression::default().pg_dump_arg(), "--compress=1");
        assert_eq!(
            DumpCompression::new(0).unwrap().pg_dump_arg(),
            "--compress=0"
        );
        assert_eq!(DumpCompression::new(9).unwrap().level(), 9);
        let err = DumpCompression::new(10).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
        assert!(serde_json::from_str::<DumpCompression>("12").is_err());
        assert_eq!(
            serde_json::from_str::<DumpCompression>("3")
                .unwrap()
                .level(),
            3
        );
    }
}
