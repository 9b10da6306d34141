//! The drive contract between the simulator and a host.
//!
//! These types mirror the core `Node`'s contract (DESIGN.md, "The drive contract") so the
//! core's own types can replace them later without touching the simulator's logic.

use core::fmt;
use std::net::SocketAddr;

pub use onionpeer_core::Instant;

/// A host's name for one of its links. The host assigns ids for links it dials; for a
/// link it accepts, [`SimHost::accept_link`] returns the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// Something the driver tells a host.
#[derive(Debug, Clone, Copy)]
pub enum HostInput<'a> {
    /// The time the host asked to be woken at (or later) has come.
    Timeout(Instant),
    /// A link this host dialed is connected.
    LinkUp {
        /// Current time.
        now: Instant,
        /// The dialed link.
        link: LinkId,
    },
    /// Bytes arrived on a link, in order, in any chunking.
    LinkData {
        /// Current time.
        now: Instant,
        /// The link they arrived on.
        link: LinkId,
        /// The bytes.
        data: &'a [u8],
    },
    /// An established link closed (by the peer, a fault or a crash of the peer).
    LinkClosed {
        /// Current time.
        now: Instant,
        /// The closed link.
        link: LinkId,
        /// True when it ended abortively (reset, crash, partition, fault) rather than by
        /// the peer's orderly close.
        error: bool,
    },
    /// A dial never connected.
    LinkFailed {
        /// Current time.
        now: Instant,
        /// The dialed link.
        link: LinkId,
    },
}

/// Something a host asks of the driver. [`HostOutput::Timeout`] is always the last output
/// of a drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutput<E> {
    /// The link has bytes queued: pull them with [`SimHost::poll_transmit`].
    Transmit(LinkId),
    /// Open a link, named `link` by this host, to `addr`.
    Dial {
        /// The id the host chose for the new link.
        link: LinkId,
        /// Whom to dial.
        addr: SocketAddr,
    },
    /// Close a link: queued bytes are flushed, then the peer sees it closed.
    CloseLink(LinkId),
    /// The host consumed bytes it held back on the link (see [`SimHost::backlog`]): the
    /// peer may send more.
    ReadMore(LinkId),
    /// Something the application should know.
    Event(E),
    /// Wake the host at this instant; nothing more to output until the next input.
    Timeout(Instant),
}

/// A host the simulator can drive: a core `Node`, or a test host.
pub trait SimHost {
    /// The application events the host emits.
    type Event: fmt::Debug;

    /// A peer dialed us from `remote`; returns the id the host gives the new link, or
    /// `None` to refuse it (the dialer's link fails).
    fn accept_link(&mut self, now: Instant, remote: SocketAddr) -> Option<LinkId>;

    /// Feed one input. The driver then drains [`SimHost::poll_output`] until `Timeout`.
    fn handle_input(&mut self, input: HostInput<'_>);

    /// The next output; `Timeout` when there is nothing else to do.
    fn poll_output(&mut self) -> HostOutput<Self::Event>;

    /// Copy up to `buf.len()` queued outbound bytes of `link` into `buf` and return how
    /// many. Fewer than `buf.len()` means the queue is now empty. The driver pulls only
    /// what the link's send window and bandwidth allow, which is the host's backpressure.
    fn poll_transmit(&mut self, link: LinkId, buf: &mut [u8]) -> usize;

    /// Bytes received on `link` that the host holds without having consumed them (its
    /// receive buffer). They count against the sender's window, as a TCP receive window
    /// would, until the host announces [`HostOutput::ReadMore`].
    fn backlog(&self, link: LinkId) -> usize {
        let _ = link;
        0
    }
}
