//! Circuits: the OP side that builds a path hop by hop, the OR side that relays one hop,
//! and the flow control both share.

pub mod flow;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::Instant;
use crate::cells::channel::{CircId, HandshakeType};
use crate::cells::relay::StreamId;
use crate::crypto::handshake::{FastClientState, NtorClientState};
use crate::crypto::relay::{ClientCircuitCrypto, RelayHopCrypto};
use crate::node::api::{CircuitHandle, ConnId, FirstHop, RelayTarget, StreamHandle};
use flow::{RecvWindow, SendWindow, SendmeTags, WindowParams};

/// The node-wide key of a circuit (client or relay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct CircKey(pub u64);

/// One end of a circuit on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CircEnd {
    pub conn: ConnId,
    pub id: CircId,
}

/// Circuit-level flow control of one endpoint (OP or exit).
#[derive(Debug, Clone)]
pub(crate) struct CircFlow {
    pub send: SendWindow,
    pub recv: RecvWindow,
    /// SENDME v1 tags we expect back, oldest first.
    pub tags: SendmeTags,
}

impl CircFlow {
    pub fn new() -> Self {
        CircFlow {
            send: SendWindow::new(WindowParams::CIRCUIT),
            recv: RecvWindow::new(WindowParams::CIRCUIT),
            tags: SendmeTags::new(),
        }
    }
}

/// A handshake in flight with the hop being added.
pub(crate) enum PendingHop {
    Fast(FastClientState),
    Ntor(NtorClientState),
}

impl core::fmt::Debug for PendingHop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PendingHop::Fast(_) => "PendingHop::Fast",
            PendingHop::Ntor(_) => "PendingHop::Ntor",
        })
    }
}

/// A circuit this node built (the OP side).
pub(crate) struct ClientCircuit {
    pub handle: CircuitHandle,
    /// The first hop's link (it may still be connecting).
    pub link: ConnId,
    /// Our circuit id on that link, once CREATE is sent.
    pub circ_id: Option<CircId>,
    pub path: Vec<RelayTarget>,
    pub first_hop: FirstHop,
    pub crypto: ClientCircuitCrypto,
    /// Set while a hop is being added.
    pub pending: Option<PendingHop>,
    /// The build deadline; `None` once built.
    pub deadline: Option<Instant>,
    /// RELAY_EARLY cells we may still send (tor-spec: 8 per circuit).
    pub relay_early_left: u8,
    pub flow: CircFlow,
    /// Streams on this circuit, by wire stream id.
    pub streams: BTreeMap<StreamId, StreamHandle>,
}

impl ClientCircuit {
    pub fn is_built(&self) -> bool {
        self.deadline.is_none()
    }

    /// The hop streams and data go to: the last one.
    pub fn last_hop(&self) -> crate::crypto::relay::HopNum {
        let n = self.crypto.n_hops().saturating_sub(1);
        crate::crypto::relay::HopNum(u8::try_from(n).unwrap_or(u8::MAX))
    }
}

/// The next hop of a relayed circuit.
#[derive(Debug)]
pub(crate) enum NextHop {
    /// This node is the last hop.
    None,
    /// Waiting for a link to the next relay; then send CREATE2 with this handshake.
    AwaitingLink {
        conn: ConnId,
        htype: HandshakeType,
        hdata: Vec<u8>,
    },
    /// CREATE2 sent; waiting for CREATED2.
    AwaitingCreated(CircEnd),
    /// Extended: cells are forwarded to this end.
    Open(CircEnd),
}

/// A circuit this node relays (the OR side): its own crypto layer, the previous hop and
/// maybe a next hop, and at the last hop, exit streams.
pub(crate) struct RelayCircuit {
    pub prev: CircEnd,
    pub next: NextHop,
    pub crypto: RelayHopCrypto,
    /// RELAY_EARLY cells received from the client side.
    pub relay_early_seen: u8,
    pub flow: CircFlow,
    /// Exit or directory streams, by wire stream id.
    pub streams: BTreeMap<StreamId, ConnId>,
}

/// A circuit this node knows.
/// Boxed: a relay circuit's crypto state is over a kilobyte, and the map of circuits
/// should not pay that for every entry kind.
pub(crate) enum Circuit {
    Client(alloc::boxed::Box<ClientCircuit>),
    Relay(alloc::boxed::Box<RelayCircuit>),
}
