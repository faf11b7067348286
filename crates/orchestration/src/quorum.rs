//! Counting vantage points: the leader turns every vantage's latest checks into one
//! check per service for the route engine, which then applies the failover rules as
//! for one monitor.
//!
//! - A vantage counts when its checks of all six services are fresh (recorded within the
//!   freshness window, on the store's clock); one with only some fresh is between two
//!   states (stopping, or blind and ageing out) and does not count.
//! - A vantage whose latest checks of all six services failed is blind (its own link
//!   is cut) and does not count.
//! - A service is down when at least `quorum` counted vantages see it down, and up
//!   when more than half of those that checked it see it up; otherwise it is left as
//!   it was.
//! - With fewer counted vantages than `quorum`, nothing is decided: the monitor is blind.

use std::collections::{BTreeMap, BTreeSet};

use switchback_core::{CheckResult, ServiceId};
use switchback_store::VantageCheck;

/// What the leader feeds to the route engine for one count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Count {
    /// One check per service that the vantages agree on.
    Checks(Vec<CheckResult>),
    /// Too few vantages can see: nothing moves.
    Blind(String),
}

/// Counts `checks`: each vantage's latest fresh check per service.
pub fn count(checks: &[VantageCheck], quorum: u32) -> Count {
    let mut by_vantage: BTreeMap<&str, Vec<&CheckResult>> = BTreeMap::new();
    for seen in checks {
        by_vantage.entry(seen.vantage.as_str()).or_default().push(&seen.check);
    }
    let partial = by_vantage.len();
    by_vantage.retain(|_, checks| ServiceId::all().all(|s| checks.iter().any(|c| c.service == s)));
    let partial = partial - by_vantage.len();
    let blind: BTreeSet<&str> = by_vantage
        .iter()
        .filter(|(_, checks)| ServiceId::all().all(|s| checks.iter().any(|c| c.service == s && !c.healthy)))
        .map(|(vantage, _)| *vantage)
        .collect();
    let counted = by_vantage.len() - blind.len();
    let quorum = usize::try_from(quorum).unwrap_or(usize::MAX);
    if counted < quorum {
        return Count::Blind(format!(
            "{counted} of the {quorum} vantage points a quorum needs can see ({} fresh, {} blind, {partial} part-fresh)",
            by_vantage.len(),
            blind.len()
        ));
    }
    let mut merged = Vec::new();
    for service in ServiceId::all() {
        let seen: Vec<(&str, &CheckResult)> = by_vantage
            .iter()
            .filter(|(vantage, _)| !blind.contains(*vantage))
            .filter_map(|(vantage, checks)| {
                checks.iter().find(|c| c.service == service).map(|c| (*vantage, *c))
            })
            .collect();
        let down: Vec<&(&str, &CheckResult)> = seen.iter().filter(|(_, c)| !c.healthy).collect();
        let up: Vec<&(&str, &CheckResult)> = seen.iter().filter(|(_, c)| c.healthy).collect();
        let latest = |of: &[&(&str, &CheckResult)]| of.iter().map(|(_, c)| c.checked_at).max();
        if down.len() >= quorum {
            let vantages: Vec<&str> = down.iter().map(|(v, _)| *v).collect();
            let reason = down[0].1.reason.clone().unwrap_or_else(|| "failed".to_owned());
            if let Some(at) = latest(&down) {
                merged.push(CheckResult::failed(
                    service,
                    format!("{reason} (from {})", vantages.join(", ")),
                    at,
                ));
            }
        } else if up.len() * 2 > seen.len() {
            let latency = up.iter().filter_map(|(_, c)| c.latency).min();
            if let (Some(at), Some(latency)) = (latest(&up), latency) {
                merged.push(CheckResult::healthy(service, latency, at));
            }
        }
    }
    Count::Checks(merged)
}

