//! Microdescriptors (dir-spec §3.3): the per-relay keys and summaries a client needs,
//! named by the SHA-256 digest the consensus `m` line gives. Also the request paths a
//! client fetches its directory documents from (dir-spec §4, §5).

use alloc::string::String;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use super::encoding::{
    base64_decode_array, base64_encode_unpadded, hex_decode_array, hex_encode_upper,
};
use super::tokens::{ParseError, Tokenizer, split_at_keyword};

/// The most microdescriptors accepted from one response.
pub const MAX_MICRODESCS_PER_DOCUMENT: usize = 20_000;
/// The largest single microdescriptor accepted (real ones are ~1 KiB with family).
pub const MAX_MICRODESC_LEN: usize = 32 * 1024;
/// The most family members kept per microdescriptor.
pub const MAX_FAMILY: usize = 512;
/// How many microdescriptors tor asks for per request (`/tor/micro/d/...`).
pub const MICRODESCS_PER_REQUEST: usize = 92;

/// Where to fetch the microdesc-flavoured consensus.
pub const CONSENSUS_MICRODESC_PATH: &str = "/tor/status-vote/current/consensus-microdesc";
/// Where to fetch every authority certificate an authority knows.
pub const ALL_AUTHCERTS_PATH: &str = "/tor/keys/all";

/// The path fetching the certificates of the given authorities (by v3 identity).
pub fn authcerts_path(v3idents: &[[u8; 20]]) -> String {
    let mut path = String::from("/tor/keys/fp/");
    for (i, id) in v3idents.iter().enumerate() {
        if i > 0 {
            path.push('+');
        }
        path.push_str(&hex_encode_upper(id));
    }
    path
}

/// The paths fetching the given microdescriptors, at most
/// [`MICRODESCS_PER_REQUEST`] per path (as tor batches them).
pub fn microdesc_paths(digests: &[[u8; 32]]) -> Vec<String> {
    digests
        .chunks(MICRODESCS_PER_REQUEST)
        .map(|batch| {
            let mut path = String::from("/tor/micro/d/");
            for (i, d) in batch.iter().enumerate() {
                if i > 0 {
                    path.push('-');
                }
                path.push_str(&base64_encode_unpadded(d));
            }
            path
        })
        .collect()
}

/// A port-policy summary (`p` / `p6`): which ports a relay lets exit traffic reach on
/// most addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortPolicy {
    /// True for `accept` (the ranges are allowed), false for `reject` (all but them).
    pub accept: bool,
    /// Inclusive port ranges, as listed.
    pub ranges: Vec<(u16, u16)>,
}

impl PortPolicy {
    /// The policy of a relay with no `p` line: no exit traffic at all.
    pub fn reject_all() -> PortPolicy {
        PortPolicy {
            accept: false,
            ranges: alloc::vec![(1, 65535)],
        }
    }

    /// Parses `accept 80,443` / `reject 1-1024,6667`.
    pub fn parse(text: &str) -> Option<PortPolicy> {
        let mut parts = text.split([' ', '\t']).filter(|s| !s.is_empty());
        let accept = match parts.next()? {
            "accept" => true,
            "reject" => false,
            _ => return None,
        };
        let list = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let mut ranges = Vec::new();
        for entry in list.split(',') {
            if ranges.len() >= 1024 {
                return None;
            }
            let (lo, hi) = match entry.split_once('-') {
                Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
                None => {
                    let p = entry.parse::<u16>().ok()?;
                    (p, p)
                }
            };
            if lo == 0 || lo > hi {
                return None;
            }
            ranges.push((lo, hi));
        }
        Some(PortPolicy { accept, ranges })
    }

    /// Whether exit traffic to `port` is allowed.
    pub fn allows(&self, port: u16) -> bool {
        let listed = self.ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi);
        listed == self.accept
    }

    /// Whether some port is allowed.
    pub fn allows_some(&self) -> bool {
        if self.accept {
            !self.ranges.is_empty()
        } else {
            (1..=65535u16).any(|p| self.allows(p))
        }
    }
}

/// A member of a declared family (`family` line).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FamilyMember {
    /// `$HEXFINGERPRINT` (optionally followed by `=name` or `~name`).
    Id([u8; 20]),
    /// A bare nickname (old style; compared case-insensitively).
    Nickname(String),
}

