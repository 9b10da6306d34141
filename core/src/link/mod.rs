//! Links: one ordered byte stream to another node, framed into channel cells, with the
//! handshake that opens it and the bounded queue of bytes waiting to be sent.

pub mod handshake;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;

use rand_core::Rng;

use crate::Instant;
use crate::cells::channel::{ChanCell, ChannelCodec, CircId, MAX_FIXED_CELL_LEN};
use crate::codec::EncodeError;
use crate::crypto::identity::PeerId;
use crate::node::api::LinkBinding;
pub use handshake::{HandshakeContext, HandshakeError, LinkHandshake, LinkOpened};

/// Where a link stands.
#[derive(Debug)]
pub(crate) enum LinkState {
    /// We asked the runtime to connect; no transport yet.
    Connecting,
    /// The transport is up; the Tor handshake is running.
    Handshaking(LinkHandshake),
    /// Open: circuits may use it.
    Open,
}

/// One link.
#[derive(Debug)]
pub(crate) struct Link {
    /// True when we opened the transport (and use circuit ids with the high bit set).
    pub initiator: bool,
    pub state: LinkState,
    pub codec: ChannelCodec,
    pub binding: LinkBinding,
    pub remote: Option<SocketAddr>,
    /// The identity the peer must prove (initiator), then the one it proved.
    pub peer_id: Option<PeerId>,
    /// Bytes received that do not yet make a whole cell (at most one cell's worth).
    pub inbuf: Vec<u8>,
    /// Bytes waiting for the runtime to take them.
    pub outbuf: VecDeque<u8>,
    /// Whether `Output::Transmit` was emitted since the runtime last drained the queue.
    pub transmit_announced: bool,
    pub deadline: Option<Instant>,
    /// Circuits on this link, by raw circuit id.
    pub n_circuits: usize,
    /// When a cell last went either way (for closing idle links).
    pub last_active: Instant,
    /// When the idle check of an open link is due (`Limits::link_idle_timeout`).
    pub idle_check: Option<Instant>,
}

impl Link {
    pub fn new(initiator: bool, remote: Option<SocketAddr>, peer_id: Option<PeerId>) -> Link {
        Link {
            initiator,
            state: LinkState::Connecting,
            codec: ChannelCodec::negotiating(),
            binding: LinkBinding::default(),
            remote,
            peer_id,
            inbuf: Vec::new(),
            outbuf: VecDeque::new(),
            transmit_announced: false,
            deadline: None,
            n_circuits: 0,
            last_active: Instant::ZERO,
            idle_check: None,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, LinkState::Open)
    }

    /// Frame `cell` onto the send queue, refusing (and queueing nothing) when the queue
    /// would exceed `limit` bytes. VERSIONS cells always use 2-byte circuit ids.
    pub fn queue_cell(&mut self, cell: &ChanCell, limit: usize) -> Result<(), QueueError> {
        let codec = if cell.msg.cmd() == crate::cells::channel::ChanCmd::VERSIONS {
            ChannelCodec::negotiating()
        } else {
            self.codec
        };
        let mut fixed = [0u8; MAX_FIXED_CELL_LEN];
        if cell.msg.cmd().is_var_len() {
            let bytes = codec.encode_to_vec(cell).map_err(QueueError::Encode)?;
            self.push(&bytes, limit)
        } else {
            let n = codec
                .encode_fixed(cell, &mut fixed)
                .map_err(QueueError::Encode)?;
            self.push(&fixed[..n], limit)
        }
    }

    fn push(&mut self, bytes: &[u8], limit: usize) -> Result<(), QueueError> {
        if self.outbuf.len() + bytes.len() > limit {
            return Err(QueueError::Full);
        }
        self.outbuf.extend(bytes);
        Ok(())
    }

    /// Room left in the send queue.
    pub fn room(&self, limit: usize) -> usize {
        limit.saturating_sub(self.outbuf.len())
    }

    /// A fresh circuit id for a circuit we create on this link: the initiator of the
    /// link uses ids with the high bit set (tor-spec, link v4+), the responder ids
    /// without, so the two ends never collide.
    pub fn fresh_circ_id<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        in_use: impl Fn(CircId) -> bool,
    ) -> Option<CircId> {
        let wide = self.codec.circ_id_len() == 4;
        for _ in 0..64 {
            let r = rng.next_u32();
            let raw = if wide {
                if self.initiator {
                    r | 0x8000_0000
                } else {
                    r & 0x7fff_ffff
                }
            } else {
                let r = r & 0xffff;
                if self.initiator {
                    r | 0x8000
                } else {
                    r & 0x7fff
                }
            };
            if let Some(id) = CircId::new(raw)
                && !in_use(id)
            {
                return Some(id);
            }
        }
        None
    }

    /// Whether the peer may create a circuit with this id: its ids carry the high bit
    /// exactly when it initiated the link.
    pub fn peer_may_use(&self, id: CircId) -> bool {
        let high = if self.codec.circ_id_len() == 4 {
            0x8000_0000
        } else {
            0x8000
        };
        let peer_initiated = !self.initiator;
        (u32::from(id) & high != 0) == peer_initiated
    }
}

/// Why a cell could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// The send queue is full.
    Full,
    /// The cell cannot be encoded (a bug or an oversized message).
    Encode(EncodeError),
}
