//! Serving a DB_QUERY from a [`ChunkStore`]: the cells an ORDB or seeder sends on one
//! stream, one at a time, so the node can stop at the stream's chunk window.
//!
//! Order on a stream (PROTOCOL.md 6.3 and 6.5): for each chunk, first what proves it and
//! was not sent on this stream yet — for a live stream its segment's DB_SEGMENT header —
//! then the DB_HASHES on the path from the top of its tree down to it, then its DB_DATA.
//! A file block the range covers whole goes without its leaf hashes: the receiver checks
//! its 15 chunks together against the block's node hash.

use alloc::collections::BTreeSet;

use super::store::ChunkStore;
use super::tree::{ARITY, TreeShape, leaf_hash};
use super::{Manifest, Name20, wire_chunk_nb};
use crate::cells::relay::{ChunkSignature, DbData, RelayMsg};

/// Hash nodes remembered as sent on one stream at most; past it the set is cleared (a
/// downloader ignores duplicates, so forgetting only costs cells).
const MAX_SENT: usize = 4096;

/// What [`ServeCursor::next_msg`] produced.
// A cell is sent per step: boxing the message would allocate per cell.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeStep {
    /// Send this cell. `data` is true for a DB_DATA (it takes one unit of window).
    Send {
        /// The message.
        msg: RelayMsg,
        /// A DB_DATA.
        data: bool,
    },
    /// The next cell is a DB_DATA and the window is closed: wait for a DB_SENDME.
    Blocked,
    /// A live chunk that is not produced yet: wait for the seeder.
    Waiting,
    /// Every chunk of the range was sent.
    Done,
    /// A chunk or proof of the range is not in the store (evicted): end the stream.
    Missing,
}

/// One served range `next..end` (absolute chunk indexes) of one name on one stream.
#[derive(Debug, Clone)]
pub struct ServeCursor {
    name: Name20,
    start: u64,
    next: u64,
    end: u64,
    sent_hashes: BTreeSet<(u32, u8, u32)>,
    sent_segments: BTreeSet<u32>,
}

impl ServeCursor {
    /// Serve chunks `first..first+count` of `name`.
    pub fn new(name: Name20, first: u64, count: u64) -> ServeCursor {
        ServeCursor {
            name,
            start: first,
            next: first,
            end: first.saturating_add(count),
            sent_hashes: BTreeSet::new(),
            sent_segments: BTreeSet::new(),
        }
    }

    /// Serve another range on the same stream (a new DB_QUERY on it): what was already
    /// sent on the stream is not sent again.
    pub fn restart(&mut self, first: u64, count: u64) {
        self.start = first;
        self.next = first;
        self.end = first.saturating_add(count);
    }

    /// The name served.
    pub fn name(&self) -> &Name20 {
        &self.name
    }

    /// The next chunk to send and the end of the range.
    pub fn position(&self) -> (u64, u64) {
        (self.next, self.end)
    }

    /// Whether the range covers every chunk of block `block` (checked whole, without its
    /// leaf hashes).
    fn covers(&self, shape: &TreeShape, block: u32) -> bool {
        let first = u64::from(block) * ARITY as u64;
        let len = shape.children_len(1, u64::from(block)) as u64;
        first >= self.start && first + len <= self.end
    }

    fn mark_hash(&mut self, key: (u32, u8, u32)) {
        if self.sent_hashes.len() >= MAX_SENT {
            self.sent_hashes.clear();
        }
        self.sent_hashes.insert(key);
    }

    /// The next cell, given `window` DB_DATA cells may still be sent.
    pub fn next_msg(&mut self, store: &mut dyn ChunkStore, window: u16) -> ServeStep {
        if self.next >= self.end {
            return ServeStep::Done;
        }
        let Some(manifest) = store.manifest(&self.name) else {
            return ServeStep::Missing;
        };
        let i = self.next;
        // What is missing of a live stream's newest two segments is still arriving (a
        // viewer re-serving what it downloads): wait for it rather than end the stream.
        let absent = match &manifest {
            Manifest::Live(m) => {
                let seg = i / u64::from(m.segment_chunks.max(1));
                match store.segment_range(&self.name) {
                    Some((newest, _)) if seg + 2 > u64::from(newest) => ServeStep::Waiting,
                    _ => ServeStep::Missing,
                }
            }
            Manifest::File(_) => ServeStep::Missing,
        };
        // (tree, local leaf index, leaf count of that tree, tag)
        let (tree, leaf, shape, tag, wire) = match &manifest {
            Manifest::File(m) => {
                if i >= m.n_chunks() {
                    return ServeStep::Done;
                }
                let Some(shape) = m.shape() else {
                    return ServeStep::Missing;
                };
                let Some(wire) = wire_chunk_nb(i) else {
                    return ServeStep::Missing;
                };
                (0u32, i, shape, None, wire)
            }
            Manifest::Live(m) => {
                let per = u64::from(m.segment_chunks.max(1));
                let Ok(seg) = u32::try_from(i / per) else {
                    return ServeStep::Missing;
                };
                let Some(header) = store.segment(&self.name, seg) else {
                    return match store.segment_range(&self.name) {
                        Some((newest, _)) if seg > newest => ServeStep::Waiting,
                        None => ServeStep::Waiting,
                        _ => ServeStep::Missing,
                    };
                };
                if self.sent_segments.insert(seg) {
                    if self.sent_segments.len() > MAX_SENT {
                        self.sent_segments.clear();
                        self.sent_segments.insert(seg);
                    }
                    return ServeStep::Send {
                        msg: header.into(),
                        data: false,
                    };
                }
                let local = i % per;
                if local >= u64::from(header.n_chunks) {
                    // A short segment: its last chunks do not exist; skip to the next.
                    self.next = (u64::from(seg) + 1) * per;
                    return self.next_msg(store, window);
                }
                let Some(shape) = TreeShape::new(u64::from(header.n_chunks)) else {
                    return ServeStep::Missing;
                };
                let [a, b, c, d, ..] = header.signature;
                let tag = ChunkSignature::new(header.timestamp, [a, b, c, d]);
                (seg, local, shape, Some(tag), m.ring().to_wire(i))
            }
        };
        let file = matches!(manifest, Manifest::File(_));
        for level in (1..=shape.depth()).rev() {
            let Ok(node) = u32::try_from(shape.ancestor(leaf, level)) else {
                return ServeStep::Missing;
            };
            let key = (tree, level, node);
            if self.sent_hashes.contains(&key) || (level == 1 && file && self.covers(&shape, node))
            {
                continue;
            }
            let Some(h) = store.hashes(&self.name, tree, level, node) else {
                return absent;
            };
            self.mark_hash(key);
            return ServeStep::Send {
                msg: h.into(),
                data: false,
            };
        }
        if window == 0 {
            return ServeStep::Blocked;
        }
        let Some(data) = store.chunk(&self.name, i) else {
            return absent;
        };
        let tag = tag.unwrap_or_else(|| {
            let published = match &manifest {
                Manifest::File(m) => m.published,
                Manifest::Live(_) => 0,
            };
            let [a, b, c, d, ..] = leaf_hash(&data);
            ChunkSignature::new(published, [a, b, c, d])
        });
        let Ok(msg) = DbData::new(wire, tag, &data) else {
            return ServeStep::Missing;
        };
        self.next = i + 1;
        ServeStep::Send {
            msg: msg.into(),
            data: true,
        }
    }
}
