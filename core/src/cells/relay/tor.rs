//! Tor's relay messages (tor-spec "Relay cells", "Opening streams", "Closing streams",
//! "Flow control", "Extending a circuit", "Remote hostname lookup").

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::MAX_DATA_LEN;
use super::cmd::RelayCmd;
use super::msg::{RelayBody, decode_all};
use crate::cells::channel::{DestroyReason, HandshakeType};
use crate::codec::{EncodeError, Error, Reader, Result, Writer};

type EncResult = core::result::Result<(), EncodeError>;

/// The host part of a BEGIN target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name (resolved by the exit). Never empty, never contains `:` or NUL.
    Name(String),
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address, written in brackets on the wire.
    Ipv6(Ipv6Addr),
}

/// Open a stream to `host:port` at the exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    /// Where to connect.
    pub host: Host,
    /// TCP port.
    pub port: u16,
    /// The optional FLAGS word (bit 0: IPv6 ok, bit 1: IPv4 not ok, bit 2: IPv6 preferred);
    /// `None` when absent, so absence round-trips.
    pub flags: Option<u32>,
}

impl Begin {
    /// FLAGS bit: the client accepts IPv6 addresses.
    pub const IPV6_OK: u32 = 1 << 0;
    /// FLAGS bit: the client does not accept IPv4 addresses.
    pub const IPV4_NOT_OK: u32 = 1 << 1;
    /// FLAGS bit: the client prefers IPv6.
    pub const IPV6_PREFERRED: u32 = 1 << 2;
}

fn parse_port(s: &str) -> Result<u16> {
    // u16::from_str would take "+80"; the spec's port is plain decimal.
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid("BEGIN: bad port"));
    }
    s.parse().map_err(|_| Error::Invalid("BEGIN: bad port"))
}

fn parse_addrport(s: &str) -> Result<(Host, u16)> {
    let (host, port) = s.rsplit_once(':').ok_or(Error::Invalid("BEGIN: no port"))?;
    let port = parse_port(port)?;
    let host = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or(Error::Invalid("BEGIN: bad IPv6"))?;
        Host::Ipv6(
            inner
                .parse()
                .map_err(|_| Error::Invalid("BEGIN: bad IPv6"))?,
        )
    } else if let Ok(a) = host.parse::<Ipv4Addr>() {
        Host::Ipv4(a)
    } else {
        if host.is_empty() || host.contains([':', '[', ']']) {
            return Err(Error::Invalid("BEGIN: bad hostname"));
        }
        Host::Name(host.into())
    };
    Ok((host, port))
}

/// Read a NUL-terminated UTF-8 string.
fn take_nul_str<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str> {
    let rest = r.peek_rest();
    let n = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(Error::Invalid(what))?;
    let s = core::str::from_utf8(r.take(n)?).map_err(|_| Error::Invalid(what))?;
    r.advance(1)?;
    Ok(s)
}

impl RelayBody for Begin {
    const CMD: RelayCmd = RelayCmd::BEGIN;
    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let (host, port) = parse_addrport(take_nul_str(&mut r, "BEGIN: unterminated ADDRPORT")?)?;
        // Tor reads FLAGS when four bytes follow and ignores anything after them.
        let flags = if r.remaining() >= 4 {
            Some(r.take_u32()?)
        } else {
            None
        };
        Ok(Begin { host, port, flags })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        let mut s = String::new();
        let res = match &self.host {
            Host::Name(n) => {
                if n.is_empty() || n.contains([':', '[', ']', '\0']) {
                    return Err(EncodeError::Invalid("BEGIN: bad hostname"));
                }
                write!(s, "{n}:{}", self.port)
            }
            Host::Ipv4(a) => write!(s, "{a}:{}", self.port),
            Host::Ipv6(a) => write!(s, "[{a}]:{}", self.port),
        };
        res.map_err(|_| EncodeError::Invalid("BEGIN: formatting"))?;
        w.write_all(s.as_bytes());
        w.write_u8(0);
        if let Some(f) = self.flags {
            w.write_u32(f);
        }
        Ok(())
    }
}

