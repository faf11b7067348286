//! The scan guard: counts bad phone-file requests per source and blocks a source that
//! makes `scan_limit` of them within the window. Time is passed in, so the tests run
//! an hour of scanning in microseconds.
//!
//! A source is an IPv4 address or an IPv6 /64: one IPv6 host owns a whole /64, and
//! counting its addresses one by one would let it rotate past any limit. When more
//! sources than [`MAX_SOURCES`] are being counted at once (an attack from a botnet or a
//! large IPv6 range), new ones are counted by their IPv4 /24 or IPv6 /48 instead, so
//! filling the table never switches the guard off.
//!
//! A source that authenticated a phone-file request recently is trusted: its requests
//! without credentials (the first half of every digest exchange) are not counted, and
//! authenticating clears its count. For everyone else a request without credentials
//! counts whether the MAC exists or not, so even the blocks tell a scanner nothing
//! about which MACs exist.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;

use crate::window::SlidingCounts;

/// Sources counted one by one at once; beyond this, new ones are counted by network.
pub const MAX_SOURCES: usize = 100_000;

/// Where bad requests come from: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An address (/32), or a /24 once the table is full.
    V4(Ipv4Net),
    /// A /64, or a /48 once the table is full.
    V6(Ipv6Net),
}

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Source::V4(Ipv4Net::from(v4)),
            IpAddr::V6(v6) => Source::V6(net6(v6, 64)),
        }
    }

    /// The wider network this source is counted in when the table is full.
    fn coarse(self) -> Self {
        match self {
            Source::V4(net) => Source::V4(Ipv4Net::new(net.addr(), 24).map_or(net, |n| n.trunc())),
            Source::V6(net) => Source::V6(net6(net.addr(), 48)),
        }
    }
}

fn net6(v6: Ipv6Addr, prefix: u8) -> Ipv6Net {
    Ipv6Net::new(v6, prefix).map_or_else(|_| Ipv6Net::from(v6), |n| n.trunc())
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::V4(net) if net.prefix_len() == 32 => write!(f, "{}", net.addr()),
            Source::V4(net) => write!(f, "{net}"),
            Source::V6(net) => write!(f, "{net}"),
        }
    }
}

