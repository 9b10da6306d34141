//! The directory authorities a client trusts, as torrc `DirAuthority` lines:
//! `DirAuthority [nickname] [flags] IPv4:DirPort FINGERPRINT`, where flags include
//! `orport=N`, `v3ident=HEX`, `no-v2`, `ipv6=[addr]:port`, `weight=N`, and the
//! fingerprint is 40 hex digits, optionally in 10 space-separated groups of 4.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::SocketAddrV4;

use super::encoding::hex_decode_array;
use super::tokens::ParseError;

/// One trusted directory authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirAuthority {
    /// Its nickname (empty if the line gave none).
    pub nickname: String,
    /// SHA-1 digest of its v3 authority identity key: the key that certifies the
    /// signing keys whose signatures make a consensus.
    pub v3ident: [u8; 20],
    /// Its ORPort on the same IPv4 address (0 if the line gave none).
    pub or_port: u16,
    /// Its IPv4 address and DirPort, where it serves documents over plain HTTP.
    pub dir_addr: SocketAddrV4,
    /// SHA-1 fingerprint of its relay (link) RSA identity key.
    pub rsa_identity: [u8; 20],
}

impl DirAuthority {
    /// The ORPort address, if the line named one.
    pub fn or_addr(&self) -> Option<SocketAddrV4> {
        (self.or_port != 0).then(|| SocketAddrV4::new(*self.dir_addr.ip(), self.or_port))
    }

    /// Parses one `DirAuthority` line (the leading keyword is optional). `line_no` is
    /// used in errors only.
    pub fn parse_line(line: &str, line_no: usize) -> Result<DirAuthority, ParseError> {
        let err = |reason| ParseError::at(line_no, reason);
        let mut tokens = line.split([' ', '\t']).filter(|t| !t.is_empty()).peekable();
        if tokens
            .peek()
            .is_some_and(|t| t.eq_ignore_ascii_case("DirAuthority"))
        {
            tokens.next();
        }
        let mut nickname = String::new();
        let mut or_port = 0;
        let mut v3ident = None;
        let mut dir_addr = None;
        let mut first = true;
        for token in tokens.by_ref() {
            if let Some(v) = token.strip_prefix("orport=") {
                or_port = v.parse().map_err(|_| err("bad orport="))?;
            } else if let Some(v) = token.strip_prefix("v3ident=") {
                v3ident = Some(hex_decode_array::<20>(v).ok_or(err("bad v3ident="))?);
            } else if token.contains('=') {
                // Other flags (ipv6=, weight=) matter not to a v3 client.
            } else if let Ok(addr) = token.parse::<SocketAddrV4>() {
                dir_addr = Some(addr);
                break;
            } else if token.contains(':') {
                return Err(err("bad IPv4:DirPort"));
            } else if first && !matches!(token, "no-v2" | "bridge" | "hs" | "v1") {
                if token.len() > 19 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(err("bad nickname"));
                }
                nickname = token.to_string();
            }
            // Bare flags (no-v2, hs, bridge, ...) are ignored likewise.
            first = false;
        }
        let dir_addr = dir_addr.ok_or(err("no IPv4:DirPort"))?;
        let mut hex = String::new();
        for t in tokens {
            if hex.len() + t.len() > 40 {
                return Err(err("fingerprint too long"));
            }
            hex.push_str(t);
        }
        let rsa_identity = hex_decode_array::<20>(&hex).ok_or(err("bad fingerprint"))?;
        let v3ident = v3ident.ok_or(err("no v3ident=: not a v3 directory authority"))?;
        Ok(DirAuthority {
            nickname,
            v3ident,
            or_port,
            dir_addr,
            rsa_identity,
        })
    }
}

/// Parses every `DirAuthority` line of a torrc fragment; blank lines, `#` comments and
/// other options are skipped.
pub fn parse_dir_authorities(torrc: &str) -> Result<Vec<DirAuthority>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in torrc.lines().enumerate() {
        let trimmed = line.trim();
        let is_dirauth = trimmed
            .split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("DirAuthority"));
        if is_dirauth {
            out.push(DirAuthority::parse_line(trimmed, i + 1)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MORIA: &str = "DirAuthority moria1 orport=9201 no-v2 v3ident=F533C81CEF0BC0267857C99B2F471ADF249FA232 128.31.0.39:9231 1A25 C635 9D5C DF7E 74F2 B84F 39AE 7E18 F12E 2A73";

    #[test]
    fn parses_grouped_fingerprint() {
        let a = DirAuthority::parse_line(MORIA, 1).unwrap();
        assert_eq!(a.nickname, "moria1");
        assert_eq!(a.or_port, 9201);
        assert_eq!(a.dir_addr, "128.31.0.39:9231".parse().unwrap());
        assert_eq!(a.v3ident[..2], [0xF5, 0x33]);
        assert_eq!(a.rsa_identity[..2], [0x1A, 0x25]);
        assert_eq!(a.or_addr(), Some("128.31.0.39:9201".parse().unwrap()));
    }

    #[test]
    fn parses_file_with_comments() {
        let text = "# test net\nDirAuthority auth0 orport=5000 no-v2 v3ident=40530BFFC3C43A6C0775EF8AAF4D838B189BB49D 127.0.0.1:7000 09605C5034BA01CBB56F8BA6BC2A15853D3CAA7F\n\nSocksPort 0\n";
        let auths = parse_dir_authorities(text).unwrap();
        assert_eq!(auths.len(), 1);
        assert_eq!(auths[0].nickname, "auth0");
        assert_eq!(auths[0].rsa_identity[0], 0x09);
    }

    #[test]
    fn rejects_bad_lines() {
        let no_v3 =
            "DirAuthority x orport=1 127.0.0.1:7000 09605C5034BA01CBB56F8BA6BC2A15853D3CAA7F";
        assert!(DirAuthority::parse_line(no_v3, 1).is_err());
        let short =
            "DirAuthority x v3ident=40530BFFC3C43A6C0775EF8AAF4D838B189BB49D 127.0.0.1:7000 0960";
        assert!(DirAuthority::parse_line(short, 1).is_err());
        let bad_err = parse_dir_authorities("\nDirAuthority x 1.2.3:4 AA\n").unwrap_err();
        assert_eq!(bad_err.line, 2);
    }

    #[test]
    fn never_panics() {
        bolero::check!().for_each(|input: &[u8]| {
            if let Ok(s) = core::str::from_utf8(input) {
                let _ = DirAuthority::parse_line(s, 1);
                let _ = parse_dir_authorities(s);
            }
        });
    }
}
