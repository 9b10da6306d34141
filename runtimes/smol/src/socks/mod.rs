//! The server side of a SOCKS handshake, Sans-IO, as tor's SocksPort speaks it.
//!
//! Supported: SOCKS5 (RFC 1928) with the no-authentication method and the
//! username/password method (RFC 1929), whose credentials are never checked but serve as
//! a stream-isolation key, as in tor; SOCKS4 and SOCKS4a; commands CONNECT and tor's
//! RESOLVE (0xF0) and RESOLVE_PTR (0xF1) extensions. BIND and UDP ASSOCIATE are refused.
//!
//! The caller owns the buffer: it appends what the client sends and calls
//! [`SocksHandshake::step`], which looks at the whole unconsumed input each time.
//!
//! ```
//! use onionpeer_smol::socks::{SocksHandshake, SocksStep};
//! let mut hs = SocksHandshake::new();
//! let mut buf: Vec<u8> = vec![5, 1, 0]; // greeting: one method, no authentication
//! match hs.step(&buf).unwrap() {
//!     SocksStep::Reply { consumed, reply } => {
//!         assert_eq!(reply.as_bytes(), [5, 0]);
//!         buf.drain(..consumed);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! buf.extend_from_slice(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]); // CONNECT 127.0.0.1:80
//! let SocksStep::Request { request, .. } = hs.step(&buf).unwrap() else { panic!() };
//! assert_eq!(request.port, 80);
//! ```

mod reply;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use reply::{
    SOCKS4_GRANTED, SOCKS4_REJECTED, SocksReply, socks5_code, socks5_code_for_end_reason,
};

/// The most bytes one client message can take: a SOCKS4a request with a 255-byte user id
/// and a 255-byte hostname, each NUL-terminated, after its 8-byte header. A caller never
/// needs to buffer more than this before [`SocksHandshake::step`] decides.
pub const MAX_MESSAGE_LEN: usize = 8 + 256 + 256;

/// Longest SOCKS4 user id or SOCKS4a hostname we accept (SOCKS5's length bytes allow 255).
const MAX_SOCKS4_FIELD: usize = 255;

/// Which SOCKS version the client speaks; replies use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocksVersion {
    /// SOCKS4 or SOCKS4a.
    V4,
    /// SOCKS5.
    V5,
}

/// A SOCKS command byte (open: unknown values are kept for logging).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocksCmd(pub u8);

impl SocksCmd {
    /// Open a TCP stream to the target.
    pub const CONNECT: SocksCmd = SocksCmd(0x01);
    /// Accept an incoming connection (refused: Tor has no such thing).
    pub const BIND: SocksCmd = SocksCmd(0x02);
    /// UDP relay (SOCKS5; refused: Tor carries TCP only).
    pub const UDP_ASSOCIATE: SocksCmd = SocksCmd(0x03);
    /// Tor extension: resolve a hostname through Tor.
    pub const RESOLVE: SocksCmd = SocksCmd(0xF0);
    /// Tor extension: reverse-resolve an address through Tor.
    pub const RESOLVE_PTR: SocksCmd = SocksCmd(0xF1);

    /// True for the commands this server carries out.
    pub fn is_supported(self) -> bool {
        matches!(self, Self::CONNECT | Self::RESOLVE | Self::RESOLVE_PTR)
    }
}

/// Where the client wants to go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SocksAddr {
    /// A literal address.
    Ip(IpAddr),
    /// A hostname, resolved by the exit (SOCKS5 domain names and SOCKS4a).
    Hostname(String),
}

impl fmt::Display for SocksAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksAddr::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            SocksAddr::Ip(a) => write!(f, "{a}"),
            SocksAddr::Hostname(h) => f.write_str(h),
        }
    }
}

/// The credentials a client gave: never checked, but streams with different credentials
/// never share a circuit (tor's IsolateSOCKSAuth), so this is the isolation key.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SocksAuth {
    /// None given.
    #[default]
    None,
    /// A SOCKS4 user id (non-empty).
    Socks4UserId(Vec<u8>),
    /// RFC 1929 username and password.
    UsernamePassword {
        /// The username.
        username: Vec<u8>,
        /// The password.
        password: Vec<u8>,
    },
}

/// A complete client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocksRequest {
    /// The client's SOCKS version; replies must use it.
    pub version: SocksVersion,
    /// The command; always one where [`SocksCmd::is_supported`] holds.
    pub command: SocksCmd,
    /// The target host.
    pub addr: SocksAddr,
    /// The target port.
    pub port: u16,
    /// The credentials, which are the stream-isolation key.
    pub auth: SocksAuth,
}