/// Open a stream to the relay's own directory service. The body is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BeginDir;

impl RelayBody for BeginDir {
    const CMD: RelayCmd = RelayCmd::BEGIN_DIR;
    fn decode_body(_body: &[u8]) -> Result<Self> {
        // Tor ignores the body.
        Ok(BeginDir)
    }
    fn encode_body<W: Writer + ?Sized>(&self, _w: &mut W) -> EncResult {
        Ok(())
    }
}

/// Stream bytes: up to 498 per cell, held inline so the DATA path never allocates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Data {
    /// The payload.
    pub data: heapless::Vec<u8, MAX_DATA_LEN>,
}

impl Data {
    /// DATA carrying `bytes`; fails when they do not fit in one cell.
    pub fn new(bytes: &[u8]) -> core::result::Result<Data, EncodeError> {
        heapless::Vec::from_slice(bytes)
            .map(|data| Data { data })
            .map_err(|_| EncodeError::TooLong("DATA payload"))
    }
}

impl RelayBody for Data {
    const CMD: RelayCmd = RelayCmd::DATA;
    fn decode_body(body: &[u8]) -> Result<Self> {
        heapless::Vec::from_slice(body)
            .map(|data| Data { data })
            .map_err(|_| Error::BadLength("DATA payload"))
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_all(&self.data);
        Ok(())
    }
}

/// Why a stream ended (tor-spec "Closing streams"); an open set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndReason(pub u8);

impl EndReason {
    /// Catch-all.
    pub const MISC: EndReason = EndReason(1);
    /// Hostname lookup failed.
    pub const RESOLVEFAILED: EndReason = EndReason(2);
    /// The target refused the connection.
    pub const CONNECTREFUSED: EndReason = EndReason(3);
    /// The exit policy forbids the target (may carry the address and a TTL).
    pub const EXITPOLICY: EndReason = EndReason(4);
    /// The circuit is being destroyed.
    pub const DESTROY: EndReason = EndReason(5);
    /// The stream closed normally.
    pub const DONE: EndReason = EndReason(6);
    /// Connection timed out.
    pub const TIMEOUT: EndReason = EndReason(7);
    /// No route to the target.
    pub const NOROUTE: EndReason = EndReason(8);
    /// The relay is hibernating.
    pub const HIBERNATING: EndReason = EndReason(9);
    /// Internal error at the relay.
    pub const INTERNAL: EndReason = EndReason(10);
    /// Out of resources.
    pub const RESOURCELIMIT: EndReason = EndReason(11);
    /// The connection was reset.
    pub const CONNRESET: EndReason = EndReason(12);
    /// Protocol violation.
    pub const TORPROTOCOL: EndReason = EndReason(13);
    /// BEGIN_DIR sent to a relay that is not a directory.
    pub const NOTDIRECTORY: EndReason = EndReason(14);
}

/// Close a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// Why.
    pub reason: EndReason,
    /// For EXITPOLICY only: the resolved address and its TTL (seconds), when given.
    pub exit_policy_addr: Option<(IpAddr, u32)>,
}

impl End {
    /// END with `reason` and no address.
    pub fn new(reason: EndReason) -> End {
        End {
            reason,
            exit_policy_addr: None,
        }
    }
}

