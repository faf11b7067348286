//! What `/api/status`, its stream and the dashboard show: routes, services with their
//! recent checks, convergence, store health and alert counts. Built from memory only
//! (the engine state, the served generation, the fetch log's counts, the recent checks):
//! the one read from the store, the alert counts, is passed in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use switchback_core::{EngineState, Route, ServiceId};
use switchback_provisioning::{Generation, Vendor};
use switchback_store::AlertCounts;

use crate::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    pub generation: u64,
    /// Whether the store takes writes: while it does not, nothing is decided.
    pub store: StoreView,
    pub routes: Routes,
    pub services: Vec<ServiceStatus>,
    pub phones: Phones,
    /// Every probe of both sites failed in the latest round.
    pub monitor_blind: bool,
    /// `switchback demo` is running: the dashboard offers break and mend buttons.
    pub demo: bool,
    /// Webhook deliveries by status.
    #[schema(value_type = crate::openapi::AlertCountsDoc)]
    pub alerts: AlertCounts,
    /// The group of instances (`[cluster]`); absent for a single instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::group::ClusterStatus>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Routes {
    pub sip: RouteStatus,
    pub stun: RouteStatus,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RouteStatus {
    pub state: &'static str,
    pub active_site: String,
    pub active_role: &'static str,
    pub since: DateTime<Utc>,
    pub reason: String,
    pub mode: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceStatus {
    pub site: String,
    pub role: &'static str,
    pub kind: &'static str,
    pub healthy: Option<bool>,
    pub checked_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<u64>,
    pub reason: Option<String>,
    /// The latest checks, newest first.
    pub recent: Vec<RecentCheck>,
    /// In a group: each vantage's latest fresh check, which the leader counts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vantages: Vec<crate::group::VantageSeen>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecentCheck {
    pub healthy: bool,
    pub checked_at: DateTime<Utc>,
    pub latency_ms: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Phones {
    pub total: usize,
    pub on_current_generation: usize,
    /// In a fixed order, so that the same counts always read the same.
    #[schema(value_type = BTreeMap<String, VendorCount>)]
    pub by_vendor: BTreeMap<Vendor, VendorCount>,
    /// Phones not seen for more than three poll intervals (or never).
    pub stale: usize,
    pub stale_after_seconds: u64,
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct VendorCount {
    pub total: usize,
    pub on_current_generation: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoreView {
    pub up: bool,
    /// The database's own message for the latest refused write.
    pub error: Option<String>,
}

impl Status {
    /// The status of `engine` and `generation` as of now. Costs no store query and no
    /// walk over the phones.
    pub fn build(
        state: &AppState,
        engine: &EngineState,
        generation: &Generation,
        store_fault: Option<String>,
        alerts: AlertCounts,
    ) -> Self {
        let route = |route: Route| {
            let r = engine.route(route);
            RouteStatus {
                state: r.state.as_str(),
                active_site: state.site_name(r.active).to_owned(),
                active_role: r.active.as_str(),
                since: r.since,
                reason: r.reason.clone(),
                mode: r.mode.as_str(),
            }
        };
        let group = state.group.as_ref().map(|g| g.borrow().clone());
        let services = ServiceId::all()
            .map(|service| {
                let track = engine.service(service);
                ServiceStatus {
                    site: state.site_name(service.role).to_owned(),
                    role: service.role.as_str(),
                    kind: service.kind.as_str(),
                    healthy: track.healthy,
                    checked_at: track.checked_at,
                    latency_ms: track.latency_ms,
                    reason: track.reason.clone(),
                    recent: state
                        .recent_checks
                        .newest_first(service)
                        .into_iter()
                        .map(|c| RecentCheck {
                            healthy: c.healthy,
                            checked_at: c.checked_at,
                            latency_ms: c.latency.map(switchback_core::model::latency_ms),
                            reason: c.reason,
                        })
                        .collect(),
                    vantages: group.as_ref().map(|g| g.seen(service)).unwrap_or_default(),
                }
            })
            .collect();
        Status {
            generation: generation.number(),
            store: StoreView { up: store_fault.is_none(), error: store_fault },
            routes: Routes { sip: route(Route::Sip), stun: route(Route::Stun) },
            services,
            phones: convergence(state, generation),
            monitor_blind: engine.blind,
            demo: state.demo,
            alerts,
            cluster: group.as_ref().map(crate::group::GroupView::status),
        }
    }
}

/// Phones last seen before this are stale.
/// In whole seconds, as the fetch log counts, so that the stored list and the counts
/// in memory draw the line at the same instant.
pub(crate) fn stale_before(state: &AppState) -> DateTime<Utc> {
    stale_before_at(state.clock.now(), state.poll_interval)
}

/// [`stale_before`] as of `now`: three poll intervals before it, in whole seconds. Also
/// what `switchback phones list --stale` draws the line with.
pub fn stale_before_at(now: DateTime<Utc>, poll_interval: std::time::Duration) -> DateTime<Utc> {
    let at = now - chrono::Duration::from_std(poll_interval * 3).unwrap_or(chrono::TimeDelta::MAX);
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// From the fetch log's running counts. A phone that fetched the current number and was
/// then dropped from the inventory (a new inventory keeps the number) may still be
/// counted, hence the bounds: never more phones on the generation, or seen, than it has.
fn convergence(state: &AppState, generation: &Generation) -> Phones {
    let current = generation.number();
    let by_vendor: BTreeMap<Vendor, VendorCount> = Vendor::ALL
        .into_iter()
        .map(|vendor| {
            let total = generation.phone_count_of(vendor);
            let on_current_generation = state.fetches.on_generation_of(current, vendor).min(total);
            (vendor, VendorCount { total, on_current_generation })
        })
        .collect();
    let total = generation.phone_count();
    let seen = state.fetches.seen_since(stale_before(state)).min(total);
    Phones {
        total,
        on_current_generation: by_vendor.values().map(|c| c.on_current_generation).sum(),
        by_vendor,
        stale: total - seen,
        stale_after_seconds: (state.poll_interval * 3).as_secs(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::time::Duration;

    use switchback_provisioning::fetch::PhoneFetch;

    use super::*;
    use crate::testing::{phone, TestApp};

    fn fetched(app: &TestApp, n: u64) {
        let phone = phone(n);
        app.state.fetches.record(PhoneFetch {
            mac: phone.mac,
            vendor: phone.vendor,
            at: app.state.clock.now(),
            generation: app.state.generations.current().number(),
            source: std::net::IpAddr::from([127, 0, 0, 1]),
            user_agent: "Cisco/SPA504G-7.6.2".to_owned(),
            count: 1,
        });
    }

    fn phones(app: &TestApp) -> Phones {
        let engine = app.state.engine.borrow().clone();
        Status::build(&app.state, &engine, &app.state.generations.current(), None, AlertCounts::default())
            .phones
    }

    fn counts(phones: &Phones, vendor: Vendor) -> (usize, usize) {
        let count = &phones.by_vendor[&vendor];
        (count.on_current_generation, count.total)
    }

    #[tokio::test]
    async fn convergence_counts_phones_on_the_generation_and_those_not_seen_lately() {
        // Phones 0, 2, 4 are Yealink; 1 and 3 Linksys.
        let app = TestApp::start(5).await;
        let before = phones(&app);
        assert_eq!((before.on_current_generation, before.total, before.stale), (0, 5, 5));
        fetched(&app, 0);
        fetched(&app, 1);
        let now = phones(&app);
        assert_eq!((now.on_current_generation, now.stale), (2, 3));
        assert_eq!((counts(&now, Vendor::Yealink), counts(&now, Vendor::Linksys)), ((1, 3), (1, 2)));

        // Stale after three poll intervals without a fetch.
        let stale_after = app.state.poll_interval * 3;
        assert_eq!(phones(&app).stale_after_seconds, stale_after.as_secs());
        app.clock.advance(stale_after);
        assert_eq!(phones(&app).stale, 3);
        app.clock.advance(Duration::from_secs(1));
        assert_eq!(phones(&app).stale, 5);
        fetched(&app, 0);
        assert_eq!(phones(&app).stale, 4);

        // A new generation: nobody is on it yet.
        assert_eq!(app.act("sip", "failover").await, 200);
        app.follow_generation(5);
        assert_eq!(phones(&app).on_current_generation, 0);
        fetched(&app, 3);
        assert_eq!(counts(&phones(&app), Vendor::Linksys), (1, 2));

        // A new inventory under the same number, without phone 3: never more phones
        // counted on the generation than it has.
        app.follow_generation(3);
        let fewer = phones(&app);
        assert_eq!(counts(&fewer, Vendor::Linksys), (1, 1));
        assert_eq!((fewer.total, fewer.on_current_generation), (3, 1));
    }
}
