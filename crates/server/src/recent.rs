//! The latest checks of each service, kept in memory for the status page and its stream,
//! so that showing them never asks the store. Seeded from the store at start, then fed
//! every round's results by the orchestrator.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use switchback_core::{CheckResult, ServiceId};
use switchback_store::{Store, StoreError};

/// Checks kept per service, newest first.
#[derive(Debug, Default)]
pub struct RecentChecks {
    by_service: Mutex<HashMap<ServiceId, VecDeque<CheckResult>>>,
}

impl RecentChecks {
    /// How many checks each service shows.
    pub const KEPT: usize = 20;

    /// Seeded with each service's latest checks in the store.
    pub async fn from_store(store: &dyn Store) -> Result<Self, StoreError> {
        let recent = Self::default();
        let kept = u32::try_from(Self::KEPT).unwrap_or(u32::MAX);
        for service in ServiceId::all() {
            recent.seed(service, store.recent_checks(service, kept).await?);
        }
        Ok(recent)
    }

    /// Replaces what is kept for `service` with `checks` (any order).
    pub fn seed(&self, service: ServiceId, checks: Vec<CheckResult>) {
        let mut by_service = self.lock();
        let kept = by_service.entry(service).or_default();
        kept.clear();
        for check in checks {
            insert(kept, check);
        }
    }

    /// Keeps a round's results.
    pub fn observe(&self, results: &[CheckResult]) {
        let mut by_service = self.lock();
        for result in results {
            insert(by_service.entry(result.service).or_default(), result.clone());
        }
    }

    /// A service's kept checks, newest first.
    pub fn newest_first(&self, service: ServiceId) -> Vec<CheckResult> {
        self.lock().get(&service).map(|kept| kept.iter().cloned().collect()).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceId, VecDeque<CheckResult>>> {
        self.by_service.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Inserts in order of time (a round's results come in any order), dropping the oldest
/// beyond [`RecentChecks::KEPT`].
fn insert(kept: &mut VecDeque<CheckResult>, check: CheckResult) {
    let at = kept.partition_point(|c| c.checked_at > check.checked_at);
    kept.insert(at, check);
    kept.truncate(RecentChecks::KEPT);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use switchback_core::{Role, ServiceKind};

    use super::*;

    const SOFTSWITCH: ServiceId = ServiceId { role: Role::Primary, kind: ServiceKind::Softswitch };
    const STUN: ServiceId = ServiceId { role: Role::Backup, kind: ServiceKind::Stun };

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::seconds(seconds)
    }

    fn times(recent: &RecentChecks, service: ServiceId) -> Vec<i64> {
        recent.newest_first(service).iter().map(|c| c.checked_at.timestamp()).collect()
    }

    #[test]
    fn keeps_the_newest_twenty_of_each_service_newest_first() {
        let recent = RecentChecks::default();
        for round in 0..30 {
            recent.observe(&[
                CheckResult::failed(STUN, "timeout", at(round)),
                CheckResult::healthy(SOFTSWITCH, std::time::Duration::from_millis(3), at(round)),
            ]);
        }
        let expected: Vec<i64> = (10..30).rev().collect();
        assert_eq!(times(&recent, SOFTSWITCH), expected);
        assert_eq!(times(&recent, STUN), expected);
        assert_eq!(recent.newest_first(STUN)[0].reason.as_deref(), Some("timeout"));
        assert!(recent
            .newest_first(ServiceId { role: Role::Backup, kind: ServiceKind::Database })
            .is_empty());
    }

    #[test]
    fn seeded_history_is_ordered_and_continued_by_rounds() {
        let recent = RecentChecks::default();
        recent.seed(STUN, vec![CheckResult::failed(STUN, "x", at(1)), CheckResult::failed(STUN, "x", at(3))]);
        recent.observe(&[CheckResult::failed(STUN, "x", at(2)), CheckResult::failed(STUN, "x", at(4))]);
        assert_eq!(times(&recent, STUN), [4, 3, 2, 1]);
        recent.seed(STUN, Vec::new());
        assert!(times(&recent, STUN).is_empty());
    }
}
