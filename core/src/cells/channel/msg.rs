//! The messages channel cells carry, one struct per command, and [`ChanMsg`] over them.
//!
//! Each message decodes from the cell body (509 bytes for a fixed cell, the payload for a
//! variable one) and encodes its payload only: padding fixed cells to 509 bytes and
//! prefixing variable ones with their length is the framer's job.

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::CELL_BODY_LEN;
use super::types::{
    AuthMethod, CertType, ChanCmd, DestroyReason, HandshakeType, PaddingNegotiateCmd,
};
use crate::codec::{EncodeError, Error, Reader, Result, Writer};

/// Length of a TAP client handshake (the body of a CREATE cell).
pub const TAP_C_HANDSHAKE_LEN: usize = 186;
/// Length of a TAP server handshake (the body of a CREATED cell).
pub const TAP_S_HANDSHAKE_LEN: usize = 148;
/// Length of the hash-sized values of CREATE_FAST/CREATED_FAST (SHA-1 output).
pub const FAST_LEN: usize = 20;

/// Link padding: a fixed cell whose body is ignored (encoded as zeros).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Padding;

/// Variable-length link padding of `len` bytes (encoded as zeros; the content is ignored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vpadding {
    /// Payload length.
    pub len: u16,
}

/// The link protocol versions a party supports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    /// Supported versions, in the order sent.
    pub versions: Vec<u16>,
}

impl Versions {
    /// The highest version both `self` and `ours` list, if any: the negotiated link
    /// version (tor-spec "Negotiating versions with VERSIONS cells").
    pub fn best_shared(&self, ours: &[u16]) -> Option<u16> {
        self.versions
            .iter()
            .copied()
            .filter(|v| ours.contains(v))
            .max()
    }
}

/// One certificate of a CERTS cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertEntry {
    /// What the certificate certifies.
    pub cert_type: CertType,
    /// The encoded certificate (X.509 DER or a Tor Ed25519 certificate).
    pub body: Vec<u8>,
}

/// The certificates of the link handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Certs {
    /// The certificates, in the order sent.
    pub entries: Vec<CertEntry>,
}

impl Certs {
    /// The body of the first certificate of type `t`, if any.
    pub fn cert_body(&self, t: CertType) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| e.cert_type == t)
            .map(|e| e.body.as_slice())
    }
}

/// A responder's challenge for initiator authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthChallenge {
    /// Random challenge bytes.
    pub challenge: [u8; 32],
    /// Authentication methods the responder accepts.
    pub methods: Vec<AuthMethod>,
}

/// The initiator's authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticate {
    /// The method used.
    pub auth_type: AuthMethod,
    /// The authentication, whose format depends on the method.
    pub body: Vec<u8>,
}

/// Time and addresses exchanged at the end of the link handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Netinfo {
    /// Sender's clock, seconds since the epoch (clients may send 0).
    pub timestamp: u32,
    /// The address the sender believes the receiver has; `None` if unknown or of a
    /// type we do not know (encoded as type 0, length 0).
    pub other_addr: Option<IpAddr>,
    /// The sender's own addresses (addresses of unknown types are skipped on decode).
    pub my_addrs: Vec<IpAddr>,
}

/// CREATE_FAST: the client's key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateFast {
    /// Client random bytes.
    pub x: [u8; FAST_LEN],
}

/// CREATED_FAST: the server's key material and key confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedFast {
    /// Server random bytes.
    pub y: [u8; FAST_LEN],
    /// Derivative key data proving the server knows the shared key.
    pub kh: [u8; FAST_LEN],
}

/// CREATE2: circuit creation with a typed handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create2 {
    /// Which handshake `hdata` belongs to.
    pub handshake_type: HandshakeType,
    /// Client handshake data.
    pub hdata: Vec<u8>,
}

/// CREATED2: the server's handshake reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created2 {
    /// Server handshake data.
    pub hdata: Vec<u8>,
}

/// CREATE: legacy TAP circuit creation, kept opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    /// The TAP client handshake.
    pub handshake: [u8; TAP_C_HANDSHAKE_LEN],
}