impl SocksRequest {
    /// The stream-isolation key: streams whose keys differ must not share a circuit.
    pub fn isolation_key(&self) -> &SocksAuth {
        &self.auth
    }

    /// The reply when the stream is open (or the name resolved), with the bound address
    /// if known (tor sends 0.0.0.0:0 for CONNECT).
    pub fn success_reply(&self, bound: Option<std::net::SocketAddr>) -> SocksReply {
        SocksReply::success(self.version, bound)
    }

    /// The reply when the stream ended with RELAY_END reason `end_reason` before it
    /// opened.
    pub fn failure_reply(&self, end_reason: u8) -> SocksReply {
        SocksReply::failure(self.version, end_reason)
    }
}

/// What [`SocksHandshake::step`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocksStep {
    /// The input holds no complete message yet: read more and call again with all of it.
    NeedMore,
    /// Send `reply`, drop the first `consumed` input bytes, and call again.
    Reply {
        /// Input bytes used.
        consumed: usize,
        /// What to send the client.
        reply: SocksReply,
    },
    /// The request is complete: drop the first `consumed` input bytes (any further bytes
    /// are early stream data) and answer later with the request's reply methods.
    Request {
        /// Input bytes used.
        consumed: usize,
        /// The request.
        request: SocksRequest,
    },
}

/// Why a handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocksErrorKind {
    /// The first byte is neither 4 nor 5.
    UnknownVersion(u8),
    /// The client offered neither no-authentication nor username/password.
    NoAcceptableMethod,
    /// A command other than CONNECT, RESOLVE and RESOLVE_PTR.
    UnsupportedCommand(u8),
    /// A SOCKS5 address type other than IPv4, domain name and IPv6.
    UnsupportedAddressType(u8),
    /// A message breaking the protocol (bad sub-version, empty or non-UTF-8 hostname, ..).
    Malformed(&'static str),
    /// A SOCKS4 field without its NUL within 255 bytes.
    TooLong,
    /// [`SocksHandshake::step`] called after the handshake ended.
    Finished,
}

/// A failed handshake: send `reply` if there is one, then close the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocksError {
    /// What went wrong.
    pub kind: SocksErrorKind,
    /// The last words to the client, when the protocol has a way to say it.
    pub reply: Option<SocksReply>,
}

impl fmt::Display for SocksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SocksErrorKind::UnknownVersion(v) => write!(f, "unknown SOCKS version {v}"),
            SocksErrorKind::NoAcceptableMethod => f.write_str("no acceptable SOCKS5 method"),
            SocksErrorKind::UnsupportedCommand(c) => write!(f, "unsupported SOCKS command {c}"),
            SocksErrorKind::UnsupportedAddressType(t) => {
                write!(f, "unsupported SOCKS5 address type {t}")
            }
            SocksErrorKind::Malformed(m) => write!(f, "malformed SOCKS message: {m}"),
            SocksErrorKind::TooLong => f.write_str("SOCKS4 field too long"),
            SocksErrorKind::Finished => f.write_str("SOCKS handshake already finished"),
        }
    }
}

impl std::error::Error for SocksError {}

/// SOCKS5 method: no authentication.
const METHOD_NO_AUTH: u8 = 0x00;
/// SOCKS5 method: username/password (RFC 1929).
const METHOD_USER_PASS: u8 = 0x02;
/// SOCKS5 "no acceptable methods".
const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the first message (SOCKS4 request or SOCKS5 greeting).
    Start,
    /// SOCKS5: username/password method chosen, waiting for the credentials.
    UserPass,
    /// SOCKS5: waiting for the request.
    Request(SocksAuth),
    /// Ended, by a request or an error.
    Done,
}

/// The server side of one SOCKS handshake.
#[derive(Clone, Debug)]
pub struct SocksHandshake {
    state: State,
}

impl Default for SocksHandshake {
    fn default() -> Self {
        Self::new()
    }
}

/// Parse outcome of one message: `Ok(None)` means incomplete.
type Parsed<T> = Result<Option<T>, SocksError>;

fn fail(kind: SocksErrorKind, reply: Option<SocksReply>) -> SocksError {
    SocksError { kind, reply }
}

fn fail5(kind: SocksErrorKind, code: u8) -> SocksError {
    fail(kind, Some(SocksReply::socks5(code, None)))
}

impl SocksHandshake {
    /// A handshake waiting for the client's first message.
    pub fn new() -> Self {
        SocksHandshake {
            state: State::Start,
        }
    }

