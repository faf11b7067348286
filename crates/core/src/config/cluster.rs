//! `[cluster]`: several instances over one PostgreSQL store, one of them the leader.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `cluster.lease` when not set.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// `cluster.quorum` when not set: two vantage points must agree, so that one cut
/// network path never moves phones.
pub const DEFAULT_QUORUM: u32 = 2;
/// The longest node or vantage name: it is shown on the dashboard and stored per check.
pub const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This instance's unique name in the group.
    pub node: String,
    /// Where this instance probes from; instances at one place share it.
    pub vantage: String,
    /// How long a leader leads without renewing: a dead leader is replaced within it.
    #[serde(deserialize_with = "super::duration::deserialize")]
    pub lease: Duration,
    /// Vantages that must see a service down before it counts as down.
    pub quorum: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { node: String::new(), vantage: String::new(), lease: DEFAULT_LEASE, quorum: DEFAULT_QUORUM }
    }
}

impl ClusterConfig {
    /// Fills the names left out (node: the host name; vantage: the node) and checks
    /// every key, and that the store is one the instances can share.
    pub(super) fn complete(&mut self, store_url: &str) -> Result<(), ConfigError> {
        if !(store_url.starts_with("postgres://") || store_url.starts_with("postgresql://")) {
            return Err(ConfigError::invalid(
                "cluster",
                "needs a postgres:// store (store.url): the instances of a group share their \
                 state, lease and checks through one PostgreSQL database; a SQLite file \
                 belongs to one machine",
            ));
        }
        if self.node.is_empty() {
            self.node = host_name();
        }
        if self.vantage.is_empty() {
            self.vantage = self.node.clone();
        }
        validate_name("cluster.node", &self.node)?;
        validate_name("cluster.vantage", &self.vantage)?;
        if self.lease < Duration::from_secs(2) || self.lease > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "cluster.lease",
                "must be between 2s and 5m (a duration such as \"10s\")",
            ));
        }
        if self.quorum == 0 || self.quorum > 16 {
            return Err(ConfigError::invalid("cluster.quorum", "must be between 1 and 16 vantage points"));
        }
        Ok(())
    }
}

/// Letters, digits, `.`, `_` and `-`: names go into logs, metrics and the dashboard.
fn validate_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("`{}`: use 1 to {MAX_NAME_LEN} letters, digits, `.`, `_` or `-`", name.escape_debug()),
        ))
    }
}

/// The machine's host name, the default node name.
fn host_name() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}
