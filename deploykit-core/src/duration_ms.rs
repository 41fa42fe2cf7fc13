//! Serde for `Duration` as whole milliseconds, the unit people read in journals.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Serialises as milliseconds.
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Deserialises from milliseconds.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_millis(u64::deserialize(d)?))
}
