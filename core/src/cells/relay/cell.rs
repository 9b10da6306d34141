//! The relay cell: the 509-byte body of a RELAY/RELAY_EARLY cell (tor-spec "Relay cells",
//! format v0).
//!
//! ```text
//! 0      command     u8
//! 1..3   recognized  u16   zero when sent; the crypto layer checks it
//! 3..5   stream_id   u16
//! 5..9   digest      [u8;4] filled by the crypto layer
//! 9..11  length      u16   <= 498
//! 11..   data[length], then padding: 4 zero bytes, then random bytes
//! ```

use core::ops::Range;

use rand_core::CryptoRng;

use super::cmd::{RelayCmd, StreamId, StreamIdRule};
use super::msg::RelayMsg;
use crate::codec::{EncodeError, Error, Result, SliceWriter, Writer};

/// Size of a relay cell body (a fixed-size cell's payload).
pub const BODY_LEN: usize = 509;
/// Size of the relay header.
pub const HEADER_LEN: usize = 11;
/// Most data bytes one relay cell carries.
pub const MAX_DATA_LEN: usize = BODY_LEN - HEADER_LEN;
/// Offset of the command byte.
pub const CMD_OFFSET: usize = 0;
/// Bytes of the `recognized` field.
pub const RECOGNIZED_RANGE: Range<usize> = 1..3;
/// Bytes of the stream id.
pub const STREAM_ID_RANGE: Range<usize> = 3..5;
/// Bytes of the digest field.
pub const DIGEST_RANGE: Range<usize> = 5..9;
/// Bytes of the length field.
pub const LENGTH_RANGE: Range<usize> = 9..11;
/// Where the data starts.
pub const DATA_OFFSET: usize = HEADER_LEN;
/// Zero bytes right after the data, before the random padding.
pub const ZERO_PAD_LEN: usize = 4;

/// A relay cell body.
pub type RelayBodyBytes = [u8; BODY_LEN];

/// A decoded relay header with its data borrowed from the body: no allocation, no
/// message parsing. Use it to route a cell before (or instead of) parsing its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRelayCell<'a> {
    /// Command.
    pub cmd: RelayCmd,
    /// Stream, or `None` for a circuit-level cell.
    pub stream_id: Option<StreamId>,
    /// The `length` data bytes.
    pub data: &'a [u8],
}

fn check_stream_id(cmd: RelayCmd, id: Option<StreamId>) -> core::result::Result<(), &'static str> {
    match (cmd.stream_id_rule(), id) {
        (StreamIdRule::Required, None) => Err("relay command needs a stream id"),
        (StreamIdRule::Forbidden, Some(_)) => Err("relay command takes no stream id"),
        _ => Ok(()),
    }
}

impl<'a> RawRelayCell<'a> {
    /// Parse the header of a body the crypto layer recognized. Checks `recognized == 0`,
    /// `length <= 498` and the stream-id rule of the command; ignores the digest and the
    /// padding.
    pub fn decode(body: &'a RelayBodyBytes) -> Result<RawRelayCell<'a>> {
        let [cmd, r0, r1, s0, s1, _, _, _, _, l0, l1, rest @ ..] = body;
        if [*r0, *r1] != [0, 0] {
            return Err(Error::Invalid("relay cell: recognized is not zero"));
        }
        let cmd = RelayCmd(*cmd);
        let stream_id = StreamId::new(u16::from_be_bytes([*s0, *s1]));
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let data = rest
            .get(..len)
            .ok_or(Error::BadLength("relay cell length above 498"))?;
        check_stream_id(cmd, stream_id).map_err(Error::Invalid)?;
        Ok(RawRelayCell {
            cmd,
            stream_id,
            data,
        })
    }

    /// Encode header and data into a body, padding with 4 zero bytes then random bytes.
    pub fn encode<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> core::result::Result<RelayBodyBytes, EncodeError> {
        let mut body = [0u8; BODY_LEN];
        let end = encode_header_and(&mut body, self.cmd, self.stream_id, |w| {
            w.write_all(self.data);
            Ok(())
        })?;
        pad_random(&mut body, end, rng);
        Ok(body)
    }

    /// Parse the message.
    pub fn msg(&self) -> Result<RelayMsg> {
        RelayMsg::decode(self.cmd, self.data)
    }
}

/// Write header and data with `recognized` and `digest` zero; return where the data ends.
fn encode_header_and(
    body: &mut RelayBodyBytes,
    cmd: RelayCmd,
    stream_id: Option<StreamId>,
    data: impl FnOnce(&mut SliceWriter<'_>) -> core::result::Result<(), EncodeError>,
) -> core::result::Result<usize, EncodeError> {
    check_stream_id(cmd, stream_id).map_err(EncodeError::Invalid)?;
    let (head, rest) = body.split_at_mut(HEADER_LEN);
    let mut w = SliceWriter::new(rest);
    data(&mut w)?;
    let len = w
        .finish()
        .map_err(|_| EncodeError::TooLong("relay cell data"))?;
    let mut h = SliceWriter::new(head);
    h.write_u8(cmd.0);
    h.write_u16(0);
    h.write_u16(StreamId::to_wire(stream_id));
    h.write_u32(0);
    h.write_u16(len as u16);
    h.finish()?;
    Ok(HEADER_LEN + len)
}

/// Fill the padding after `end`: zero bytes (already there), then random from `end + 4`.
fn pad_random<R: CryptoRng + ?Sized>(body: &mut RelayBodyBytes, end: usize, rng: &mut R) {
    if let Some(tail) = body.get_mut(end.saturating_add(ZERO_PAD_LEN)..) {
        rng.fill_bytes(tail);
    }
}

/// A relay cell: a message and the stream it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayCell {
    /// Stream, or `None` for a circuit-level message.
    pub stream_id: Option<StreamId>,
    /// The message.
    pub msg: RelayMsg,
}

impl RelayCell {
    /// A cell carrying `msg` on `stream_id`.
    pub fn new(stream_id: Option<StreamId>, msg: impl Into<RelayMsg>) -> RelayCell {
        RelayCell {
            stream_id,
            msg: msg.into(),
        }
    }

    /// The command.
    pub fn cmd(&self) -> RelayCmd {
        self.msg.cmd()
    }

    /// Encode into a body with `recognized` and `digest` zero (for the crypto layer to fill)
    /// and spec padding: 4 zero bytes after the data, then bytes from `rng`.
    pub fn encode<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> core::result::Result<RelayBodyBytes, EncodeError> {
        let mut body = self.encode_zero_padded()?;
        let len = usize::from(u16::from_be_bytes([body[9], body[10]]));
        pad_random(&mut body, HEADER_LEN + len, rng);
        Ok(body)
    }

    /// Encode with all-zero padding (deterministic: tests and known-answer vectors).
    pub fn encode_zero_padded(&self) -> core::result::Result<RelayBodyBytes, EncodeError> {
        let mut body = [0u8; BODY_LEN];
        encode_header_and(&mut body, self.cmd(), self.stream_id, |w| {
            self.msg.encode_body(w)
        })?;
        Ok(body)
    }

    /// Decode a body the crypto layer recognized.
    pub fn decode(body: &RelayBodyBytes) -> Result<RelayCell> {
        let raw = RawRelayCell::decode(body)?;
        Ok(RelayCell {
            stream_id: raw.stream_id,
            msg: raw.msg()?,
        })
    }
}
