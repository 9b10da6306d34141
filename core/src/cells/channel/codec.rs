//! Framing channel cells on a byte stream (tor-spec "Cell packing").
//!
//! ```text
//! fixed:    CircID [2 or 4] | Command [1] | Body [509]
//! variable: CircID [2 or 4] | Command [1] | Length [2] | Payload [Length]
//! ```
//!
//! The circuit id is 2 bytes before the link version is known (VERSIONS cells) and on
//! link v3, 4 bytes from v4 on.

use core::fmt;

use super::msg::ChanMsg;
use super::types::{ChanCmd, CircId};
use super::{CELL_BODY_LEN, MAX_FIXED_CELL_LEN};
use crate::codec::{EncodeError, Error, Reader, Result, SliceWriter, Writer};

/// The link protocol versions this framer (and onionpeer) speaks.
pub const LINK_VERSIONS: [u16; 3] = [3, 4, 5];

/// Largest variable-cell payload: its length field is a u16.
pub const MAX_VAR_PAYLOAD_LEN: usize = u16::MAX as usize;

/// A channel cell: a message and the circuit it belongs to (`None` for link messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChanCell {
    /// The circuit, or `None` (zero on the wire) for a link-level cell.
    pub circ_id: Option<CircId>,
    /// The message.
    pub msg: ChanMsg,
}

impl ChanCell {
    /// A cell carrying `msg` on circuit `circ_id`.
    pub fn new(circ_id: Option<CircId>, msg: impl Into<ChanMsg>) -> Self {
        ChanCell {
            circ_id,
            msg: msg.into(),
        }
    }
}

/// A link version the framer does not support (not in [`LINK_VERSIONS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsupportedLinkVersion(pub u16);

impl fmt::Display for UnsupportedLinkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported link protocol version {}", self.0)
    }
}

impl core::error::Error for UnsupportedLinkVersion {}

/// Cuts a link's byte stream into [`ChanCell`]s and encodes cells for it.
///
/// It starts either negotiating (only VERSIONS cells, with 2-byte circuit ids, in either
/// direction) or at a known link version. The link handshake calls
/// [`ChannelCodec::set_link_version`] once VERSIONS cells have been exchanged; bytes
/// after the VERSIONS cell in the same buffer are then decoded at the new version, since
/// [`ChannelCodec::decode`] takes one cell at a time.
///
/// Once a version is set, every cell (VERSIONS included, as in tor) uses that version's
/// circuit id width; a VERSIONS cell after negotiation is the link handshake's error to
/// report, not the framer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelCodec {
    link_version: Option<u16>,
}

impl ChannelCodec {
    /// A framer for a link whose version is not negotiated yet.
    pub const fn negotiating() -> Self {
        ChannelCodec { link_version: None }
    }

    /// A framer for link version `v`.
    pub fn new(v: u16) -> core::result::Result<Self, UnsupportedLinkVersion> {
        let mut c = Self::negotiating();
        c.set_link_version(v)?;
        Ok(c)
    }

    /// Switch to link version `v`, once negotiated.
    pub fn set_link_version(&mut self, v: u16) -> core::result::Result<(), UnsupportedLinkVersion> {
        if !LINK_VERSIONS.contains(&v) {
            return Err(UnsupportedLinkVersion(v));
        }
        self.link_version = Some(v);
        Ok(())
    }

    /// The negotiated link version, or `None` while negotiating.
    pub fn link_version(&self) -> Option<u16> {
        self.link_version
    }

    /// Width of the circuit id field: 2 while negotiating and for v3, 4 from v4.
    pub fn circ_id_len(&self) -> usize {
        match self.link_version {
            Some(v) if v >= 4 => 4,
            _ => 2,
        }
    }

    /// Length of a fixed cell on this link: 512 (v3, negotiating) or 514 (v4+).
    pub fn fixed_cell_len(&self) -> usize {
        self.circ_id_len() + 1 + CELL_BODY_LEN
    }

