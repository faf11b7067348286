//! Who fetched what: every served phone file is recorded in memory on the request
//! path (no database write there) and flushed to the store in batches. Between flushes
//! the fetches of one phone fold into one record (its latest fetch and how many it
//! stands for), so memory is bounded by the inventory however long the store is away,
//! and no fetch is ever dropped.

use std::collections::HashMap;
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
    pub at: DateTime<Utc>,
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
    /// How many phones last fetched each generation.
    per_generation: HashMap<u64, usize>,
}

impl FetchLog {
    /// Restores each phone's latest fetch after a restart.
    pub fn seed(&self, latest: impl IntoIterator<Item = (Mac, LastFetch)>) {
        let mut inner = self.lock();
        for (mac, last) in latest {
            inner.set_latest(mac, last);
        }
    }

    pub fn record(&self, fetch: PhoneFetch) {
        let mut inner = self.lock();
        inner.set_latest(fetch.mac, LastFetch { generation: fetch.generation, at: fetch.at });
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
        self.lock().per_generation.get(&generation).copied().unwrap_or(0)
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

    fn set_latest(&mut self, mac: Mac, last: LastFetch) {
        if let Some(previous) = self.latest.insert(mac, last) {
            if let Some(count) = self.per_generation.get_mut(&previous.generation) {
                *count = count.saturating_sub(1);
            }
        }
        *self.per_generation.entry(last.generation).or_default() += 1;
    }
}

#[cfg(test)]
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