    /// True once a request was returned or an error reported.
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// Advance on `input`, all unconsumed bytes from the client so far. Never panics;
    /// never needs more than [`MAX_MESSAGE_LEN`] bytes to decide. After an error or a
    /// request, the handshake is over and further calls fail with
    /// [`SocksErrorKind::Finished`].
    pub fn step(&mut self, input: &[u8]) -> Result<SocksStep, SocksError> {
        let result = self.step_inner(input);
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    fn step_inner(&mut self, input: &[u8]) -> Result<SocksStep, SocksError> {
        match &self.state {
            State::Start => match input.first() {
                None => Ok(SocksStep::NeedMore),
                Some(4) => Ok(match socks4_request(input)? {
                    None => SocksStep::NeedMore,
                    Some((request, consumed)) => {
                        self.state = State::Done;
                        SocksStep::Request { consumed, request }
                    }
                }),
                Some(5) => Ok(match socks5_greeting(input)? {
                    None => SocksStep::NeedMore,
                    Some((method, consumed)) => {
                        self.state = if method == METHOD_USER_PASS {
                            State::UserPass
                        } else {
                            State::Request(SocksAuth::None)
                        };
                        SocksStep::Reply {
                            consumed,
                            reply: SocksReply::socks5_method(method),
                        }
                    }
                }),
                Some(&v) => Err(fail(SocksErrorKind::UnknownVersion(v), None)),
            },
            State::UserPass => Ok(match user_pass(input)? {
                None => SocksStep::NeedMore,
                Some((auth, consumed)) => {
                    self.state = State::Request(auth);
                    SocksStep::Reply {
                        consumed,
                        reply: SocksReply::user_pass_ok(),
                    }
                }
            }),
            State::Request(auth) => Ok(match socks5_request(input, auth)? {
                None => SocksStep::NeedMore,
                Some((request, consumed)) => {
                    self.state = State::Done;
                    SocksStep::Request { consumed, request }
                }
            }),
            State::Done => Err(fail(SocksErrorKind::Finished, None)),
        }
    }
}

/// `05 nmethods methods..` -> the method we pick. Username/password wins when offered,
/// as in tor, so a client that sends credentials gets isolation.
fn socks5_greeting(input: &[u8]) -> Parsed<(u8, usize)> {
    let Some(&n) = input.get(1) else {
        return Ok(None);
    };
    let end = 2 + usize::from(n);
    let Some(methods) = input.get(2..end) else {
        return Ok(None);
    };
    let method = if methods.contains(&METHOD_USER_PASS) {
        METHOD_USER_PASS
    } else if methods.contains(&METHOD_NO_AUTH) {
        METHOD_NO_AUTH
    } else {
        return Err(fail(
            SocksErrorKind::NoAcceptableMethod,
            Some(SocksReply::socks5_method(METHOD_NONE_ACCEPTABLE)),
        ));
    };
    Ok(Some((method, end)))
}

/// RFC 1929: `01 ulen username plen password`.
fn user_pass(input: &[u8]) -> Parsed<(SocksAuth, usize)> {
    let mut r = Cursor::new(input);
    let Some(ver) = r.u8() else { return Ok(None) };
    if ver != 1 {
        return Err(fail(
            SocksErrorKind::Malformed("username/password sub-negotiation version is not 1"),
            // RFC 1929: any non-zero status is a failure.
            Some(SocksReply::socks5_method(1)),
        ));
    }
    let Some(username) = r.u8_prefixed() else {
        return Ok(None);
    };
    let Some(password) = r.u8_prefixed() else {
        return Ok(None);
    };
    let auth = SocksAuth::UsernamePassword {
        username: username.to_vec(),
        password: password.to_vec(),
    };
    Ok(Some((auth, r.pos)))
}

/// `05 cmd 00 atyp addr port`.
fn socks5_request(input: &[u8], auth: &SocksAuth) -> Parsed<(SocksRequest, usize)> {
    use socks5_code::*;
    let mut r = Cursor::new(input);
    let (Some(ver), Some(cmd), Some(_reserved), Some(atyp)) = (r.u8(), r.u8(), r.u8(), r.u8())
    else {
        // Reject a bad version or command as soon as it is visible.
        return match (input.first(), input.get(1)) {
            (Some(&v), _) if v != 5 => Err(fail5(
                SocksErrorKind::Malformed("SOCKS5 request version is not 5"),
                GENERAL_FAILURE,
            )),
            (_, Some(&c)) if !SocksCmd(c).is_supported() => Err(fail5(
                SocksErrorKind::UnsupportedCommand(c),
                COMMAND_NOT_SUPPORTED,
            )),
            _ => Ok(None),
        };
    };
    if ver != 5 {
        return Err(fail5(
            SocksErrorKind::Malformed("SOCKS5 request version is not 5"),
            GENERAL_FAILURE,
        ));
    }
    let command = SocksCmd(cmd);
    if !command.is_supported() {
        return Err(fail5(
            SocksErrorKind::UnsupportedCommand(cmd),
            COMMAND_NOT_SUPPORTED,
        ));
    }
    let addr = match atyp {
        1 => match r.array::<4>() {
            Some(a) => SocksAddr::Ip(IpAddr::V4(Ipv4Addr::from(a))),
            None => return Ok(None),
        },
        3 => match r.u8_prefixed() {
            Some(name) => SocksAddr::Hostname(
                hostname(name).map_err(|m| fail5(SocksErrorKind::Malformed(m), GENERAL_FAILURE))?,
            ),
            None => return Ok(None),
        },
        4 => match r.array::<16>() {
            Some(a) => SocksAddr::Ip(IpAddr::V6(Ipv6Addr::from(a))),
            None => return Ok(None),
        },
        t => {
            return Err(fail5(
                SocksErrorKind::UnsupportedAddressType(t),
                ADDRESS_TYPE_NOT_SUPPORTED,
            ));
        }
    };
    let Some(port) = r.array::<2>() else {
        return Ok(None);
    };
    let request = SocksRequest {
        version: SocksVersion::V5,
        command,
        addr,
        port: u16::from_be_bytes(port),
        auth: auth.clone(),
    };
    Ok(Some((request, r.pos)))
}

/// `04 cmd port ip userid 00 [hostname 00]`: SOCKS4a when ip is 0.0.0.x with x != 0.
fn socks4_request(input: &[u8]) -> Parsed<(SocksRequest, usize)> {
    let reject = |kind| fail(kind, Some(SocksReply::socks4(SOCKS4_REJECTED, None)));
    let mut r = Cursor::new(input);
    let (Some(_ver), Some(cmd), Some(port), Some(ip)) =
        (r.u8(), r.u8(), r.array::<2>(), r.array::<4>())
    else {
        return match input.get(1) {
            Some(&c) if !SocksCmd(c).is_supported() => {
                Err(reject(SocksErrorKind::UnsupportedCommand(c)))
            }
            _ => Ok(None),
        };
    };
    let command = SocksCmd(cmd);
    if !command.is_supported() {
        return Err(reject(SocksErrorKind::UnsupportedCommand(cmd)));
    }
    let Some(user) = r.nul_terminated().map_err(reject)? else {
        return Ok(None);
    };
    let addr = match ip {
        [0, 0, 0, x] if x != 0 => {
            let Some(name) = r.nul_terminated().map_err(reject)? else {
                return Ok(None);
            };
            SocksAddr::Hostname(hostname(name).map_err(|m| reject(SocksErrorKind::Malformed(m)))?)
        }
        ip => SocksAddr::Ip(IpAddr::V4(Ipv4Addr::from(ip))),
    };
    let auth = if user.is_empty() {
        SocksAuth::None
    } else {
        SocksAuth::Socks4UserId(user.to_vec())
    };
    let request = SocksRequest {
        version: SocksVersion::V4,
        command,
        addr,
        port: u16::from_be_bytes(port),
        auth,
    };
    Ok(Some((request, r.pos)))
}

/// A hostname from the wire: non-empty UTF-8 without NUL (tor refuses the same).
fn hostname(bytes: &[u8]) -> Result<String, &'static str> {
    if bytes.is_empty() {
        return Err("empty hostname");
    }
    if bytes.contains(&0) {
        return Err("NUL in hostname");
    }
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| "hostname is not UTF-8")
}

/// A read position in the input; every read returns `None` when the input is short.
struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(input: &'a [u8]) -> Self {
        Cursor { input, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.input.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    /// A length byte and that many bytes. Only reads when all are there, so a retry
    /// after more input starts from the same place.
    fn u8_prefixed(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        let n = self.u8()?;
        let out = self.take(usize::from(n));
        if out.is_none() {
            self.pos = start;
        }
        out
    }

    /// Bytes up to a NUL (which is consumed), at most [`MAX_SOCKS4_FIELD`] of them.
    fn nul_terminated(&mut self) -> Result<Option<&'a [u8]>, SocksErrorKind> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        match rest.iter().position(|&b| b == 0) {
            Some(n) if n <= MAX_SOCKS4_FIELD => {
                let field = &rest[..n];
                self.pos += n + 1;
                Ok(Some(field))
            }
            Some(_) => Err(SocksErrorKind::TooLong),
            None if rest.len() > MAX_SOCKS4_FIELD => Err(SocksErrorKind::TooLong),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