impl RelayBody for End {
    const CMD: RelayCmd = RelayCmd::END;
    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        // An empty END means MISC (tor-spec); trailing bytes on other reasons are ignored.
        if r.remaining() == 0 {
            return Ok(End::new(EndReason::MISC));
        }
        let reason = EndReason(r.take_u8()?);
        let exit_policy_addr = if reason == EndReason::EXITPOLICY {
            match r.remaining() {
                8 => Some((IpAddr::V4(r.take_array::<4>()?.into()), r.take_u32()?)),
                20 => Some((IpAddr::V6(r.take_array::<16>()?.into()), r.take_u32()?)),
                _ => None,
            }
        } else {
            None
        };
        Ok(End {
            reason,
            exit_policy_addr,
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u8(self.reason.0);
        if let Some((addr, ttl)) = self.exit_policy_addr {
            if self.reason != EndReason::EXITPOLICY {
                return Err(EncodeError::Invalid("END: address only with EXITPOLICY"));
            }
            match addr {
                IpAddr::V4(a) => w.write_all(&a.octets()),
                IpAddr::V6(a) => w.write_all(&a.octets()),
            }
            w.write_u32(ttl);
        }
        Ok(())
    }
}

/// The stream is open; optionally the address the exit connected to, with a TTL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connected {
    /// The target's address and how long (seconds) it may be cached.
    pub addr: Option<(IpAddr, u32)>,
}

impl RelayBody for Connected {
    const CMD: RelayCmd = RelayCmd::CONNECTED;
    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        if r.remaining() == 0 {
            return Ok(Connected { addr: None });
        }
        let v4 = r.take_array::<4>().map_err(Error::truncated)?;
        let addr = if v4 != [0; 4] {
            IpAddr::V4(v4.into())
        } else {
            // IPv6 form: four zero bytes, address type 6, 16 address bytes.
            if r.take_u8().map_err(Error::truncated)? != 6 {
                return Err(Error::Invalid("CONNECTED: bad address type"));
            }
            IpAddr::V6(r.take_array::<16>().map_err(Error::truncated)?.into())
        };
        let ttl = r.take_u32().map_err(Error::truncated)?;
        // Trailing bytes are ignored, as Tor does.
        Ok(Connected {
            addr: Some((addr, ttl)),
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        match self.addr {
            None => {}
            Some((IpAddr::V4(a), ttl)) => {
                if a.is_unspecified() {
                    // 0.0.0.0 would read back as the IPv6 marker.
                    return Err(EncodeError::Invalid("CONNECTED: 0.0.0.0"));
                }
                w.write_all(&a.octets());
                w.write_u32(ttl);
            }
            Some((IpAddr::V6(a), ttl)) => {
                w.write_u32(0);
                w.write_u8(6);
                w.write_all(&a.octets());
                w.write_u32(ttl);
            }
        }
        Ok(())
    }
}

/// A flow-control window increment (tor-spec "Flow control", proposal 289).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sendme {
    /// Version 0: empty body.
    V0,
    /// Version 1: authenticated by the digest tag of the cell it acknowledges.
    V1 {
        /// The first 20 bytes of the running digest after that cell.
        tag: [u8; 20],
    },
    /// A version we do not know, kept so it round-trips.
    Unrecognized {
        /// Version byte.
        version: u8,
        /// The u16-length-prefixed data.
        data: Vec<u8>,
    },
}

impl RelayBody for Sendme {
    const CMD: RelayCmd = RelayCmd::SENDME;
    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        if r.remaining() == 0 {
            return Ok(Sendme::V0);
        }
        let version = r.take_u8()?;
        let data = r.take_u16_prefixed().map_err(Error::truncated)?;
        // Bytes after DATA are ignored, as Tor's parser does.
        match version {
            0 => Ok(Sendme::V0),
            1 => {
                let tag = data
                    .try_into()
                    .map_err(|_| Error::BadLength("SENDME v1 tag"))?;
                Ok(Sendme::V1 { tag })
            }
            _ => Ok(Sendme::Unrecognized {
                version,
                data: data.into(),
            }),
        }
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        match self {
            Sendme::V0 => Ok(()),
            Sendme::V1 { tag } => {
                w.write_u8(1);
                w.write_u16_prefixed(tag)
            }
            Sendme::Unrecognized { version, data } => {
                if *version <= 1 {
                    return Err(EncodeError::Invalid(
                        "SENDME: known version as unrecognized",
                    ));
                }
                w.write_u8(*version);
                w.write_u16_prefixed(data)
            }
        }
    }
}

