//! What an instance of a group (`[cluster]`) knows of the group: who leads, in which
//! term, which instances are alive, and what each vantage sees. Refreshed by the
//! orchestrator from the store; shown by `/api/status` and the dashboard.

use chrono::{DateTime, Utc};
use serde::Serialize;
use switchback_core::ServiceId;
use switchback_store::{NodeSeen, VantageCheck};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    pub node: String,
    pub vantage: String,
    pub quorum: u32,
    /// Whether this instance leads, by its own lease (not the store's row).
    pub leads: bool,
    /// The lease's holder, while its lease runs.
    pub leader: Option<String>,
    pub term: i64,
    pub nodes: Vec<NodeSeen>,
    /// Every vantage's latest fresh check of each service.
    pub vantages: Vec<VantageCheck>,
}

/// `/api/status` → `cluster`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    /// This instance.
    pub node: String,
    pub vantage: String,
    /// The instance that decides and alerts; `null` while none holds the lease.
    pub leader: Option<String>,
    /// Grows with every new leadership.
    pub term: i64,
    /// Vantage points that must see a service down before it counts as down.
    pub quorum: u32,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeStatus {
    pub node: String,
    pub vantage: String,
    pub leader: bool,
    pub started_at: DateTime<Utc>,
    /// When it last said it was alive (every third of the lease).
    pub last_seen: DateTime<Utc>,
}

/// One vantage's latest check of a service (`/api/status` → `services[].vantages`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VantageSeen {
    pub vantage: String,
    pub node: String,
    pub healthy: bool,
    pub checked_at: DateTime<Utc>,
    pub latency_ms: Option<u64>,
    pub reason: Option<String>,
}

impl GroupView {
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            node: self.node.clone(),
            vantage: self.vantage.clone(),
            leader: self.leader.clone(),
            term: self.term,
            quorum: self.quorum,
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeStatus {
                    node: n.node.clone(),
                    vantage: n.vantage.clone(),
                    leader: self.leader.as_deref() == Some(n.node.as_str()),
                    started_at: n.started_at,
                    last_seen: n.last_seen,
                })
                .collect(),
        }
    }

    /// What each vantage sees of `service`, by vantage name.
    pub fn seen(&self, service: ServiceId) -> Vec<VantageSeen> {
        self.vantages
            .iter()
            .filter(|v| v.check.service == service)
            .map(|v| VantageSeen {
                vantage: v.vantage.clone(),
                node: v.node.clone(),
                healthy: v.check.healthy,
                checked_at: v.check.checked_at,
                latency_ms: v.check.latency.map(switchback_core::model::latency_ms),
                reason: v.check.reason.clone(),
            })
            .collect()
    }
}
