//! Events per key within a sliding window, in bounded memory: what both the login and
//! bearer-token limit ([`crate::auth`]) and the phone-file scan guard
//! ([`crate::prov::guard`]) count. Time is passed in, so tests cover hours in
//! microseconds.
//!
//! Hand-written rather than governor's keyed limiter: governor cannot tell whether a key
//! is over its limit without spending a cell, and both users must ask first and count
//! only failures.
//!
//! A key keeps at most `limit` instants. Keys whose events have all left the window are
//! swept once per window, and when the table is full (at most once a second); what to
//! do with a new key while it is still full is the caller's policy.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How often a full table may be swept for expired keys.
const SWEEP_WHEN_FULL_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct SlidingCounts<K> {
    limit: usize,
    window: Duration,
    max_keys: usize,
    by_key: HashMap<K, VecDeque<Instant>>,
    swept_at: Option<Instant>,
}

impl<K: Hash + Eq + Copy> SlidingCounts<K> {
    pub(crate) fn new(limit: usize, window: Duration, max_keys: usize) -> Self {
        Self {
            limit: limit.max(1),
            window,
            max_keys: max_keys.max(1),
            by_key: HashMap::new(),
            swept_at: None,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Events of `key` within the window before `now`.
    pub(crate) fn count(&self, key: K, now: Instant) -> usize {
        self.by_key.get(&key).map_or(0, |times| {
            times.iter().filter(|at| now.saturating_duration_since(**at) < self.window).count()
        })
    }

    /// Whether `key` is counted already or the table has room for it (sweeping a full
    /// table first, at most once a second).
    pub(crate) fn has_room(&mut self, key: K, now: Instant) -> bool {
        if self.by_key.contains_key(&key) || self.by_key.len() < self.max_keys {
            return true;
        }
        if self.swept_at.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_WHEN_FULL_EVERY) {
            self.sweep(now);
        }
        self.by_key.len() < self.max_keys
    }

    /// Gives up any one key to make room. Which one cannot be known to a client: the
    /// map's hasher is keyed at random.
    pub(crate) fn evict_any(&mut self) {
        if let Some(evicted) = self.by_key.keys().next().copied() {
            self.by_key.remove(&evicted);
        }
    }

    /// Counts an event of `key` at `now`; answers the events within the window,
    /// this one included (at most `limit`).
    pub(crate) fn record(&mut self, key: K, now: Instant) -> usize {
        if self.swept_at.is_none_or(|at| now.saturating_duration_since(at) >= self.window) {
            self.sweep(now);
        }
        let (limit, window) = (self.limit, self.window);
        let times = self.by_key.entry(key).or_default();
        times.retain(|at| now.saturating_duration_since(*at) < window);
        while times.len() >= limit {
            times.pop_front();
        }
        times.push_back(now);
        times.len()
    }

    /// Forgets `key`'s events.
    pub(crate) fn forget(&mut self, key: K) {
        self.by_key.remove(&key);
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.by_key.len()
    }

    /// The most instants any key keeps.
    #[cfg(test)]
    pub(crate) fn longest(&self) -> usize {
        self.by_key.values().map(VecDeque::len).max().unwrap_or(0)
    }

    fn sweep(&mut self, now: Instant) {
        let window = self.window;
        self.by_key
            .retain(|_, times| times.back().is_some_and(|at| now.saturating_duration_since(*at) < window));
        self.swept_at = Some(now);
    }
}
