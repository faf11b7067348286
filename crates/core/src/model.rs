//! The nouns of switchback: sites, services, routes and check results.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which of the two data centers a site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Backup,
}

/// The three servers every call depends on, present at each site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Softswitch,
    Database,
    Stun,
}

/// One of the six probed services: a kind of server at one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceId {
    pub role: Role,
    pub kind: ServiceKind,
}

/// What can move to the backup on its own: where phones register, and their STUN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Sip,
    Stun,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Primary, Role::Backup];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
        }
    }

    pub fn other(self) -> Role {
        match self {
            Role::Primary => Role::Backup,
            Role::Backup => Role::Primary,
        }
    }
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 3] = [ServiceKind::Softswitch, ServiceKind::Database, ServiceKind::Stun];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Softswitch => "softswitch",
            ServiceKind::Database => "database",
            ServiceKind::Stun => "stun",
        }
    }
}

impl ServiceId {
    pub fn new(role: Role, kind: ServiceKind) -> Self {
        Self { role, kind }
    }

    /// All six services, primary first.
    pub fn all() -> impl Iterator<Item = ServiceId> {
        Role::ALL
            .into_iter()
            .flat_map(|role| ServiceKind::ALL.into_iter().map(move |kind| ServiceId { role, kind }))
    }
}

impl Route {
    pub const ALL: [Route; 2] = [Route::Sip, Route::Stun];

    pub fn as_str(self) -> &'static str {
        match self {
            Route::Sip => "sip",
            Route::Stun => "stun",
        }
    }

    /// The services whose health decides where this route points. The softswitch
    /// cannot authenticate or route calls without its database, so both drag `sip`.
    pub fn services(self) -> &'static [ServiceKind] {
        match self {
            Route::Sip => &[ServiceKind::Softswitch, ServiceKind::Database],
            Route::Stun => &[ServiceKind::Stun],
        }
    }

    /// The routes that depend on a kind of service.
    pub fn depending_on(kind: ServiceKind) -> impl Iterator<Item = Route> {
        Route::ALL.into_iter().filter(move |route| route.services().contains(&kind))
    }
}

/// `Display` and `FromStr` for an enum with an `as_str` spelling of each variant.
macro_rules! text_enum {
    ($ty:ident, $what:literal, [$($variant:ident),+]) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::model::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                [$($ty::$variant),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::model::UnknownName { what: $what, name: s.to_owned() })
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(Role, "role", [Primary, Backup]);
text_enum!(ServiceKind, "service", [Softswitch, Database, Stun]);
text_enum!(Route, "route", [Sip, Stun]);

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.kind)
    }
}

/// The display names of the two sites (`chicago`, `virginia`), by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteNames {
    primary: String,
    backup: String,
}

impl SiteNames {
    pub fn new(primary: impl Into<String>, backup: impl Into<String>) -> Self {
        Self { primary: primary.into(), backup: backup.into() }
    }

    pub fn get(&self, role: Role) -> &str {
        match role {
            Role::Primary => &self.primary,
            Role::Backup => &self.backup,
        }
    }
}

/// A name that is not one of an enum's spellings (`"sipp"` for a route, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

/// The outcome of one check of one service: all its attempts, retries included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub service: ServiceId,
    pub healthy: bool,
    /// Round-trip time of the attempt that answered; `None` when nothing answered.
    pub latency: Option<Duration>,
    /// Why the check failed (`timeout`, `refused`, `status 503`, …); `None` when healthy.
    pub reason: Option<String>,
    pub checked_at: DateTime<Utc>,
}

impl CheckResult {
    pub fn healthy(service: ServiceId, latency: Duration, checked_at: DateTime<Utc>) -> Self {
        Self { service, healthy: true, latency: Some(latency), reason: None, checked_at }
    }

    pub fn failed(service: ServiceId, reason: impl Into<String>, checked_at: DateTime<Utc>) -> Self {
        Self { service, healthy: false, latency: None, reason: Some(reason.into()), checked_at }
    }
}

/// A latency in whole milliseconds, rounded up: an answer that took 0.3 ms shows as 1 ms,
/// never as 0 ms, which would read as "not measured".
pub fn latency_ms(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_round_up_to_whole_milliseconds() {
        let ms = |micros| latency_ms(Duration::from_micros(micros));
        assert_eq!((ms(0), ms(1), ms(300), ms(1000), ms(1001), ms(41_999)), (0, 1, 1, 1, 2, 42));
    }
}
