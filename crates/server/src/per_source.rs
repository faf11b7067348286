//! A cap on what one source (an IPv4 address, an IPv6 /64) holds at once: connections,
//! dashboard streams. A slot is taken per item and given back when it is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::prov::guard::Source;

/// How many items each source holds, and how many it may.
#[derive(Debug, Clone)]
pub(crate) struct PerSource {
    max: usize,
    counts: Arc<Mutex<HashMap<Source, usize>>>,
}

/// One item of a source, given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    counts: Arc<Mutex<HashMap<Source, usize>>>,
    source: Source,
}

impl PerSource {
    pub(crate) fn new(max: usize) -> Self {
        Self { max, counts: Arc::default() }
    }

    /// `None` when the source holds its share already.
    pub(crate) fn take(&self, source: Source) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let held = counts.entry(source).or_default();
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(Slot { counts: self.counts.clone(), source })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(held) = counts.get_mut(&self.source) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&self.source);
            }
        }
    }
}
