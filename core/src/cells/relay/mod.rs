//! Relay cells: the header inside a RELAY cell body and every relay message.
//!
//! - [`RelayCell`] encodes a message into a 509-byte body and decodes it back;
//!   [`RawRelayCell`] reads only the header and borrows the data.
//! - [`RelayMsg`] is every message: Tor's ([`Begin`], [`Data`], [`End`], ...) and Peersm's
//!   ([`DbQuery`], [`DbData`], [`DhtFindNode`], ...). Unknown commands round-trip as
//!   [`RelayMsg::Unrecognized`].
//! - The DATA and DB_DATA paths never allocate (inline `heapless` buffers).
//!
//! Every layout is in `core/PROTOCOL.md`.

mod cell;
mod cmd;
mod msg;
mod peersm;
mod signal;
mod tor;

pub use cell::{
    BODY_LEN, CMD_OFFSET, DATA_OFFSET, DIGEST_RANGE, HEADER_LEN, LENGTH_RANGE, MAX_DATA_LEN,
    RECOGNIZED_RANGE, RawRelayCell, RelayBodyBytes, RelayCell, STREAM_ID_RANGE, ZERO_PAD_LEN,
};
pub use cmd::{RelayCmd, StreamId, StreamIdRule};
pub use msg::{RelayBody, RelayMsg};
pub use peersm::{
    ChunkSignature, DbConnected, DbData, DbEnd, DbEndReason, DbFindPeer, DbFoundPeer, DbHashes,
    DbInfo, DbQuery, DbSegment, DbSendme, DhtFindNode, DhtFindValue, DhtFound, DhtPing, DhtStore,
    FoundKind, HashName, MAX_CHUNK_DATA_LEN, MAX_FOUND_PEERS, MAX_HASHES_PER_MSG,
    MAX_QUERY_COUNTER, PeerRecord, Progress,
};
pub use signal::{
    MAX_SIGNAL_FRAGMENT, MAX_SIGNAL_LEN, PeerSignal, SIGNAL_HEADER_LEN, SignalKind, SignalRefusal,
};
pub use tor::{
    Begin, BeginDir, Connected, Data, DropMsg, End, EndReason, Extend2, Extended2, Host, LinkSpec,
    Resolve, Resolved, ResolvedAnswer, ResolvedValue, Sendme, Truncate, Truncated,
};

#[cfg(test)]
mod tests;

/// The peer id carried by Peersm messages: the same 160-bit id as a relay's fingerprint.
pub use crate::crypto::identity::PeerId;

/// The CREATE2/EXTEND2 handshake type (shared with the channel cells).
pub use crate::cells::channel::HandshakeType;