/// `192.0.2.7`, `2001:db8:1:2::/64`, or any IPv6 address (meaning its /64).
impl FromStr for Source {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Source::of(ip));
        }
        match text.parse::<ipnet::IpNet>() {
            Ok(ipnet::IpNet::V6(net)) if matches!(net.prefix_len(), 48 | 64) => Ok(Source::V6(net.trunc())),
            Ok(ipnet::IpNet::V4(net)) if matches!(net.prefix_len(), 24 | 32) => Ok(Source::V4(net.trunc())),
            _ => Err(format!("`{text}` is not an IPv4 address or /24, or an IPv6 /64 or /48")),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One block in force, as the API and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BlockView {
    /// An IPv4 address or network, or an IPv6 network (`2001:db8:1:2::/64`).
    #[schema(value_type = String)]
    pub source: Source,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Bad requests counted in the window that started the block.
    pub bad_requests: u32,
}

#[derive(Debug)]
struct Block {
    view: BlockView,
    ends: Instant,
}

#[derive(Debug)]
struct Inner {
    /// Each source's recent bad requests.
    strikes: SlidingCounts<Source>,
    blocks: HashMap<Source, Block>,
    /// Sources that authenticated a phone-file request, and when they last did.
    trusted: HashMap<Source, Instant>,
    overflow_logged: Option<Instant>,
}

#[derive(Debug)]
pub struct ScanGuard {
    window: Duration,
    block_for: Duration,
    inner: Mutex<Inner>,
    /// Entries in `blocks`, so the request path skips the lock when nobody is blocked.
    blocks: AtomicUsize,
}

impl ScanGuard {
    pub fn new(limit: u32, window: Duration, block_for: Duration) -> Self {
        let inner = Inner {
            strikes: SlidingCounts::new(limit as usize, window, MAX_SOURCES),
            blocks: HashMap::new(),
            trusted: HashMap::new(),
            overflow_logged: None,
        };
        Self { window, block_for, inner: Mutex::new(inner), blocks: AtomicUsize::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `source` is blocked at `now`; an expired block is dropped here.
    pub fn is_blocked(&self, source: Source, now: Instant) -> bool {
        if self.blocks.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut inner = self.lock();
        let mut blocked = false;
        for key in [source, source.coarse()] {
            match inner.blocks.get(&key) {
                Some(block) if block.ends > now => blocked = true,
                Some(_) => {
                    inner.blocks.remove(&key);
                }
                None => {}
            }
        }
        self.blocks.store(inner.blocks.len(), Ordering::Relaxed);
        blocked
    }

    /// Whether `source` authenticated a phone-file request within the window.
    pub fn is_trusted(&self, source: Source, now: Instant) -> bool {
        self.lock().trusted.get(&source).is_some_and(|at| now.duration_since(*at) < self.window)
    }

    /// `source` authenticated a phone-file request: its count starts again, and its
    /// requests without credentials are not counted for a while.
    pub fn trust(&self, source: Source, now: Instant) {
        let mut inner = self.lock();
        inner.strikes.forget(source);
        if !inner.trusted.contains_key(&source) && inner.trusted.len() >= MAX_SOURCES {
            let window = self.window;
            inner.trusted.retain(|_, at| now.duration_since(*at) < window);
            if inner.trusted.len() >= MAX_SOURCES {
                return;
            }
        }
        inner.trusted.insert(source, now);
    }

    /// Counts one bad request. Answers the new block when this one starts it.
    pub fn strike(&self, source: Source, now: Instant, wall: DateTime<Utc>) -> Option<BlockView> {
        let mut inner = self.lock();
        if inner.blocks.get(&source).is_some_and(|b| b.ends > now) {
            return None;
        }
        let source = self.key(&mut inner, source, now);
        if inner.blocks.get(&source).is_some_and(|b| b.ends > now) {
            return None;
        }
        let counted = inner.strikes.record(source, now);
        if counted < inner.strikes.limit() {
            return None;
        }
        let bad_requests = u32::try_from(counted).unwrap_or(u32::MAX);
        inner.strikes.forget(source);
        let until = wall + chrono::Duration::from_std(self.block_for).unwrap_or(chrono::TimeDelta::MAX);
        let view = BlockView { source, since: wall, until, bad_requests };
        inner.blocks.insert(source, Block { view: view.clone(), ends: now + self.block_for });
        self.blocks.store(inner.blocks.len(), Ordering::Relaxed);
        Some(view)
    }

    /// The key to count `source` under: itself, or its network when the table is full.
    fn key(&self, inner: &mut Inner, source: Source, now: Instant) -> Source {
        if inner.strikes.has_room(source, now) {
            return source;
        }
        if inner.overflow_logged.is_none_or(|at| now.duration_since(at) >= self.window) {
            inner.overflow_logged = Some(now);
            tracing::error!(
                sources = MAX_SOURCES,
                "too many sources making bad phone-file requests: new ones are counted per /24 or /48"
            );
        }
        source.coarse()
    }

    /// Lifts a block (an operator's call); its count starts again from zero.
    pub fn lift(&self, source: Source) -> Option<BlockView> {
        let mut inner = self.lock();
        inner.strikes.forget(source);
        let lifted = inner.blocks.remove(&source).map(|b| b.view);
        self.blocks.store(inner.blocks.len(), Ordering::Relaxed);
        lifted
    }

    /// How many blocks are in force at `now`.
    pub fn in_force(&self, now: Instant) -> usize {
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        inner.blocks.len()
    }

    fn expire(&self, inner: &mut Inner, now: Instant) {
        inner.blocks.retain(|_, b| b.ends > now);
        self.blocks.store(inner.blocks.len(), Ordering::Relaxed);
    }

    /// Blocks in force at `now`, oldest first.
    pub fn blocks(&self, now: Instant) -> Vec<BlockView> {
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        let mut views: Vec<BlockView> = inner.blocks.values().map(|b| b.view.clone()).collect();
        views.sort_by_key(|v| (v.since, v.source));
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(600);
    const HOUR: Duration = Duration::from_secs(3600);

    fn source(text: &str) -> Source {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn wall() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn the_limit_within_the_window_blocks_once_until_block_for_passes() {
        let guard = ScanGuard::new(3, WINDOW, HOUR);
        let t0 = Instant::now();
        let scanner = source("127.0.0.9");
        assert_eq!(guard.strike(scanner, t0, wall()), None);
        assert_eq!(guard.strike(scanner, t0 + Duration::from_secs(1), wall()), None);
        assert!(!guard.is_blocked(scanner, t0 + Duration::from_secs(1)));
        let block = guard.strike(scanner, t0 + Duration::from_secs(2), wall());
        assert_eq!(block.map(|b| (b.source, b.bad_requests)), Some((scanner, 3)));
        assert!(guard.is_blocked(scanner, t0 + Duration::from_secs(3)));
        // More bad requests while blocked start no second block.
        assert_eq!(guard.strike(scanner, t0 + Duration::from_secs(4), wall()), None);
        assert!(!guard.is_blocked(source("127.0.0.10"), t0 + Duration::from_secs(3)));
        assert!(guard.is_blocked(scanner, t0 + Duration::from_secs(2) + HOUR - Duration::from_millis(1)));
        assert!(!guard.is_blocked(scanner, t0 + Duration::from_secs(2) + HOUR));
        assert!(guard.blocks(t0 + Duration::from_secs(2) + HOUR).is_empty());
    }

    #[test]
    fn strikes_older_than_the_window_do_not_count() {
        let guard = ScanGuard::new(3, WINDOW, HOUR);
        let t0 = Instant::now();
        let phone = source("10.0.0.5");
        // Two mistakes every 10 minutes, for a day: never blocked.
        for i in 0..144u64 {
            let at = t0 + Duration::from_secs(600 * i);
            assert_eq!(guard.strike(phone, at, wall()), None, "round {i}");
            assert_eq!(guard.strike(phone, at + Duration::from_secs(1), wall()), None, "round {i}");
        }
    }

    #[test]
    fn lifting_clears_the_block_and_the_count() {
        let guard = ScanGuard::new(2, WINDOW, HOUR);
        let t0 = Instant::now();
        let scanner = source("192.0.2.1");
        guard.strike(scanner, t0, wall());
        assert!(guard.strike(scanner, t0, wall()).is_some());
        assert_eq!(guard.blocks(t0).len(), 1);
        assert!(guard.lift(scanner).is_some());
        assert!(guard.lift(scanner).is_none());
        assert!(!guard.is_blocked(scanner, t0));
        assert_eq!(guard.strike(scanner, t0, wall()), None, "the count starts again");
    }

    #[test]
    fn a_full_table_counts_new_sources_by_network_instead_of_not_at_all() {
        let guard = ScanGuard::new(3, WINDOW, HOUR);
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            assert_eq!(guard.strike(Source::of(IpAddr::V4(ip)), t0, wall()), None);
        }
        // Three fresh addresses of one /24, each making one bad request: blocked as a /24.
        let fresh = |last: u8| Source::of(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, last)));
        assert_eq!(guard.strike(fresh(1), t0, wall()), None);
        assert_eq!(guard.strike(fresh(2), t0, wall()), None);
        let block = guard.strike(fresh(3), t0, wall());
        assert_eq!(block.map(|b| b.source.to_string()), Some("192.0.2.0/24".to_owned()));
        assert!(guard.is_blocked(fresh(77), t0));
        assert!(!guard.is_blocked(source("10.0.0.1"), t0));
    }

    #[test]
    fn a_source_that_authenticates_is_trusted_and_its_count_cleared() {
        let guard = ScanGuard::new(3, WINDOW, HOUR);
        let t0 = Instant::now();
        let office = source("198.51.100.7");
        guard.strike(office, t0, wall());
        guard.strike(office, t0, wall());
        assert!(!guard.is_trusted(office, t0));
        guard.trust(office, t0);
        assert!(guard.is_trusted(office, t0 + Duration::from_secs(1)));
        assert_eq!(guard.strike(office, t0, wall()), None, "the count started again");
        assert_eq!(guard.strike(office, t0, wall()), None);
        assert!(!guard.is_trusted(office, t0 + WINDOW), "trust lasts a window");
    }

    #[test]
    fn ipv6_sources_are_counted_per_64() {
        let guard = ScanGuard::new(2, WINDOW, HOUR);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(guard.strike(Source::of(a), t0, wall()), None);
        let block = guard.strike(Source::of(b), t0, wall());
        assert_eq!(block.map(|b| b.source.to_string()), Some("2001:db8:1:2::/64".to_owned()));
        assert_eq!(source("2001:db8:1:2::/64"), Source::of(a));
        assert_eq!(source("2001:db8:1:2::77"), Source::of(a));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Source::of(mapped), source("192.0.2.1"));
        assert!("2001:db8::/40".parse::<Source>().is_err());
        assert_eq!(source("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert!("evil".parse::<Source>().is_err());
    }
}
