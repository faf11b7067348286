//! Who fetched what: every served phone file is recorded in memory on the request
//! path (no database write there) and flushed to the store in batches. Between flushes
//! the fetches of one phone fold into one record (its latest fetch and how many it
//! stands for), so memory is bounded by the inventory however long the store is away,
//! and no fetch is ever dropped.
//!
//! The convergence counts (phones per generation and vendor, phones seen since a moment)
//! are kept as fetches are recorded, so that reading them does not walk the inventory.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::mac::Mac;
use crate::phone::Vendor;

/// One served phone file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneFetch {
    pub mac: Mac,
    pub vendor: Vendor,
    pub at: DateTime<Utc>,
    pub generation: u64,
    pub source: IpAddr,
    pub user_agent: String,
    /// How many fetches this record stands for: 1 when served, more once folded.
    pub count: u64,
}

impl PhoneFetch {
    /// Folds `other` (another fetch of the same phone) into this one: the later of the
    /// two is kept, and the counts add up.
    pub fn absorb(&mut self, other: PhoneFetch) {
        let count = self.count.saturating_add(other.count);
        if other.at >= self.at {
            *self = other;
        }
        self.count = count;
    }
}

/// The latest fetch of one phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastFetch {
    pub generation: u64,
    pub vendor: Vendor,
    pub at: DateTime<Utc>,
}

impl LastFetch {
    /// Whether a phone last seen this way counts as seen since `since`. Whole seconds,
    /// like [`FetchLog::seen_since`], so that a list of phones and the counts agree.
    pub fn seen_since(last: Option<LastFetch>, since: DateTime<Utc>) -> bool {
        last.is_some_and(|l| l.at.timestamp() >= since.timestamp())
    }
}

/// Fetches waiting to be flushed, and each phone's latest fetch for convergence counts.
#[derive(Debug, Default)]
pub struct FetchLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each phone's fetches since the last flush, folded into one record.
    pending: HashMap<Mac, PhoneFetch>,
    latest: HashMap<Mac, LastFetch>,
    /// How many phones last fetched each generation, by vendor.
    per_generation: BTreeMap<(u64, Vendor), usize>,
    /// How many phones were last seen in each second (Unix time).
    per_second: BTreeMap<i64, usize>,
}

impl FetchLog {
    /// Restores each phone's latest fetch after a restart.
    pub fn seed(&self, latest: impl IntoIterator<Item = (Mac, LastFetch)>) {
        let mut inner = self.lock();
        for (mac, last) in latest {
            inner.set_latest(mac, last);
        }
    }

    /// Folds in fetches another instance of the group served (read back from the store):
    /// each counts where it is newer than what this instance knows of the phone. They
    /// are not queued for a flush: the instance that served them flushed them.
    pub fn merge(&self, latest: impl IntoIterator<Item = (Mac, LastFetch)>) {
        let mut inner = self.lock();
        for (mac, last) in latest {
            if inner.latest.get(&mac).is_none_or(|known| known.at < last.at) {
                inner.set_latest(mac, last);
            }
        }
    }

    pub fn record(&self, fetch: PhoneFetch) {
        let mut inner = self.lock();
        inner.set_latest(
            fetch.mac,
            LastFetch { generation: fetch.generation, vendor: fetch.vendor, at: fetch.at },
        );
        inner.add_pending(fetch);
    }

    /// The fetches recorded since the last call: one record per phone.
    pub fn take_pending(&self) -> Vec<PhoneFetch> {
        let mut inner = self.lock();
        // The next batch is about as large as this one: keep its room, so the request
        // path does not regrow the map after every flush.
        let room = inner.pending.len();
        std::mem::replace(&mut inner.pending, HashMap::with_capacity(room)).into_values().collect()
    }

    /// Puts back a batch the store refused, folded with the fetches recorded since.
    pub fn requeue(&self, batch: Vec<PhoneFetch>) {
        let mut inner = self.lock();
        for fetch in batch {
            inner.add_pending(fetch);
        }
    }

