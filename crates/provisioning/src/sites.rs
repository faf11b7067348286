//! What a generation is rendered from besides the phones: the active site of each route,
//! and the settings that every file carries.

use std::time::Duration;

use serde::Serialize;
use switchback_core::config::Transport;
use switchback_core::{Config, Role, Route};

/// Where phones register: the softswitch of the `sip` route's active site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SipSite {
    pub site: String,
    pub role: Role,
    pub host: String,
    pub port: u16,
    #[serde(serialize_with = "transport_name")]
    pub transport: Transport,
}

/// Which STUN server phones use: the one of the `stun` route's active site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StunSite {
    pub site: String,
    pub role: Role,
    pub host: String,
    pub port: u16,
}

/// The active site of each route, reduced to what the phone files say. Two generations
/// with equal `ActiveSites` (and the same phones) have byte-identical files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveSites {
    pub sip: SipSite,
    pub stun: StunSite,
}

impl ActiveSites {
    /// The sites that `active` names for each route, looked up in a validated config.
    pub fn from_config(config: &Config, active: impl Fn(Route) -> Role) -> Self {
        let sip = config.site(active(Route::Sip));
        let stun = config.site(active(Route::Stun));
        Self {
            sip: SipSite {
                site: sip.name.clone(),
                role: sip.role,
                host: sip.softswitch.host.clone(),
                port: sip.softswitch.port(),
                transport: sip.softswitch.transport,
            },
            stun: StunSite {
                site: stun.name.clone(),
                role: stun.role,
                host: stun.stun.host.clone(),
                port: stun.stun.port,
            },
        }
    }

    /// Both routes on their primary site: the state before any failover.
    pub fn primary(config: &Config) -> Self {
        Self::from_config(config, |_| Role::Primary)
    }
}

fn transport_name<S: serde::Serializer>(transport: &Transport, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(transport.as_str())
}

/// Settings from the config that every phone file carries. They do not change while
/// switchback runs, so they are not part of what distinguishes one generation from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSettings {
    /// The base URL phones poll (`server.public_url`); a trailing `/` is ignored.
    pub public_url: String,
    /// How often phones re-check their file (`phones.poll_interval`).
    pub poll_interval: Duration,
}

impl RenderSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            public_url: config.server.public_url.as_str().to_owned(),
            poll_interval: config.phones.poll_interval,
        }
    }

    /// `{public_url}/prov/{vendor}/` with exactly one `/` between the parts.
    pub(crate) fn vendor_url(&self, vendor: &str) -> String {
        format!("{}/prov/{vendor}/", self.public_url.trim_end_matches('/'))
    }

    /// Yealink counts in whole minutes; never 0, which would mean "never".
    pub(crate) fn poll_minutes(&self) -> u64 {
        (self.poll_interval.as_secs() / 60).max(1)
    }

    /// SPA phones count in seconds; never 0, which would mean "never".
    pub(crate) fn poll_seconds(&self) -> u64 {
        self.poll_interval.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, secs: u64) -> RenderSettings {
        RenderSettings { public_url: url.to_owned(), poll_interval: Duration::from_secs(secs) }
    }

    #[test]
    fn vendor_url_has_one_slash_whatever_the_public_url_ends_with() {
        assert_eq!(
            settings("http://p.example:8080", 60).vendor_url("yealink"),
            "http://p.example:8080/prov/yealink/"
        );
        assert_eq!(
            settings("http://p.example:8080/", 60).vendor_url("yealink"),
            "http://p.example:8080/prov/yealink/"
        );
        assert_eq!(
            settings("https://p.example/sb/", 60).vendor_url("linksys"),
            "https://p.example/sb/prov/linksys/"
        );
    }

    #[test]
    fn poll_interval_in_whole_minutes_and_seconds() {
        assert_eq!(settings("http://p", 60).poll_minutes(), 1);
        assert_eq!(settings("http://p", 150).poll_minutes(), 2);
        assert_eq!(settings("http://p", 30).poll_minutes(), 1);
        assert_eq!(settings("http://p", 150).poll_seconds(), 150);
    }
}