/// CREATED: legacy TAP reply, kept opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The TAP server handshake.
    pub handshake: [u8; TAP_S_HANDSHAKE_LEN],
}

/// The 509-byte body of a RELAY or RELAY_EARLY cell, inline so relaying a cell never
/// allocates. Still encrypted (or not yet parsed): the relay layer interprets it.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayCellBody(pub [u8; CELL_BODY_LEN]);

impl RelayCellBody {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; CELL_BODY_LEN] {
        &self.0
    }

    /// The bytes, mutably (relay crypto works in place).
    pub fn as_bytes_mut(&mut self) -> &mut [u8; CELL_BODY_LEN] {
        &mut self.0
    }
}

impl Default for RelayCellBody {
    fn default() -> Self {
        RelayCellBody([0; CELL_BODY_LEN])
    }
}

impl From<[u8; CELL_BODY_LEN]> for RelayCellBody {
    fn from(b: [u8; CELL_BODY_LEN]) -> Self {
        RelayCellBody(b)
    }
}

impl core::fmt::Debug for RelayCellBody {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // 509 bytes of ciphertext say nothing useful in a log; the first few identify it.
        write!(f, "RelayCellBody({:02x?}..)", &self.0[..8])
    }
}

/// A RELAY cell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relay {
    /// The (encrypted) relay cell.
    pub body: RelayCellBody,
}

/// A RELAY_EARLY cell: like RELAY, but limited in number per circuit, so it may carry
/// EXTEND2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayEarly {
    /// The (encrypted) relay cell.
    pub body: RelayCellBody,
}

/// Tear down a circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destroy {
    /// Why.
    pub reason: DestroyReason,
}

/// Negotiate link padding (padding-spec "Negotiating padding").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaddingNegotiate {
    /// Format version; 0 is the only one defined.
    pub version: u8,
    /// Start or stop.
    pub command: PaddingNegotiateCmd,
    /// Low end of the inactivity timeout range, in milliseconds.
    pub ito_low_ms: u16,
    /// High end of the inactivity timeout range, in milliseconds.
    pub ito_high_ms: u16,
}

impl PaddingNegotiate {
    /// Ask the peer to start padding with the given timeout range.
    pub fn start(ito_low_ms: u16, ito_high_ms: u16) -> Self {
        PaddingNegotiate {
            version: 0,
            command: PaddingNegotiateCmd::START,
            ito_low_ms,
            ito_high_ms,
        }
    }

    /// Ask the peer to stop padding.
    pub fn stop() -> Self {
        PaddingNegotiate {
            version: 0,
            command: PaddingNegotiateCmd::STOP,
            ito_low_ms: 0,
            ito_high_ms: 0,
        }
    }
}

/// A cell with a command we do not parse (unknown, or AUTHORIZE), kept byte for byte so
/// it can be relayed or logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrecognized {
    /// The command.
    pub cmd: ChanCmd,
    /// The whole body: all 509 bytes of a fixed cell, the payload of a variable one.
    pub body: Vec<u8>,
}

/// Any channel message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Relay cells are the common case: keep them inline.
pub enum ChanMsg {
    /// PADDING.
    Padding(Padding),
    /// VPADDING.
    Vpadding(Vpadding),
    /// VERSIONS.
    Versions(Versions),
    /// CERTS.
    Certs(Certs),
    /// AUTH_CHALLENGE.
    AuthChallenge(AuthChallenge),
    /// AUTHENTICATE.
    Authenticate(Authenticate),
    /// NETINFO.
    Netinfo(Netinfo),
    /// CREATE_FAST.
    CreateFast(CreateFast),
    /// CREATED_FAST.
    CreatedFast(CreatedFast),
    /// CREATE2.
    Create2(Create2),
    /// CREATED2.
    Created2(Created2),
    /// CREATE (TAP).
    Create(Create),
    /// CREATED (TAP).
    Created(Created),
    /// RELAY.
    Relay(Relay),
    /// RELAY_EARLY.
    RelayEarly(RelayEarly),
    /// DESTROY.
    Destroy(Destroy),
    /// PADDING_NEGOTIATE.
    PaddingNegotiate(PaddingNegotiate),
    /// Anything else.
    Unrecognized(Unrecognized),
}