/// How to reach the next hop (tor-spec "Link specifiers").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSpec {
    /// Type 0: IPv4 address and OR port.
    Ipv4 {
        /// Address.
        addr: Ipv4Addr,
        /// OR port.
        port: u16,
    },
    /// Type 1: IPv6 address and OR port.
    Ipv6 {
        /// Address.
        addr: Ipv6Addr,
        /// OR port.
        port: u16,
    },
    /// Type 2: legacy identity, SHA-1 of the relay's RSA identity key.
    RsaId([u8; 20]),
    /// Type 3: Ed25519 identity key.
    Ed25519Id([u8; 32]),
    /// Any other type, kept so it round-trips.
    Unrecognized {
        /// LSTYPE.
        ty: u8,
        /// LSPEC bytes.
        body: Vec<u8>,
    },
}

impl LinkSpec {
    /// LSTYPE of the IPv4 specifier.
    pub const TYPE_IPV4: u8 = 0;
    /// LSTYPE of the IPv6 specifier.
    pub const TYPE_IPV6: u8 = 1;
    /// LSTYPE of the legacy RSA identity.
    pub const TYPE_RSA_ID: u8 = 2;
    /// LSTYPE of the Ed25519 identity.
    pub const TYPE_ED25519_ID: u8 = 3;

    fn take(r: &mut Reader<'_>) -> Result<LinkSpec> {
        let ty = r.take_u8()?;
        r.read_nested_u8len(|r| {
            Ok(match ty {
                Self::TYPE_IPV4 => LinkSpec::Ipv4 {
                    addr: r.take_array::<4>()?.into(),
                    port: r.take_u16()?,
                },
                Self::TYPE_IPV6 => LinkSpec::Ipv6 {
                    addr: r.take_array::<16>()?.into(),
                    port: r.take_u16()?,
                },
                Self::TYPE_RSA_ID => LinkSpec::RsaId(r.take_array()?),
                Self::TYPE_ED25519_ID => LinkSpec::Ed25519Id(r.take_array()?),
                _ => LinkSpec::Unrecognized {
                    ty,
                    body: r.take_rest().into(),
                },
            })
        })
    }

    fn put<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        match self {
            LinkSpec::Ipv4 { addr, port } => {
                w.write_all(&[Self::TYPE_IPV4, 6]);
                w.write_all(&addr.octets());
                w.write_u16(*port);
            }
            LinkSpec::Ipv6 { addr, port } => {
                w.write_all(&[Self::TYPE_IPV6, 18]);
                w.write_all(&addr.octets());
                w.write_u16(*port);
            }
            LinkSpec::RsaId(id) => {
                w.write_u8(Self::TYPE_RSA_ID);
                w.write_u8_prefixed(id)?;
            }
            LinkSpec::Ed25519Id(id) => {
                w.write_u8(Self::TYPE_ED25519_ID);
                w.write_u8_prefixed(id)?;
            }
            LinkSpec::Unrecognized { ty, body } => {
                if *ty <= Self::TYPE_ED25519_ID {
                    return Err(EncodeError::Invalid(
                        "link specifier: known type as unrecognized",
                    ));
                }
                w.write_u8(*ty);
                w.write_u8_prefixed(body)?;
            }
        }
        Ok(())
    }
}

/// Extend the circuit to the hop named by `link_specs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extend2 {
    /// How to reach and authenticate the next hop, in order.
    pub link_specs: Vec<LinkSpec>,
    /// HTYPE.
    pub handshake_type: HandshakeType,
    /// HDATA: the client's handshake message.
    pub hdata: Vec<u8>,
}

