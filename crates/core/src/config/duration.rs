//! Durations in the config: a quoted number and unit (`"30s"`, `"5m"`, `"1h30m"`), read
//! with humantime. A value that is not one says what one looks like.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// What a duration looks like, said after every refused one.
pub(super) const HINT: &str = "use a number and a unit, such as \"30s\", \"5m\" or \"1h30m\"";

/// For `#[serde(deserialize_with = "duration::deserialize")]`.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration: {HINT}")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        humantime::parse_duration(text).map_err(|_| E::custom(format!("invalid duration {text:?}: {HINT}")))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "invalid duration {number}: a quoted number with a unit, such as \"{number}s\""
        )))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "invalid duration {number}: a quoted number with a unit, such as \"{number}s\""
        )))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Duration, E> {
        Err(E::custom(format!("invalid duration {number}: {HINT}")))
    }
}