/// Commands [`ChanMsg::decode`] turns into a dedicated variant; any other goes to
/// [`ChanMsg::Unrecognized`].
const fn is_parsed(cmd: ChanCmd) -> bool {
    cmd.is_recognized() && cmd.0 != ChanCmd::AUTHORIZE.0
}

impl ChanMsg {
    /// The command of this message.
    pub fn cmd(&self) -> ChanCmd {
        match self {
            ChanMsg::Padding(_) => ChanCmd::PADDING,
            ChanMsg::Vpadding(_) => ChanCmd::VPADDING,
            ChanMsg::Versions(_) => ChanCmd::VERSIONS,
            ChanMsg::Certs(_) => ChanCmd::CERTS,
            ChanMsg::AuthChallenge(_) => ChanCmd::AUTH_CHALLENGE,
            ChanMsg::Authenticate(_) => ChanCmd::AUTHENTICATE,
            ChanMsg::Netinfo(_) => ChanCmd::NETINFO,
            ChanMsg::CreateFast(_) => ChanCmd::CREATE_FAST,
            ChanMsg::CreatedFast(_) => ChanCmd::CREATED_FAST,
            ChanMsg::Create2(_) => ChanCmd::CREATE2,
            ChanMsg::Created2(_) => ChanCmd::CREATED2,
            ChanMsg::Create(_) => ChanCmd::CREATE,
            ChanMsg::Created(_) => ChanCmd::CREATED,
            ChanMsg::Relay(_) => ChanCmd::RELAY,
            ChanMsg::RelayEarly(_) => ChanCmd::RELAY_EARLY,
            ChanMsg::Destroy(_) => ChanCmd::DESTROY,
            ChanMsg::PaddingNegotiate(_) => ChanCmd::PADDING_NEGOTIATE,
            ChanMsg::Unrecognized(u) => u.cmd,
        }
    }

    /// Decode the message of command `cmd` from a cell body: the 509 bytes of a fixed
    /// cell (trailing padding ignored) or the payload of a variable cell.
    ///
    /// The body is complete, so a short body is [`Error::Invalid`], never
    /// [`Error::Incomplete`].
    pub fn decode(cmd: ChanCmd, body: &[u8]) -> Result<ChanMsg> {
        let mut r = Reader::new(body);
        decode_body(cmd, &mut r).map_err(Error::truncated)
    }