/// How long a vantage's check counts: two rounds and a slow probe, so a vantage
/// between two rounds still counts, and one that stopped soon does not.
pub fn freshness(monitor: &switchback_core::config::MonitorConfig) -> std::time::Duration {
    let probe = monitor.timeout.saturating_mul(monitor.retries.saturating_add(1));
    monitor.interval.saturating_mul(2).saturating_add(probe).saturating_add(std::time::Duration::from_secs(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, TimeZone, Utc};
    use switchback_core::{Role, ServiceKind};

    use super::*;

    const SIP: ServiceId = ServiceId { role: Role::Primary, kind: ServiceKind::Softswitch };

    fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + second, 0).unwrap()
    }

    /// A vantage's round at `second`: every service up but those in `down`.
    fn round(vantage: &str, second: i64, down: &[ServiceId]) -> Vec<VantageCheck> {
        ServiceId::all()
            .map(|service| VantageCheck {
                vantage: vantage.to_owned(),
                node: format!("{vantage}-1"),
                check: if down.contains(&service) {
                    CheckResult::failed(service, "timeout", at(second))
                } else {
                    CheckResult::healthy(service, Duration::from_millis(4), at(second))
                },
            })
            .collect()
    }

    fn all_down() -> Vec<ServiceId> {
        ServiceId::all().collect()
    }

    fn health(count: &Count, service: ServiceId) -> Option<bool> {
        match count {
            Count::Checks(checks) => checks.iter().find(|c| c.service == service).map(|c| c.healthy),
            Count::Blind(_) => panic!("blind: {count:?}"),
        }
    }

    #[test]
    fn one_vantage_that_sees_the_primary_down_moves_nothing() {
        let checks =
            [round("chicago", 10, &[SIP]), round("virginia", 10, &[]), round("witness", 9, &[])].concat();
        assert_eq!(health(&count(&checks, 2), SIP), Some(true));
    }

    #[test]
    fn two_of_three_vantages_make_a_service_down_timed_from_the_later() {
        let checks =
            [round("chicago", 10, &[SIP]), round("virginia", 12, &[SIP]), round("witness", 9, &[])].concat();
        let counted = count(&checks, 2);
        assert_eq!(health(&counted, SIP), Some(false));
        let Count::Checks(merged) = counted else { unreachable!() };
        let sip = merged.iter().find(|c| c.service == SIP).unwrap();
        assert_eq!(sip.checked_at, at(12));
        assert_eq!(sip.reason.as_deref(), Some("timeout (from chicago, virginia)"));
    }

    #[test]
    fn a_split_with_no_majority_leaves_the_service_as_it_was() {
        // Quorum 2 of 4: two see it down (down wins), but with quorum 3 neither side wins.
        let checks =
            [round("a", 10, &[SIP]), round("b", 10, &[SIP]), round("c", 10, &[]), round("d", 10, &[])]
                .concat();
        assert_eq!(health(&count(&checks, 2), SIP), Some(false));
        assert_eq!(health(&count(&checks, 3), SIP), None);
    }

    #[test]
    fn a_blind_vantage_is_not_counted() {
        // virginia sees nothing at all: its own link is cut. Only chicago and the witness
        // count, and they see the primary's softswitch up.
        let checks =
            [round("chicago", 10, &[]), round("virginia", 10, &all_down()), round("witness", 10, &[])]
                .concat();
        assert_eq!(health(&count(&checks, 2), SIP), Some(true));
        let backup = ServiceId::new(Role::Backup, ServiceKind::Stun);
        assert_eq!(health(&count(&checks, 2), backup), Some(true));
    }

    #[test]
    fn too_few_fresh_vantages_is_blind_and_says_how_many() {
        // The witness's checks went stale (the store leaves them out); virginia is blind:
        // one vantage counts.
        let checks = [round("chicago", 10, &[SIP]), round("virginia", 10, &all_down())].concat();
        match count(&checks, 2) {
            Count::Blind(reason) => assert!(reason.starts_with("1 of the 2"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(count(&[], 1), Count::Blind(_)));
    }

    #[test]
    fn a_vantage_with_only_some_fresh_checks_is_not_counted() {
        // virginia was blind and stopped: only three of its failed checks are still fresh.
        // It must not vote the primary down, nor count toward the quorum.
        let mut ageing = round("virginia", 10, &all_down());
        ageing.truncate(3);
        let checks = [round("chicago", 10, &[]), ageing, round("witness", 10, &[])].concat();
        assert_eq!(health(&count(&checks, 2), SIP), Some(true));
        let checks = [round("chicago", 10, &[SIP]), round("virginia", 10, &[SIP])[..3].to_vec()].concat();
        match count(&checks, 2) {
            Count::Blind(reason) => assert!(reason.contains("1 part-fresh"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn freshness_spans_two_rounds_and_a_slow_probe() {
        let text = format!(
            "[server]\npublic_url = \"http://prov.example.net\"\n[monitor]\ninterval = \"5m\"\ntimeout = \"2s\"\nretries = 2\n{}",
            switchback_tests::fixtures::TWO_SITES
        );
        let config = switchback_core::Config::parse(&text).unwrap();
        assert_eq!(freshness(&config.monitor), Duration::from_secs(2 * 300 + 2 * 3 + 1));
    }
}