impl RelayBody for Extend2 {
    const CMD: RelayCmd = RelayCmd::EXTEND2;
    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let go = |r: &mut Reader<'_>| -> Result<Extend2> {
            let n = r.take_u8()?;
            let mut link_specs = Vec::with_capacity(n.into());
            for _ in 0..n {
                link_specs.push(LinkSpec::take(r)?);
            }
            let handshake_type = HandshakeType(r.take_u16()?);
            let hdata = r.take_u16_prefixed()?.into();
            Ok(Extend2 {
                link_specs,
                handshake_type,
                hdata,
            })
        };
        // Trailing bytes are ignored, as Tor's parser does.
        go(&mut r).map_err(Error::truncated)
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        let n = u8::try_from(self.link_specs.len())
            .map_err(|_| EncodeError::TooLong("EXTEND2 link specifiers"))?;
        w.write_u8(n);
        for ls in &self.link_specs {
            ls.put(w)?;
        }
        w.write_u16(self.handshake_type.0);
        w.write_u16_prefixed(&self.hdata)
    }
}

/// The next hop's handshake reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extended2 {
    /// HDATA: the server's handshake message.
    pub hdata: Vec<u8>,
}

impl RelayBody for Extended2 {
    const CMD: RelayCmd = RelayCmd::EXTENDED2;
    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let hdata = r.take_u16_prefixed().map_err(Error::truncated)?.into();
        Ok(Extended2 { hdata })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u16_prefixed(&self.hdata)
    }
}

/// Tear down the circuit beyond this hop. The body is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Truncate;

impl RelayBody for Truncate {
    const CMD: RelayCmd = RelayCmd::TRUNCATE;
    fn decode_body(_body: &[u8]) -> Result<Self> {
        Ok(Truncate)
    }
    fn encode_body<W: Writer + ?Sized>(&self, _w: &mut W) -> EncResult {
        Ok(())
    }
}

/// The circuit was truncated at this hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    /// Why the rest of the circuit went away (a DESTROY reason).
    pub reason: DestroyReason,
}

impl RelayBody for Truncated {
    const CMD: RelayCmd = RelayCmd::TRUNCATED;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            Ok(Truncated {
                reason: DestroyReason(r.take_u8()?),
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u8(self.reason.0);
        Ok(())
    }
}

/// DROP: long-range padding, which the receiver drops. Its body carries nothing. (Not
/// named `Drop`, which would shadow the prelude trait under a glob import.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropMsg;

impl RelayBody for DropMsg {
    const CMD: RelayCmd = RelayCmd::DROP;
    fn decode_body(_body: &[u8]) -> Result<Self> {
        Ok(DropMsg)
    }
    fn encode_body<W: Writer + ?Sized>(&self, _w: &mut W) -> EncResult {
        Ok(())
    }
}

/// Ask the exit to resolve a name (or an in-addr.arpa name, for reverse lookups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// The name, without its NUL terminator.
    pub hostname: String,
}

impl RelayBody for Resolve {
    const CMD: RelayCmd = RelayCmd::RESOLVE;
    fn decode_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new(body);
        let hostname = take_nul_str(&mut r, "RESOLVE: unterminated hostname")?.into();
        Ok(Resolve { hostname })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        if self.hostname.contains('\0') {
            return Err(EncodeError::Invalid("RESOLVE: NUL in hostname"));
        }
        w.write_all(self.hostname.as_bytes());
        w.write_u8(0);
        Ok(())
    }
}

/// One answer of a RESOLVED cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedValue {
    /// Type 0x00: a hostname (answer to a reverse lookup).
    Hostname(String),
    /// Type 0x04: an IPv4 address.
    Ipv4(Ipv4Addr),
    /// Type 0x06: an IPv6 address.
    Ipv6(Ipv6Addr),
    /// Type 0xF0: a transient error; the value's content is unspecified.
    TransientError(Vec<u8>),
    /// Type 0xF1: a permanent error; the value's content is unspecified.
    NontransientError(Vec<u8>),
    /// Any other type, kept so it round-trips.
    Unrecognized {
        /// Answer type.
        ty: u8,
        /// Value bytes.
        value: Vec<u8>,
    },
}