    /// Append this message's payload (without the fixed-cell padding) to `w`.
    ///
    /// Fails if a field does not fit its length prefix, or for an [`Unrecognized`] whose
    /// command has a dedicated variant (it would decode as something else).
    pub fn encode_body<W: Writer + ?Sized>(
        &self,
        w: &mut W,
    ) -> core::result::Result<(), EncodeError> {
        match self {
            ChanMsg::Padding(_) => {}
            ChanMsg::Vpadding(v) => w.write_zeros(usize::from(v.len)),
            ChanMsg::Versions(v) => {
                for ver in &v.versions {
                    w.write_u16(*ver);
                }
            }
            ChanMsg::Certs(c) => {
                let n = u8::try_from(c.entries.len())
                    .map_err(|_| EncodeError::TooLong("CERTS entries"))?;
                w.write_u8(n);
                for e in &c.entries {
                    w.write_u8(e.cert_type.0);
                    w.write_u16_prefixed(&e.body)?;
                }
            }
            ChanMsg::AuthChallenge(a) => {
                w.write_all(&a.challenge);
                let n = u16::try_from(a.methods.len())
                    .map_err(|_| EncodeError::TooLong("AUTH_CHALLENGE methods"))?;
                w.write_u16(n);
                for m in &a.methods {
                    w.write_u16(m.0);
                }
            }
            ChanMsg::Authenticate(a) => {
                w.write_u16(a.auth_type.0);
                w.write_u16_prefixed(&a.body)?;
            }
            ChanMsg::Netinfo(n) => {
                w.write_u32(n.timestamp);
                write_addr(w, n.other_addr);
                let count = u8::try_from(n.my_addrs.len())
                    .map_err(|_| EncodeError::TooLong("NETINFO addresses"))?;
                w.write_u8(count);
                for a in &n.my_addrs {
                    write_addr(w, Some(*a));
                }
            }
            ChanMsg::CreateFast(c) => w.write_all(&c.x),
            ChanMsg::CreatedFast(c) => {
                w.write_all(&c.y);
                w.write_all(&c.kh);
            }
            ChanMsg::Create2(c) => {
                w.write_u16(c.handshake_type.0);
                w.write_u16_prefixed(&c.hdata)?;
            }
            ChanMsg::Created2(c) => w.write_u16_prefixed(&c.hdata)?,
            ChanMsg::Create(c) => w.write_all(&c.handshake),
            ChanMsg::Created(c) => w.write_all(&c.handshake),
            ChanMsg::Relay(r) => w.write_all(&r.body.0),
            ChanMsg::RelayEarly(r) => w.write_all(&r.body.0),
            ChanMsg::Destroy(d) => w.write_u8(d.reason.0),
            ChanMsg::PaddingNegotiate(p) => {
                w.write_u8(p.version);
                w.write_u8(p.command.0);
                w.write_u16(p.ito_low_ms);
                w.write_u16(p.ito_high_ms);
            }
            ChanMsg::Unrecognized(u) => {
                if is_parsed(u.cmd) {
                    return Err(EncodeError::Invalid(
                        "Unrecognized message with a parsed command",
                    ));
                }
                w.write_all(&u.body);
            }
        }
        Ok(())
    }
}

fn decode_body(cmd: ChanCmd, r: &mut Reader<'_>) -> Result<ChanMsg> {
    Ok(match cmd {
        ChanCmd::PADDING => ChanMsg::Padding(Padding),
        ChanCmd::VPADDING => {
            let len =
                u16::try_from(r.remaining()).map_err(|_| Error::BadLength("VPADDING too long"))?;
            ChanMsg::Vpadding(Vpadding { len })
        }
        ChanCmd::VERSIONS => {
            let rest = r.take_rest();
            if !rest.len().is_multiple_of(2) {
                return Err(Error::BadLength("VERSIONS payload of odd length"));
            }
            let versions = rest
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            ChanMsg::Versions(Versions { versions })
        }
        ChanCmd::CERTS => {
            let n = r.take_u8()?;
            let mut entries = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let cert_type = CertType(r.take_u8()?);
                let body = r.take_u16_prefixed()?.to_vec();
                entries.push(CertEntry { cert_type, body });
            }
            ChanMsg::Certs(Certs { entries })
        }
        ChanCmd::AUTH_CHALLENGE => {
            let challenge = r.take_array()?;
            let n = r.take_u16()?;
            // Check the length first so a lying count cannot make us reserve memory.
            let bytes = r.take(usize::from(n) * 2)?;
            let methods = bytes
                .chunks_exact(2)
                .map(|c| AuthMethod(u16::from_be_bytes([c[0], c[1]])))
                .collect();
            ChanMsg::AuthChallenge(AuthChallenge { challenge, methods })
        }
        ChanCmd::AUTHENTICATE => {
            let auth_type = AuthMethod(r.take_u16()?);
            let body = r.take_u16_prefixed()?.to_vec();
            ChanMsg::Authenticate(Authenticate { auth_type, body })
        }
        ChanCmd::NETINFO => {
            let timestamp = r.take_u32()?;
            let other_addr = take_addr(r)?;
            let n = r.take_u8()?;
            let mut my_addrs = Vec::new();
            for _ in 0..n {
                if let Some(a) = take_addr(r)? {
                    my_addrs.push(a);
                }
            }
            ChanMsg::Netinfo(Netinfo {
                timestamp,
                other_addr,
                my_addrs,
            })
        }
        ChanCmd::CREATE_FAST => ChanMsg::CreateFast(CreateFast { x: r.take_array()? }),
        ChanCmd::CREATED_FAST => ChanMsg::CreatedFast(CreatedFast {
            y: r.take_array()?,
            kh: r.take_array()?,
        }),
        ChanCmd::CREATE2 => {
            let handshake_type = HandshakeType(r.take_u16()?);
            let hdata = r
                .take_u16_prefixed()
                .map_err(|_| Error::BadLength("CREATE2 HLEN exceeds the cell"))?;
            ChanMsg::Create2(Create2 {
                handshake_type,
                hdata: hdata.to_vec(),
            })
        }
        ChanCmd::CREATED2 => {
            let hdata = r
                .take_u16_prefixed()
                .map_err(|_| Error::BadLength("CREATED2 HLEN exceeds the cell"))?;
            ChanMsg::Created2(Created2 {
                hdata: hdata.to_vec(),
            })
        }
        ChanCmd::CREATE => ChanMsg::Create(Create {
            handshake: r.take_array()?,
        }),
        ChanCmd::CREATED => ChanMsg::Created(Created {
            handshake: r.take_array()?,
        }),
        ChanCmd::RELAY => ChanMsg::Relay(Relay {
            body: RelayCellBody(r.take_array()?),
        }),
        ChanCmd::RELAY_EARLY => ChanMsg::RelayEarly(RelayEarly {
            body: RelayCellBody(r.take_array()?),
        }),
        ChanCmd::DESTROY => ChanMsg::Destroy(Destroy {
            reason: DestroyReason(r.take_u8()?),
        }),
        ChanCmd::PADDING_NEGOTIATE => ChanMsg::PaddingNegotiate(PaddingNegotiate {
            version: r.take_u8()?,
            command: PaddingNegotiateCmd(r.take_u8()?),
            ito_low_ms: r.take_u16()?,
            ito_high_ms: r.take_u16()?,
        }),
        cmd => ChanMsg::Unrecognized(Unrecognized {
            cmd,
            body: r.take_rest().to_vec(),
        }),
    })
}