    /// How many phones have fetches not yet in the store.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// How many phones last fetched `generation`.
    pub fn on_generation(&self, generation: u64) -> usize {
        let inner = self.lock();
        Vendor::ALL.into_iter().map(|vendor| inner.on_generation(generation, vendor)).sum()
    }

    /// How many phones of `vendor` last fetched `generation`.
    pub fn on_generation_of(&self, generation: u64, vendor: Vendor) -> usize {
        self.lock().on_generation(generation, vendor)
    }

    /// How many phones fetched a file since `since` (in whole seconds: see
    /// [`LastFetch::seen_since`]). Sums one count per second of the span, not per phone.
    pub fn seen_since(&self, since: DateTime<Utc>) -> usize {
        self.lock().per_second.range(since.timestamp()..).map(|(_, count)| count).sum()
    }

    /// Each phone's latest fetch.
    pub fn latest(&self, mac: Mac) -> Option<LastFetch> {
        self.lock().latest.get(&mac).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn add_pending(&mut self, fetch: PhoneFetch) {
        match self.pending.entry(fetch.mac) {
            std::collections::hash_map::Entry::Occupied(mut slot) => slot.get_mut().absorb(fetch),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(fetch);
            }
        }
    }

    fn on_generation(&self, generation: u64, vendor: Vendor) -> usize {
        self.per_generation.get(&(generation, vendor)).copied().unwrap_or(0)
    }

    fn set_latest(&mut self, mac: Mac, last: LastFetch) {
        if let Some(previous) = self.latest.insert(mac, last) {
            decrement(&mut self.per_generation, (previous.generation, previous.vendor));
            decrement(&mut self.per_second, previous.at.timestamp());
        }
        *self.per_generation.entry((last.generation, last.vendor)).or_default() += 1;
        *self.per_second.entry(last.at.timestamp()).or_default() += 1;
    }
}

