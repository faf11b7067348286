//! Who fetched what: every served phone file is recorded in memory on the request
//! path (no database write there) and flushed to the store in batches.

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
    pending: Vec<PhoneFetch>,
    latest: HashMap<Mac, LastFetch>,
    /// How many phones last fetched each generation.
    per_generation: HashMap<u64, usize>,
    dropped: u64,
}

/// Fetches kept in memory while the store cannot take them; beyond this the oldest go.
const MAX_PENDING: usize = 500_000;

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
        if inner.pending.len() >= MAX_PENDING {
            inner.pending.remove(0);
            inner.dropped += 1;
        }
        inner.pending.push(fetch);
    }

    /// The fetches recorded since the last call, oldest first.
    pub fn take_pending(&self) -> Vec<PhoneFetch> {
        std::mem::take(&mut self.lock().pending)
    }

    /// Puts back a batch the store refused, ahead of newer fetches.
    pub fn requeue(&self, mut batch: Vec<PhoneFetch>) {
        let mut inner = self.lock();
        batch.append(&mut inner.pending);
        let excess = batch.len().saturating_sub(MAX_PENDING);
        batch.drain(..excess);
        inner.dropped += excess as u64;
        inner.pending = batch;
    }

    /// How many phones last fetched `generation`.
    pub fn on_generation(&self, generation: u64) -> usize {
        self.lock().per_generation.get(&generation).copied().unwrap_or(0)
    }

    /// Each phone's latest fetch.
    pub fn latest(&self, mac: Mac) -> Option<LastFetch> {
        self.lock().latest.get(&mac).copied()
    }

    /// Fetches lost because the store was unreachable for too long.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
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
            at: DateTime::UNIX_EPOCH,
            generation,
            source: IpAddr::from([127, 0, 0, 1]),
            user_agent: "Yealink SIP-T46S 66.86.0.15".to_owned(),
        }
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
        assert_eq!(log.take_pending().len(), 4);
        assert!(log.take_pending().is_empty());
    }

    #[test]
    fn a_refused_batch_goes_back_ahead_of_newer_fetches() {
        let log = FetchLog::default();
        log.record(fetch("001565000001", 1));
        let batch = log.take_pending();
        log.record(fetch("001565000002", 1));
        log.requeue(batch);
        let macs: Vec<String> = log.take_pending().iter().map(|f| f.mac.to_string()).collect();
        assert_eq!(macs, ["001565000001", "001565000002"]);
    }
}