/// NETINFO address types.
const ATYPE_IPV4: u8 = 4;
const ATYPE_IPV6: u8 = 6;

/// One NETINFO address: type, length, value. Known types must have their exact length
/// (as tor's parser requires); unknown types are skipped (`None`), as the spec says.
fn take_addr(r: &mut Reader<'_>) -> Result<Option<IpAddr>> {
    let atype = r.take_u8()?;
    let val = r.take_u8_prefixed()?;
    match atype {
        ATYPE_IPV4 => {
            let a: [u8; 4] = val
                .try_into()
                .map_err(|_| Error::BadLength("NETINFO IPv4 address"))?;
            Ok(Some(IpAddr::V4(Ipv4Addr::from(a))))
        }
        ATYPE_IPV6 => {
            let a: [u8; 16] = val
                .try_into()
                .map_err(|_| Error::BadLength("NETINFO IPv6 address"))?;
            Ok(Some(IpAddr::V6(Ipv6Addr::from(a))))
        }
        _ => Ok(None),
    }
}

fn write_addr<W: Writer + ?Sized>(w: &mut W, a: Option<IpAddr>) {
    match a {
        Some(IpAddr::V4(a)) => {
            w.write_u8(ATYPE_IPV4);
            w.write_u8(4);
            w.write_all(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            w.write_u8(ATYPE_IPV6);
            w.write_u8(16);
            w.write_all(&a.octets());
        }
        None => {
            w.write_u8(0);
            w.write_u8(0);
        }
    }
}

macro_rules! from_msg {
    ($($t:ident),* $(,)?) => {
        $(
            impl From<$t> for ChanMsg {
                fn from(m: $t) -> ChanMsg {
                    ChanMsg::$t(m)
                }
            }
        )*
    };
}

from_msg!(
    Padding,
    Vpadding,
    Versions,
    Certs,
    AuthChallenge,
    Authenticate,
    Netinfo,
    CreateFast,
    CreatedFast,
    Create2,
    Created2,
    Create,
    Created,
    Relay,
    RelayEarly,
    Destroy,
    PaddingNegotiate,
    Unrecognized,
);
