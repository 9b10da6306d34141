//! SOCKS replies: what the server sends back, and how a Tor stream's fate maps onto it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::SocksVersion;

/// SOCKS4 "request granted".
pub const SOCKS4_GRANTED: u8 = 0x5A;
/// SOCKS4 "request rejected or failed": SOCKS4 has no finer failure code.
pub const SOCKS4_REJECTED: u8 = 0x5B;

/// SOCKS5 reply codes (RFC 1928 section 6).
pub mod socks5_code {
    /// Succeeded.
    pub const SUCCEEDED: u8 = 0x00;
    /// General SOCKS server failure.
    pub const GENERAL_FAILURE: u8 = 0x01;
    /// Connection not allowed by ruleset.
    pub const NOT_ALLOWED: u8 = 0x02;
    /// Network unreachable.
    pub const NET_UNREACHABLE: u8 = 0x03;
    /// Host unreachable.
    pub const HOST_UNREACHABLE: u8 = 0x04;
    /// Connection refused.
    pub const CONNECTION_REFUSED: u8 = 0x05;
    /// TTL expired.
    pub const TTL_EXPIRED: u8 = 0x06;
    /// Command not supported.
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    /// Address type not supported.
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
}

/// The SOCKS5 reply code for a stream that ended with RELAY_END reason `end_reason`
/// before it connected, as tor maps them (`stream_end_reason_to_socks5_response`).
///
/// Reasons: 1 MISC, 2 RESOLVEFAILED, 3 CONNECTREFUSED, 4 EXITPOLICY, 5 DESTROY, 6 DONE,
/// 7 TIMEOUT, 8 NOROUTE, 9 HIBERNATING, 10 INTERNAL, 11 RESOURCELIMIT, 12 CONNRESET,
/// 13 TORPROTOCOL, 14 NOTDIRECTORY. Unknown reasons are a general failure.
pub fn socks5_code_for_end_reason(end_reason: u8) -> u8 {
    use socks5_code::*;
    match end_reason {
        0 => SUCCEEDED,
        2 | 8 => HOST_UNREACHABLE,
        // DONE before CONNECTED means the exit closed before connecting; tor calls it a
        // refusal, like a reset.
        3 | 6 | 12 => CONNECTION_REFUSED,
        4 => NOT_ALLOWED,
        7 => TTL_EXPIRED,
        _ => GENERAL_FAILURE,
    }
}

/// An encoded SOCKS reply, held inline (at most 22 bytes: a SOCKS5 reply with an IPv6
/// address), so replying never allocates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SocksReply {
    buf: [u8; SocksReply::MAX_LEN],
    len: u8,
}

impl SocksReply {
    /// Longest reply: `05 code 00 04` + 16-byte address + port.
    pub const MAX_LEN: usize = 22;

    fn from_slice(bytes: &[u8]) -> Self {
        let mut buf = [0; Self::MAX_LEN];
        let len = bytes.len().min(Self::MAX_LEN);
        buf[..len].copy_from_slice(&bytes[..len]);
        SocksReply {
            buf,
            len: len as u8,
        }
    }

    /// The bytes to send to the client.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// SOCKS5 method selection: `05 method`.
    pub(crate) fn socks5_method(method: u8) -> Self {
        Self::from_slice(&[5, method])
    }

    /// RFC 1929 username/password status: `01 00` (tor accepts any credentials).
    pub(crate) fn user_pass_ok() -> Self {
        Self::from_slice(&[1, 0])
    }

    /// A SOCKS5 reply: `05 code 00 atyp addr port`. No address is sent as 0.0.0.0:0.
    pub fn socks5(code: u8, bound: Option<SocketAddr>) -> Self {
        let bound = bound.unwrap_or_else(|| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
        let mut b = [0u8; Self::MAX_LEN];
        b[..3].copy_from_slice(&[5, code, 0]);
        let end = match bound.ip() {
            IpAddr::V4(a) => {
                b[3] = 1;
                b[4..8].copy_from_slice(&a.octets());
                8
            }
            IpAddr::V6(a) => {
                b[3] = 4;
                b[4..20].copy_from_slice(&a.octets());
                20
            }
        };
        b[end..end + 2].copy_from_slice(&bound.port().to_be_bytes());
        Self::from_slice(&b[..end + 2])
    }

    /// A SOCKS4 reply: `00 code port ip`. SOCKS4 only carries IPv4: anything else is
    /// sent as zeros.
    pub fn socks4(code: u8, bound: Option<SocketAddr>) -> Self {
        let (port, ip) = match bound {
            Some(SocketAddr::V4(a)) => (a.port(), a.ip().octets()),
            _ => (0, [0; 4]),
        };
        let mut b = [0u8; 8];
        b[1] = code;
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        Self::from_slice(&b)
    }

    /// The reply for success in `version`'s format.
    pub fn success(version: SocksVersion, bound: Option<SocketAddr>) -> Self {
        match version {
            SocksVersion::V4 => Self::socks4(SOCKS4_GRANTED, bound),
            SocksVersion::V5 => Self::socks5(socks5_code::SUCCEEDED, bound),
        }
    }

    /// The reply for a stream that ended with RELAY_END reason `end_reason` before
    /// connecting, in `version`'s format.
    pub fn failure(version: SocksVersion, end_reason: u8) -> Self {
        match version {
            SocksVersion::V4 => Self::socks4(SOCKS4_REJECTED, None),
            SocksVersion::V5 => {
                // Reason 0 maps to success in tor's table; a failure must not say so.
                let code = match socks5_code_for_end_reason(end_reason) {
                    socks5_code::SUCCEEDED => socks5_code::GENERAL_FAILURE,
                    c => c,
                };
                Self::socks5(code, None)
            }
        }
    }
}

impl std::fmt::Debug for SocksReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SocksReply({:02x?})", self.as_bytes())
    }
}