/// One microdescriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Microdesc {
    /// SHA-256 of its exact text: the consensus `m` line names it by this.
    pub digest: [u8; 32],
    /// The curve25519 key for the ntor handshake.
    pub ntor_onion_key: [u8; 32],
    /// The ed25519 identity (`id ed25519`), if given.
    pub ed25519_id: Option<[u8; 32]>,
    /// The declared family.
    pub family: Vec<FamilyMember>,
    /// Exit policy summary for IPv4 (`p`; reject-all if absent).
    pub ipv4_policy: PortPolicy,
    /// Exit policy summary for IPv6 (`p6`; reject-all if absent).
    pub ipv6_policy: PortPolicy,
}

impl Microdesc {
    /// Parses one microdescriptor (starting with `onion-key`).
    pub fn parse(text: &str) -> Result<Microdesc, ParseError> {
        if text.len() > MAX_MICRODESC_LEN {
            return Err(ParseError::at(0, "microdescriptor too large"));
        }
        let mut ntor = None;
        let mut ed = None;
        let mut family = Vec::new();
        let mut ipv4_policy = None;
        let mut ipv6_policy = None;
        let mut first = true;
        for item in Tokenizer::new(text) {
            let item = item?;
            if first {
                if item.keyword != "onion-key" {
                    return Err(item.err("microdescriptor must start with onion-key"));
                }
                first = false;
                continue;
            }
            match item.keyword {
                "onion-key" => return Err(item.err("second onion-key")),
                "ntor-onion-key" => {
                    if ntor.is_some() {
                        return Err(item.err("duplicate ntor-onion-key"));
                    }
                    let k = item.arg(0, "ntor-onion-key missing")?;
                    ntor =
                        Some(base64_decode_array::<32>(k).ok_or(item.err("bad ntor-onion-key"))?);
                }
                "id" if item.arg(0, "id: key type missing")? == "ed25519" => {
                    if ed.is_some() {
                        return Err(item.err("duplicate id ed25519"));
                    }
                    let k = item.arg(1, "id: key missing")?;
                    ed = Some(base64_decode_array::<32>(k).ok_or(item.err("bad ed25519 id"))?);
                }
                "family" => {
                    for m in item.args() {
                        if family.len() >= MAX_FAMILY {
                            break;
                        }
                        if let Some(hex) = m.strip_prefix('$') {
                            let hex = hex.split(['=', '~']).next().unwrap_or("");
                            if let Some(id) = hex_decode_array::<20>(hex) {
                                family.push(FamilyMember::Id(id));
                            }
                        } else if m.len() <= 19 {
                            family.push(FamilyMember::Nickname(m.to_ascii_lowercase()));
                        }
                    }
                }
                "p" | "p6" => {
                    let policy = PortPolicy::parse(item.args_text)
                        .ok_or(item.err("bad port policy summary"))?;
                    let slot = if item.keyword == "p" {
                        &mut ipv4_policy
                    } else {
                        &mut ipv6_policy
                    };
                    if slot.replace(policy).is_some() {
                        return Err(item.err("duplicate policy summary"));
                    }
                }
                _ => {}
            }
        }
        if first {
            return Err(ParseError::at(0, "empty microdescriptor"));
        }
        Ok(Microdesc {
            digest: Sha256::digest(text.as_bytes()).into(),
            ntor_onion_key: ntor.ok_or(ParseError::at(0, "ntor-onion-key missing"))?,
            ed25519_id: ed,
            family,
            ipv4_policy: ipv4_policy.unwrap_or_else(PortPolicy::reject_all),
            ipv6_policy: ipv6_policy.unwrap_or_else(PortPolicy::reject_all),
        })
    }

    /// Whether this relay declares `member` (by identity or nickname) in its family.
    pub fn declares(&self, rsa_identity: &[u8; 20], nickname: &str) -> bool {
        self.family.iter().any(|m| match m {
            FamilyMember::Id(id) => id == rsa_identity,
            FamilyMember::Nickname(n) => n.eq_ignore_ascii_case(nickname),
        })
    }
}

/// Parses a `/tor/micro/d/...` response: a concatenation of microdescriptors, each
/// judged on its own (a bad one does not spoil the rest). Errors name lines within the
/// offending microdescriptor.
pub fn parse_microdescs(body: &[u8]) -> Result<Vec<Result<Microdesc, ParseError>>, ParseError> {
    let text = core::str::from_utf8(body).map_err(|_| ParseError::at(0, "not UTF-8"))?;
    let pieces = split_at_keyword(text, "onion-key");
    if pieces.len() > MAX_MICRODESCS_PER_DOCUMENT {
        return Err(ParseError::at(0, "too many microdescriptors"));
    }
    Ok(pieces.into_iter().map(Microdesc::parse).collect())
}
