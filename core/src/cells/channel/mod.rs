//! Channel cells: the fixed and variable-length cells a link carries, and the framer.
//!
//! - [`types`]: [`CircId`] and the open integer newtypes ([`ChanCmd`], [`CertType`],
//!   [`AuthMethod`], [`HandshakeType`], [`DestroyReason`], [`PaddingNegotiateCmd`]).
//! - [`msg`]: one struct per message and [`ChanMsg`] over them.
//! - [`codec`]: [`ChannelCodec`], which frames [`ChanCell`]s on a byte stream for link
//!   protocols 3, 4 and 5.

pub mod codec;
pub mod msg;
pub mod types;

pub use codec::{
    ChanCell, ChannelCodec, LINK_VERSIONS, MAX_VAR_PAYLOAD_LEN, UnsupportedLinkVersion,
};
pub use msg::{
    AuthChallenge, Authenticate, CertEntry, Certs, ChanMsg, Create, Create2, CreateFast, Created,
    Created2, CreatedFast, Destroy, FAST_LEN, Netinfo, Padding, PaddingNegotiate, Relay,
    RelayCellBody, RelayEarly, TAP_C_HANDSHAKE_LEN, TAP_S_HANDSHAKE_LEN, Unrecognized, Versions,
    Vpadding,
};
pub use types::{
    AuthMethod, CertType, ChanCmd, CircId, CircIdRule, DestroyReason, HandshakeType,
    PaddingNegotiateCmd,
};

/// Length of the body of a fixed-length cell.
pub const CELL_BODY_LEN: usize = 509;

/// Length of a fixed-length cell with a 4-byte circuit id (link v4+); v3 cells are 512.
pub const MAX_FIXED_CELL_LEN: usize = 4 + 1 + CELL_BODY_LEN;

#[cfg(test)]
mod tests;
