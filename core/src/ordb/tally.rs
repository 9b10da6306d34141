//! How often a server sent each part of the names it serves, so that when its uplink
//! is busy it sends the rarest chunks first.
//!
//! A swarm that downloads in order keeps asking the seeder for chunks it already sent
//! to others: the downloaders behind ask it because they know no other holder, while
//! the front waits for the chunks only the seeder has. Sending the parts it sent least
//! first (BitTorrent's super-seeding, done by the server alone) spends a busy uplink on
//! what is new to the swarm; what many others already hold waits (PROTOCOL.md §9,
//! "Serving order").

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::Name20;

/// Chunks counted together: one span of a file.
pub const TALLY_SPAN: u64 = 256;
/// Names tallied at most (the oldest tallied goes first).
const MAX_NAMES: usize = 64;
/// Spans tallied per name at most (a 8 GB file); chunks past them count as never sent.
const MAX_SPANS: usize = 1 << 15;

/// Chunks sent per span of each name, bounded.
#[derive(Debug, Default)]
pub struct ServedTally {
    names: BTreeMap<Name20, (u64, Vec<u32>)>,
    /// Order of first tally, for eviction.
    seq: u64,
}

impl ServedTally {
    /// An empty tally.
    pub fn new() -> ServedTally {
        ServedTally::default()
    }

    /// One chunk of `name` at `chunk` (absolute index) was sent.
    pub fn note(&mut self, name: &Name20, chunk: u64) {
        let Ok(span) = usize::try_from(chunk / TALLY_SPAN) else {
            return;
        };
        if span >= MAX_SPANS {
            return;
        }
        if !self.names.contains_key(name) && self.names.len() >= MAX_NAMES {
            let oldest = self
                .names
                .iter()
                .min_by_key(|(_, (seq, _))| *seq)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.names.remove(&k);
            }
        }
        self.seq += 1;
        let seq = self.seq;
        let (_, spans) = self.names.entry(*name).or_insert((seq, Vec::new()));
        if spans.len() <= span {
            spans.resize(span + 1, 0);
        }
        spans[span] = spans[span].saturating_add(1);
    }

    /// Chunks of `name` sent so far in the span of `chunk`.
    pub fn count(&self, name: &Name20, chunk: u64) -> u32 {
        let span = usize::try_from(chunk / TALLY_SPAN).unwrap_or(usize::MAX);
        self.names
            .get(name)
            .and_then(|(_, spans)| spans.get(span))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_span_and_stays_bounded() {
        let mut t = ServedTally::new();
        let a = [1u8; 20];
        t.note(&a, 0);
        t.note(&a, TALLY_SPAN - 1);
        t.note(&a, TALLY_SPAN);
        assert_eq!(t.count(&a, 5), 2);
        assert_eq!(t.count(&a, TALLY_SPAN + 3), 1);
        assert_eq!(t.count(&a, 10 * TALLY_SPAN), 0);
        // A chunk past the bound is not tallied (no allocation for it).
        t.note(&a, u64::MAX);
        assert_eq!(t.count(&a, u64::MAX), 0);
        for i in 0..(MAX_NAMES as u8 + 5) {
            t.note(&[i.wrapping_add(2); 20], 0);
        }
        assert_eq!(t.names.len(), MAX_NAMES);
        // The first name tallied went first.
        assert_eq!(t.count(&a, 0), 0);
    }
}