    /// Decode the first cell of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a cell (keep the bytes, read
    /// more), or the cell and how many bytes of `buf` it used. Any error means the link
    /// is broken (a malformed cell, a circuit id the command forbids, or anything but
    /// VERSIONS while negotiating) and it should be closed. A cell never needs more than
    /// `circ_id_len() + 3 + 65535` bytes, so the caller's buffer stays bounded.
    pub fn decode(&self, buf: &[u8]) -> Result<Option<(ChanCell, usize)>> {
        match self.decode_inner(buf) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Incomplete { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn decode_inner(&self, buf: &[u8]) -> Result<(ChanCell, usize)> {
        let mut r = Reader::new(buf);
        let raw_id = if self.circ_id_len() == 2 {
            u32::from(r.take_u16()?)
        } else {
            r.take_u32()?
        };
        let circ_id = CircId::new(raw_id);
        let cmd = ChanCmd(r.take_u8()?);
        if self.link_version.is_none() && cmd != ChanCmd::VERSIONS {
            return Err(Error::Invalid(
                "expected a VERSIONS cell before the link version is known",
            ));
        }
        let body = if cmd.is_var_len() {
            r.take_u16_prefixed()?
        } else {
            r.take(CELL_BODY_LEN)?
        };
        // From here the cell is complete: nothing below may report Incomplete.
        if !cmd.allows_circ_id(circ_id) {
            return Err(Error::Invalid("circuit id not allowed for this command"));
        }
        let msg = ChanMsg::decode(cmd, body)?;
        Ok((ChanCell { circ_id, msg }, r.consumed()))
    }

    /// Check that `cell` may be sent on this link, and write its header (circuit id and
    /// command) to `w`.
    fn write_header<W: Writer + ?Sized>(
        &self,
        cell: &ChanCell,
        w: &mut W,
    ) -> core::result::Result<(), EncodeError> {
        let cmd = cell.msg.cmd();
        if self.link_version.is_none() && cmd != ChanCmd::VERSIONS {
            return Err(EncodeError::Invalid(
                "only VERSIONS may be sent before the link version is known",
            ));
        }
        if !cmd.allows_circ_id(cell.circ_id) {
            return Err(EncodeError::Invalid(
                "circuit id not allowed for this command",
            ));
        }
        let raw = CircId::raw(cell.circ_id);
        if self.circ_id_len() == 2 {
            let raw = u16::try_from(raw)
                .map_err(|_| EncodeError::Invalid("circuit id wider than 2 bytes"))?;
            w.write_u16(raw);
        } else {
            w.write_u32(raw);
        }
        w.write_u8(cmd.0);
        Ok(())
    }

    /// Append the encoding of `cell` to `w`: a fixed cell padded to its full length, or a
    /// variable cell with its length. Nothing is written when encoding fails.
    ///
    /// Fixed cells are built on the stack; nothing here allocates unless `w` does.
    pub fn encode<W: Writer + ?Sized>(
        &self,
        cell: &ChanCell,
        w: &mut W,
    ) -> core::result::Result<(), EncodeError> {
        if cell.msg.cmd().is_var_len() {
            // Measure first, so a failure leaves `w` untouched and the length is known.
            let mut count = CountingWriter(0);
            self.write_header(cell, &mut count)?;
            cell.msg.encode_body(&mut count)?;
            let payload_len = count.0 - self.circ_id_len() - 1;
            let len = u16::try_from(payload_len)
                .map_err(|_| EncodeError::TooLong("variable cell payload"))?;
            self.write_header(cell, w)?;
            w.write_u16(len);
            cell.msg.encode_body(w)
        } else {
            let mut buf = [0u8; MAX_FIXED_CELL_LEN];
            let n = self.encode_fixed(cell, &mut buf)?;
            w.write_all(&buf[..n]);
            Ok(())
        }
    }

    /// Encode a fixed-length cell into `out` without allocating; returns its length
    /// ([`ChannelCodec::fixed_cell_len`]). Fails for variable-length commands.
    pub fn encode_fixed(
        &self,
        cell: &ChanCell,
        out: &mut [u8; MAX_FIXED_CELL_LEN],
    ) -> core::result::Result<usize, EncodeError> {
        if cell.msg.cmd().is_var_len() {
            return Err(EncodeError::Invalid(
                "variable-length command in a fixed cell",
            ));
        }
        let total = self.fixed_cell_len();
        let out = &mut out[..total];
        let mut w = SliceWriter::new(out);
        self.write_header(cell, &mut w)?;
        cell.msg.encode_body(&mut w)?;
        let used = w
            .finish()
            .map_err(|_| EncodeError::TooLong("fixed cell body"))?;
        // Zero the padding: `out` may hold an earlier cell.
        out[used..].fill(0);
        Ok(total)
    }

    /// Encode `cell` into a fresh vector.
    pub fn encode_to_vec(
        &self,
        cell: &ChanCell,
    ) -> core::result::Result<alloc::vec::Vec<u8>, EncodeError> {
        let mut v = alloc::vec::Vec::new();
        self.encode(cell, &mut v)?;
        Ok(v)
    }
}

/// A writer that only counts, to learn a variable cell's length before writing it.
struct CountingWriter(usize);

impl Writer for CountingWriter {
    fn write_all(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
    fn write_zeros(&mut self, n: usize) {
        self.0 = self.0.saturating_add(n);
    }
}
