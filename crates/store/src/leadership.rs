//! [`Leadership`]: whether this instance may write as the group's leader, and with
//! which [`Fence`]. Shared by the decider, the alert sender and the lease keeper.
//!
//! A leader's right lapses on its own clock (monotonic: a pause of the process counts)
//! before the store's lease runs out, so a leader that was stopped past its lease
//! finds, on waking, that it must not write or send; and every write it still
//! attempts is refused by the store if another took over ([`StoreError::Fenced`]).

use std::sync::Mutex;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Fence, StoreError};

#[derive(Debug)]
pub struct Leadership {
    /// `None`: a single instance, which always writes, unfenced.
    group: Option<Group>,
}

#[derive(Debug)]
struct Group {
    node: String,
    standing: Mutex<Standing>,
    changes: watch::Sender<Option<Fence>>,
}

#[derive(Debug, Clone)]
enum Standing {
    Follower,
    /// `resumed`: the state was read back from the store after winning the term; until
    /// then nothing is written as leader (it would build on a follower's copy).
    Leader {
        fence: Fence,
        valid_until: Instant,
        resumed: bool,
    },
}

/// Why this instance may not write as leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this instance does not lead the group")]
pub struct NotLeader;

impl Leadership {
    /// A single instance: always the leader, writing without a fence.
    pub fn solo() -> Self {
        Self { group: None }
    }

    /// An instance of a group, following until it wins the lease.
    pub fn group(node: impl Into<String>) -> Self {
        let (changes, _) = watch::channel(None);
        Self { group: Some(Group { node: node.into(), standing: Mutex::new(Standing::Follower), changes }) }
    }

    pub fn is_group(&self) -> bool {
        self.group.is_some()
    }

    pub fn node(&self) -> Option<&str> {
        self.group.as_ref().map(|g| g.node.as_str())
    }

    /// What a write as leader must carry: `Ok(None)` for a single instance, the fence
    /// while this instance leads and its lease has not lapsed on its own clock.
    pub fn write_as(&self) -> Result<Option<Fence>, NotLeader> {
        let Some(group) = &self.group else { return Ok(None) };
        match &*group.lock() {
            Standing::Leader { fence, valid_until, resumed: true } if Instant::now() < *valid_until => {
                Ok(Some(fence.clone()))
            }
            _ => Err(NotLeader),
        }
    }

    /// How long this instance may still act as leader on its own clock: `None` alone
    /// (no limit), zero when it does not lead.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        self.group.as_ref()?;
        Some(match self.held() {
            Some((_, until)) if self.leads() => until.saturating_duration_since(Instant::now()),
            _ => std::time::Duration::ZERO,
        })
    }

    /// Whether this instance leads now (a single instance always does).
    pub fn leads(&self) -> bool {
        self.write_as().is_ok()
    }

    /// The term this instance leads, even if its lease lapsed and it has not yet
    /// noticed: what the lease keeper renews.
    pub fn held(&self) -> Option<(Fence, Instant)> {
        let group = self.group.as_ref()?;
        match &*group.lock() {
            Standing::Leader { fence, valid_until, .. } => Some((fence.clone(), *valid_until)),
            Standing::Follower => None,
        }
    }

    /// This instance won (or renewed) the lease for `fence.term`, valid until `until`.
    /// A term just won writes nothing until [`resumed`](Leadership::resumed).
    pub fn lead(&self, fence: Fence, until: Instant) {
        let Some(group) = &self.group else { return };
        let mut standing = group.lock();
        let resumed =
            matches!(&*standing, Standing::Leader { fence: held, resumed: true, .. } if *held == fence);
        *standing = Standing::Leader { fence, valid_until: until, resumed };
    }

    /// The state of `fence`'s term is read back from the store: it may write now.
    pub fn resumed(&self, fence: &Fence) {
        let Some(group) = &self.group else { return };
        let mut standing = group.lock();
        if let Standing::Leader { fence: held, resumed, .. } = &mut *standing {
            if held == fence && !*resumed {
                *resumed = true;
                group.changes.send_replace(Some(fence.clone()));
            }
        }
    }

    /// This instance no longer leads (lease lost, lapsed, or a write was fenced off).
    pub fn step_down(&self) {
        let Some(group) = &self.group else { return };
        let was = std::mem::replace(&mut *group.lock(), Standing::Follower);
        if let Standing::Leader { fence, .. } = was {
            tracing::warn!(node = %fence.node, term = fence.term, "stepped down: no longer the leader");
            group.changes.send_replace(None);
        }
    }

    /// Steps down if `err` says another instance took over.
    pub fn note_error(&self, err: &StoreError) {
        if matches!(err, StoreError::Fenced { .. }) {
            self.step_down();
        }
    }

    /// Every change of leadership: `Some(fence)` on winning a term, `None` on losing it.
    pub fn watch(&self) -> Option<watch::Receiver<Option<Fence>>> {
        self.group.as_ref().map(|g| g.changes.subscribe())
    }
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, Standing> {
        self.standing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_lapses_on_the_instances_own_clock() {
        let leadership = Leadership::group("va-1");
        assert_eq!(leadership.write_as(), Err(NotLeader));
        let fence = Fence { node: "va-1".to_owned(), term: 3 };
        leadership.lead(fence.clone(), Instant::now() + Duration::from_secs(10));
        assert_eq!(leadership.write_as(), Err(NotLeader), "not before the state is read back");
        leadership.resumed(&fence);
        assert_eq!(leadership.write_as(), Ok(Some(fence.clone())));
        leadership.lead(fence.clone(), Instant::now() + Duration::from_secs(10));
        assert_eq!(leadership.write_as(), Ok(Some(fence.clone())), "a renewal keeps it resumed");
        // A pause (SIGSTOP) past the lease: on waking, it may no longer write.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(leadership.write_as(), Err(NotLeader));
        assert_eq!(leadership.held().map(|(f, _)| f), Some(fence));
        leadership.step_down();
        assert!(leadership.held().is_none());
    }

    #[test]
    fn a_single_instance_always_writes_unfenced() {
        assert_eq!(Leadership::solo().write_as(), Ok(None));
    }
}