impl ResolvedValue {
    /// Answer type of a hostname.
    pub const TYPE_HOSTNAME: u8 = 0x00;
    /// Answer type of an IPv4 address.
    pub const TYPE_IPV4: u8 = 0x04;
    /// Answer type of an IPv6 address.
    pub const TYPE_IPV6: u8 = 0x06;
    /// Answer type of a transient error.
    pub const TYPE_TRANSIENT_ERROR: u8 = 0xF0;
    /// Answer type of a permanent error.
    pub const TYPE_NONTRANSIENT_ERROR: u8 = 0xF1;
}

/// A RESOLVED answer with its TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAnswer {
    /// The answer.
    pub value: ResolvedValue,
    /// Seconds it may be cached.
    pub ttl: u32,
}

/// The exit's answers to RESOLVE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    /// Every answer, in order.
    pub answers: Vec<ResolvedAnswer>,
}

impl RelayBody for Resolved {
    const CMD: RelayCmd = RelayCmd::RESOLVED;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let mut answers = Vec::new();
            while r.remaining() > 0 {
                let ty = r.take_u8()?;
                let v = r.take_u8_prefixed()?;
                let value = match ty {
                    ResolvedValue::TYPE_HOSTNAME => ResolvedValue::Hostname(
                        core::str::from_utf8(v)
                            .map_err(|_| Error::Invalid("RESOLVED: hostname not UTF-8"))?
                            .into(),
                    ),
                    ResolvedValue::TYPE_IPV4 => ResolvedValue::Ipv4(
                        <[u8; 4]>::try_from(v)
                            .map_err(|_| Error::BadLength("RESOLVED IPv4"))?
                            .into(),
                    ),
                    ResolvedValue::TYPE_IPV6 => ResolvedValue::Ipv6(
                        <[u8; 16]>::try_from(v)
                            .map_err(|_| Error::BadLength("RESOLVED IPv6"))?
                            .into(),
                    ),
                    ResolvedValue::TYPE_TRANSIENT_ERROR => ResolvedValue::TransientError(v.into()),
                    ResolvedValue::TYPE_NONTRANSIENT_ERROR => {
                        ResolvedValue::NontransientError(v.into())
                    }
                    _ => ResolvedValue::Unrecognized {
                        ty,
                        value: v.into(),
                    },
                };
                let ttl = r.take_u32()?;
                answers.push(ResolvedAnswer { value, ttl });
            }
            Ok(Resolved { answers })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        for a in &self.answers {
            match &a.value {
                ResolvedValue::Hostname(h) => {
                    w.write_u8(ResolvedValue::TYPE_HOSTNAME);
                    w.write_u8_prefixed(h.as_bytes())?;
                }
                ResolvedValue::Ipv4(ip) => {
                    w.write_u8(ResolvedValue::TYPE_IPV4);
                    w.write_u8_prefixed(&ip.octets())?;
                }
                ResolvedValue::Ipv6(ip) => {
                    w.write_u8(ResolvedValue::TYPE_IPV6);
                    w.write_u8_prefixed(&ip.octets())?;
                }
                ResolvedValue::TransientError(v) => {
                    w.write_u8(ResolvedValue::TYPE_TRANSIENT_ERROR);
                    w.write_u8_prefixed(v)?;
                }
                ResolvedValue::NontransientError(v) => {
                    w.write_u8(ResolvedValue::TYPE_NONTRANSIENT_ERROR);
                    w.write_u8_prefixed(v)?;
                }
                ResolvedValue::Unrecognized { ty, value } => {
                    if matches!(*ty, 0x00 | 0x04 | 0x06 | 0xF0 | 0xF1) {
                        return Err(EncodeError::Invalid("RESOLVED: known type as unrecognized"));
                    }
                    w.write_u8(*ty);
                    w.write_u8_prefixed(value)?;
                }
            }
            w.write_u32(a.ttl);
        }
        Ok(())
    }
}
