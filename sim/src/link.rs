//! Links: reliable, ordered byte streams between two hosts, and the bandwidth math.
//!
//! Timing of one chunk of `n` bytes sent at `t` from host A to host B:
//! it waits for A's uplink (`Pipe::reserve`), is serialised at A's uplink rate, travels
//! the path's latency plus a jitter draw, then waits for and is serialised at B's downlink.
//! B's downlink is reserved when the chunk is sent, not when it arrives: an approximation
//! that keeps the model one pass and deterministic. A chunk is never delivered before the
//! previous chunk of its direction, so jitter never reorders a stream.

use std::collections::VecDeque;
use std::time::Duration;

use crate::host::{Instant, LinkId};
use crate::topology::Path;

/// Time to serialise `bytes` at `bytes_per_sec` (0 means unlimited: no delay).
pub fn serialisation_delay(bytes: usize, bytes_per_sec: u64) -> Duration {
    if bytes_per_sec == 0 {
        return Duration::ZERO;
    }
    let nanos = (bytes as u128 * 1_000_000_000).div_ceil(u128::from(bytes_per_sec));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// One host's uplink or downlink: a FIFO server of fixed capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pipe {
    /// Capacity in bytes/s; 0 means unlimited.
    pub bytes_per_sec: u64,
    /// When the pipe finishes what it has been given so far.
    pub busy_until: Instant,
}

impl Pipe {
    /// An idle pipe of the given capacity.
    pub fn new(bytes_per_sec: u64) -> Pipe {
        Pipe {
            bytes_per_sec,
            busy_until: Instant::ZERO,
        }
    }

    /// Queue `bytes` that reach the pipe at `at`; returns when their last byte leaves it.
    pub fn reserve(&mut self, at: Instant, bytes: usize) -> Instant {
        let start = at.max(self.busy_until);
        self.busy_until = start + serialisation_delay(bytes, self.bytes_per_sec);
        self.busy_until
    }
}

/// One end of a link: end 0 dialed, end 1 accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct End {
    /// Index of the host in the world.
    pub host: usize,
    /// The host's incarnation when the link was made (a restart makes a new one).
    pub generation: u32,
    /// The host's id for the link; `None` until an acceptor has accepted.
    pub local: Option<LinkId>,
    /// Whether this end still takes part: false once it closed or was told of a close.
    pub open: bool,
}

/// Traffic from one end to the other.
#[derive(Debug, Default)]
pub(crate) struct Direction {
    /// Bytes pulled from the sender and not yet delivered: bounded by the send window.
    pub in_flight: usize,
    /// Whether the sender said it has bytes queued that we have not pulled.
    pub pending: bool,
    /// When the last chunk will be delivered; later chunks never arrive before it.
    pub last_arrival: Instant,
    /// Held by a scripted `hold` fault.
    pub held: bool,
    /// Chunks that arrived while held (by `hold` or a partition), delivered in order on
    /// release.
    pub buffer: VecDeque<Vec<u8>>,
}

/// A link between two hosts.
#[derive(Debug)]
pub(crate) struct Link {
    /// Dialer (0) and acceptor (1).
    pub ends: [End; 2],
    /// Whether the dialer has been told the link is up.
    pub up: bool,
    /// `dirs[e]` carries bytes sent by end `e`.
    pub dirs: [Direction; 2],
    /// The network path between the hosts.
    pub path: Path,
}

impl Link {
    /// Whether end `e` may send: it is open, has an id, and (for the dialer) is up.
    pub fn writable(&self, e: usize) -> bool {
        let end = &self.ends[e];
        end.open && end.local.is_some() && (e == 1 || self.up)
    }

    /// Whether both ends are done with the link.
    pub fn finished(&self) -> bool {
        !self.ends[0].open && !self.ends[1].open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialisation() {
        assert_eq!(
            serialisation_delay(1_000_000, 1_000_000),
            Duration::from_secs(1)
        );
        assert_eq!(serialisation_delay(1, 3), Duration::from_nanos(333_333_334));
        assert_eq!(serialisation_delay(123, 0), Duration::ZERO);
    }

    #[test]
    fn pipe_queues_fifo() {
        let mut p = Pipe::new(1000);
        let t0 = Instant::ZERO;
        assert_eq!(p.reserve(t0, 500), Instant::from_millis(500));
        // Arrives while busy: waits.
        assert_eq!(
            p.reserve(Instant::from_millis(100), 500),
            Instant::from_millis(1000)
        );
        // Arrives after idle: starts at once.
        assert_eq!(
            p.reserve(Instant::from_millis(3000), 100),
            Instant::from_millis(3100)
        );
    }
}