/// Takes one from a count, and forgets a count that reaches zero so that neither map
/// outgrows the phones it counts.
fn decrement<K: Ord>(counts: &mut BTreeMap<K, usize>, key: K) {
    if let std::collections::btree_map::Entry::Occupied(mut slot) = counts.entry(key) {
        *slot.get_mut() -= 1;
        if *slot.get() == 0 {
            slot.remove();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn fetch(mac: &str, generation: u64) -> PhoneFetch {
        PhoneFetch {
            mac: Mac::parse(mac).unwrap_or_else(|e| panic!("{e}")),
            vendor: Vendor::Yealink,
            at: DateTime::UNIX_EPOCH + chrono::Duration::seconds(i64::try_from(generation).unwrap_or(0)),
            generation,
            source: IpAddr::from([127, 0, 0, 1]),
            user_agent: "Yealink SIP-T46S 66.86.0.15".to_owned(),
            count: 1,
        }
    }

    /// Pending records as (mac, generation, count), sorted by MAC.
    fn pending(log: &FetchLog) -> Vec<(String, u64, u64)> {
        let mut all: Vec<_> =
            log.take_pending().into_iter().map(|f| (f.mac.to_string(), f.generation, f.count)).collect();
        all.sort();
        all
    }

    #[test]
    fn counts_each_phone_once_on_its_latest_generation() {
        let log = FetchLog::default();
        log.record(fetch("001565000001", 1));
        log.record(fetch("001565000002", 1));
        log.record(fetch("001565000001", 2));
        log.record(fetch("001565000001", 2));
        assert_eq!(log.on_generation(1), 1);
        assert_eq!(log.on_generation(2), 1);
        assert_eq!(pending(&log), [("001565000001".to_owned(), 2, 3), ("001565000002".to_owned(), 1, 1)]);
        assert!(log.take_pending().is_empty());
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::Duration::seconds(seconds)
    }

    #[test]
    fn convergence_counts_follow_each_phone_to_its_latest_fetch() {
        let log = FetchLog::default();
        let linksys =
            |mac: &str, generation: u64| PhoneFetch { vendor: Vendor::Linksys, ..fetch(mac, generation) };
        log.record(fetch("001565000001", 1));
        log.record(linksys("001565000002", 1));
        log.record(linksys("001565000003", 2));
        assert_eq!(log.on_generation_of(1, Vendor::Yealink), 1);
        assert_eq!(log.on_generation_of(1, Vendor::Linksys), 1);
        assert_eq!(log.on_generation_of(2, Vendor::Linksys), 1);
        log.record(linksys("001565000002", 2));
        assert_eq!(log.on_generation_of(1, Vendor::Linksys), 0);
        assert_eq!(log.on_generation_of(2, Vendor::Linksys), 2);
        assert_eq!(log.on_generation(2), 2);
        assert_eq!(log.on_generation(1), 1);
    }

    #[test]
    fn phones_seen_since_a_moment_count_whole_seconds_of_their_latest_fetch() {
        let log = FetchLog::default();
        let seen_at = |mac: &str, seconds: i64| PhoneFetch { at: at(seconds), ..fetch(mac, 1) };
        log.record(seen_at("001565000001", 10));
        log.record(seen_at("001565000002", 20));
        log.record(seen_at("001565000003", 30));
        assert_eq!(log.seen_since(at(0)), 3);
        assert_eq!(log.seen_since(at(20)), 2);
        assert_eq!(log.seen_since(at(31)), 0);
        // Within the second of the moment counts as seen, as a single phone's check says.
        let half_past = at(20) + chrono::Duration::milliseconds(500);
        assert_eq!(log.seen_since(half_past), 2);
        assert!(LastFetch::seen_since(log.latest(Mac::parse("001565000002").unwrap()), half_past));
        assert!(!LastFetch::seen_since(None, at(0)));
        // A phone seen again leaves its old second.
        log.record(seen_at("001565000001", 40));
        assert_eq!(log.seen_since(at(31)), 1);
        assert_eq!(log.seen_since(at(0)), 3);
    }

    #[test]
    fn seeded_fetches_count_like_recorded_ones() {
        let log = FetchLog::default();
        let mac = Mac::parse("001565000001").unwrap();
        log.seed([(mac, LastFetch { generation: 4, vendor: Vendor::Linksys, at: at(100) })]);
        assert_eq!(log.on_generation_of(4, Vendor::Linksys), 1);
        assert_eq!(log.seen_since(at(100)), 1);
        log.record(PhoneFetch { vendor: Vendor::Linksys, at: at(200), ..fetch("001565000001", 5) });
        assert_eq!((log.on_generation(4), log.on_generation(5)), (0, 1));
        assert_eq!(log.seen_since(at(0)), 1);
    }

    #[test]
    fn the_counts_hold_one_entry_per_phone_at_most() {
        let log = FetchLog::default();
        for n in 0..10_000u64 {
            log.record(fetch(&format!("0015650000{:02x}", n % 7), n));
        }
        let inner = log.lock();
        assert_eq!(inner.per_second.len(), 7);
        assert_eq!(inner.per_generation.len(), 7);
        assert_eq!(inner.per_second.values().sum::<usize>(), 7);
    }

    #[test]
    fn a_refused_batch_folds_into_newer_fetches_and_loses_none() {
        let log = FetchLog::default();
        log.record(fetch("001565000001", 1));
        log.record(fetch("001565000001", 1));
        let batch = log.take_pending();
        log.record(fetch("001565000001", 2));
        log.record(fetch("001565000002", 1));
        log.requeue(batch);
        assert_eq!(log.pending(), 2);
        assert_eq!(pending(&log), [("001565000001".to_owned(), 2, 3), ("001565000002".to_owned(), 1, 1)]);
    }

    #[test]
    fn memory_is_one_record_per_phone_however_many_fetches() {
        let log = FetchLog::default();
        for n in 0..10_000u64 {
            log.record(fetch(&format!("0015650000{:02x}", n % 7), n));
        }
        assert_eq!(log.pending(), 7);
        let total: u64 = log.take_pending().iter().map(|f| f.count).sum();
        assert_eq!(total, 10_000);
    }
}
