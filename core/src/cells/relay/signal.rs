//! PEER_SIGNAL: one fragment of a WebRTC offer or answer (SDP) carried between two peers
//! through a peer both share a circuit with (the seed's "peer introduction"). Layout and
//! rules in `core/PROTOCOL.md`, section 3.1.

use super::MAX_DATA_LEN;
use super::cmd::RelayCmd;
use super::msg::{RelayBody, decode_all};
use crate::codec::{EncodeError, Error, Result, Writer};
use crate::crypto::identity::PeerId;

/// Bytes before the fragment data: kind, session, to, from, total, offset.
pub const SIGNAL_HEADER_LEN: usize = 1 + 4 + 20 + 20 + 2 + 2;

/// Most SDP bytes one PEER_SIGNAL carries (498 − 49).
pub const MAX_SIGNAL_FRAGMENT: usize = MAX_DATA_LEN - SIGNAL_HEADER_LEN;

/// Largest whole SDP (sum of the fragments): an offer with one data channel and a few
/// host candidates is 500–1,500 bytes; 8 KiB leaves room for many candidates while
/// keeping every reassembly buffer small (19 cells at most).
pub const MAX_SIGNAL_LEN: usize = 8192;

/// What a signal carries (an open set: unknown values round-trip, nodes drop them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignalKind(pub u8);

impl SignalKind {
    /// An SDP offer: the sender wants a direct link to the target.
    pub const OFFER: SignalKind = SignalKind(0);
    /// An SDP answer to an offer with the same session.
    pub const ANSWER: SignalKind = SignalKind(1);
    /// The offer with the same session will not be answered: sent back to the offerer
    /// by the introducer (or the target) at once, so the offerer need not wait out its
    /// timeout. `from` is the offer's target, `data` one [`SignalRefusal`] byte.
    pub const REFUSED: SignalKind = SignalKind(2);
}

/// Why an offer was refused: the one data byte of a [`SignalKind::REFUSED`] signal (an
/// open set: unknown values round-trip and mean "refused").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignalRefusal(pub u8);

impl SignalRefusal {
    /// The introducer knows no record of the target, or cannot open a circuit to it.
    pub const NO_ROUTE: SignalRefusal = SignalRefusal(0);
    /// The offerer sent more offers than the introducer's per-offerer rate allows.
    pub const RATE_LIMITED: SignalRefusal = SignalRefusal(1);
    /// The introducer's table of introductions in progress is full.
    pub const BUSY: SignalRefusal = SignalRefusal(2);
    /// The target got the offer and cannot answer it (no WebRTC endpoint, a bad SDP).
    pub const UNANSWERED: SignalRefusal = SignalRefusal(3);

    /// The reason a REFUSED signal's reassembled data carries: exactly one byte.
    pub fn decode(data: &[u8]) -> Result<SignalRefusal> {
        match data {
            [b] => Ok(SignalRefusal(*b)),
            _ => Err(Error::BadLength("PEER_SIGNAL REFUSED: one reason byte")),
        }
    }

    /// The data of a REFUSED signal.
    pub fn encode(self) -> [u8; 1] {
        [self.0]
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            SignalRefusal::NO_ROUTE => "no route to the target",
            SignalRefusal::RATE_LIMITED => "rate limited",
            SignalRefusal::BUSY => "introducer busy",
            SignalRefusal::UNANSWERED => "target cannot answer",
            _ => "refused",
        }
    }
}

/// One fragment of an SDP offer or answer from `from` to `to`.
///
/// An SDP longer than [`MAX_SIGNAL_FRAGMENT`] is sent as several PEER_SIGNAL cells with
/// the same `kind`, `session`, `to`, `from` and `total`, in order of `offset`, on one
/// circuit (circuits keep order, so a receiver only appends). Inline buffer: no
/// allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSignal {
    /// Offer or answer.
    pub kind: SignalKind,
    /// Chosen by the offerer; the answer repeats it.
    pub session: u32,
    /// The peer the SDP is for.
    pub to: PeerId,
    /// The peer that wrote the SDP (a claim: see PROTOCOL.md 3.1, "Trust").
    pub from: PeerId,
    /// Length of the whole SDP (1..=[`MAX_SIGNAL_LEN`]).
    pub total: u16,
    /// Where this fragment starts in the SDP.
    pub offset: u16,
    /// The fragment (1..=[`MAX_SIGNAL_FRAGMENT`] bytes, ending at or before `total`).
    pub data: heapless::Vec<u8, MAX_SIGNAL_FRAGMENT>,
}

impl PeerSignal {
    /// Check the length rules shared by the decoder and the encoder.
    fn check(total: u16, offset: u16, len: usize) -> core::result::Result<(), &'static str> {
        let total = usize::from(total);
        if total == 0 || total > MAX_SIGNAL_LEN {
            return Err("PEER_SIGNAL: total must be 1..=8192");
        }
        if len == 0 {
            return Err("PEER_SIGNAL: empty fragment");
        }
        if usize::from(offset) + len > total {
            return Err("PEER_SIGNAL: fragment runs past total");
        }
        Ok(())
    }

    /// The fragments of `sdp` (1..=8192 bytes), in order.
    pub fn fragments(
        kind: SignalKind,
        session: u32,
        to: PeerId,
        from: PeerId,
        sdp: &[u8],
    ) -> core::result::Result<impl Iterator<Item = PeerSignal>, EncodeError> {
        if sdp.is_empty() || sdp.len() > MAX_SIGNAL_LEN {
            return Err(EncodeError::TooLong(
                "PEER_SIGNAL: SDP must be 1..=8192 bytes",
            ));
        }
        let total = sdp.len() as u16;
        Ok(sdp
            .chunks(MAX_SIGNAL_FRAGMENT)
            .enumerate()
            .map(move |(i, chunk)| PeerSignal {
                kind,
                session,
                to,
                from,
                total,
                offset: (i * MAX_SIGNAL_FRAGMENT) as u16,
                // A chunk is at most MAX_SIGNAL_FRAGMENT long, so it always fits.
                data: heapless::Vec::from_slice(chunk).unwrap_or_default(),
            }))
    }

    /// This is the last fragment of its SDP.
    pub fn is_last(&self) -> bool {
        usize::from(self.offset) + self.data.len() == usize::from(self.total)
    }
}

impl RelayBody for PeerSignal {
    const CMD: RelayCmd = RelayCmd::PEER_SIGNAL;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let kind = SignalKind(r.take_u8()?);
            let session = r.take_u32()?;
            let to = PeerId(r.take_array()?);
            let from = PeerId(r.take_array()?);
            let total = r.take_u16()?;
            let offset = r.take_u16()?;
            let rest = r.take_rest();
            PeerSignal::check(total, offset, rest.len()).map_err(Error::BadLength)?;
            let data = heapless::Vec::from_slice(rest)
                .map_err(|_| Error::BadLength("PEER_SIGNAL: fragment too long"))?;
            Ok(PeerSignal {
                kind,
                session,
                to,
                from,
                total,
                offset,
                data,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError> {
        PeerSignal::check(self.total, self.offset, self.data.len())
            .map_err(EncodeError::Invalid)?;
        w.write_u8(self.kind.0);
        w.write_u32(self.session);
        w.write_all(&self.to.0);
        w.write_all(&self.from.0);
        w.write_u16(self.total);
        w.write_u16(self.offset);
        w.write_all(&self.data);
        Ok(())
    }
}
