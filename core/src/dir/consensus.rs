//! The microdescriptor-flavoured consensus (dir-spec §3.4.1, §3.9.2): the network's
//! agreed list of relays, signed by the directory authorities.
//!
//! [`UnverifiedConsensus::parse`] reads the document; [`UnverifiedConsensus::verify`]
//! checks that more than half of the configured authorities signed it and that it is
//! live, and only then hands out the [`Consensus`].

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::authcert::{AuthCert, VerifyError};
use super::authority::DirAuthority;
use super::encoding::{base64_decode_array, hex_decode_array, parse_datetime};
use super::tokens::{Item, ParseError, Tokenizer};

/// The largest consensus accepted (the real microdesc consensus is ~3 MiB).
pub const MAX_CONSENSUS_LEN: usize = 16 * 1024 * 1024;
/// The most router entries accepted (the real network has ~9000).
pub const MAX_ROUTERS: usize = 20_000;
/// The most signatures accepted (one per authority and digest algorithm).
pub const MAX_SIGNATURES: usize = 64;
/// How far outside its validity interval a consensus is still "reasonably live"
/// (tor's `REASONABLY_LIVE_TIME`, 24 hours): clients use a slightly stale consensus
/// rather than none.
pub const REASONABLY_LIVE_SECS: u64 = 24 * 60 * 60;

/// Relay flags from a consensus `s` line, as a bitset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RelayFlags(pub u32);

impl RelayFlags {
    /// `Authority`: a directory authority.
    pub const AUTHORITY: RelayFlags = RelayFlags(1 << 0);
    /// `BadExit`: must not be used as an exit.
    pub const BAD_EXIT: RelayFlags = RelayFlags(1 << 1);
    /// `Exit`: an exit relay (for weighting and exit choice).
    pub const EXIT: RelayFlags = RelayFlags(1 << 2);
    /// `Fast`: bandwidth high enough for general circuits.
    pub const FAST: RelayFlags = RelayFlags(1 << 3);
    /// `Guard`: suitable as an entry guard.
    pub const GUARD: RelayFlags = RelayFlags(1 << 4);
    /// `HSDir`: an onion-service directory.
    pub const HSDIR: RelayFlags = RelayFlags(1 << 5);
    /// `MiddleOnly`: only to be used as a middle hop.
    pub const MIDDLE_ONLY: RelayFlags = RelayFlags(1 << 6);
    /// `NoEdConsensus`: authorities did not agree on its ed25519 key.
    pub const NO_ED_CONSENSUS: RelayFlags = RelayFlags(1 << 7);
    /// `Running`: reachable recently.
    pub const RUNNING: RelayFlags = RelayFlags(1 << 8);
    /// `Stable`: suitable for long-lived circuits.
    pub const STABLE: RelayFlags = RelayFlags(1 << 9);
    /// `StaleDesc`: its descriptor is old.
    pub const STALE_DESC: RelayFlags = RelayFlags(1 << 10);
    /// `Sybil`: flagged as one of too many relays on one address.
    pub const SYBIL: RelayFlags = RelayFlags(1 << 11);
    /// `V2Dir`: serves directory documents.
    pub const V2DIR: RelayFlags = RelayFlags(1 << 12);
    /// `Valid`: a valid (non-rejected) relay.
    pub const VALID: RelayFlags = RelayFlags(1 << 13);

    const NAMES: [(&'static str, RelayFlags); 14] = [
        ("Authority", Self::AUTHORITY),
        ("BadExit", Self::BAD_EXIT),
        ("Exit", Self::EXIT),
        ("Fast", Self::FAST),
        ("Guard", Self::GUARD),
        ("HSDir", Self::HSDIR),
        ("MiddleOnly", Self::MIDDLE_ONLY),
        ("NoEdConsensus", Self::NO_ED_CONSENSUS),
        ("Running", Self::RUNNING),
        ("Stable", Self::STABLE),
        ("StaleDesc", Self::STALE_DESC),
        ("Sybil", Self::SYBIL),
        ("V2Dir", Self::V2DIR),
        ("Valid", Self::VALID),
    ];

    /// The flag with this name; empty for a flag this code does not know.
    pub fn from_name(name: &str) -> RelayFlags {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(RelayFlags(0), |(_, f)| *f)
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: RelayFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for RelayFlags {
    type Output = RelayFlags;
    fn bitor(self, rhs: RelayFlags) -> RelayFlags {
        RelayFlags(self.0 | rhs.0)
    }
}

/// When a consensus may be used (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// `valid-after`: the start of its period.
    pub valid_after: u64,
    /// `fresh-until`: when a newer one is expected.
    pub fresh_until: u64,
    /// `valid-until`: its end.
    pub valid_until: u64,
}

impl Lifetime {
    /// Whether `now` is within `[valid_after, valid_until]`.
    pub fn is_live(&self, now: u64) -> bool {
        self.valid_after <= now && now <= self.valid_until
    }

    /// Whether `now` is within tor's tolerance: up to [`REASONABLY_LIVE_SECS`] before
    /// `valid_after` (a fast clock elsewhere) or after `valid_until` (a stale one).
    pub fn is_reasonably_live(&self, now: u64) -> bool {
        now.saturating_add(REASONABLY_LIVE_SECS) >= self.valid_after
            && now <= self.valid_until.saturating_add(REASONABLY_LIVE_SECS)
    }
}

/// A `dir-source` entry: an authority that voted for this consensus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSource {
    /// Its nickname.
    pub nickname: String,
    /// Its v3 identity.
    pub identity: [u8; 20],
    /// Its IPv4 address.
    pub address: Ipv4Addr,
    /// Its DirPort.
    pub dir_port: u16,
    /// Its ORPort.
    pub or_port: u16,
}

/// One router entry of a microdesc consensus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterStatus {
    /// Its nickname.
    pub nickname: String,
    /// SHA-1 fingerprint of its RSA identity key.
    pub rsa_identity: [u8; 20],
    /// When its descriptor was published, Unix seconds (2038-01-01 in recent consensus
    /// methods, which no longer say).
    pub published: u64,
    /// Its IPv4 address and ORPort.
    pub or_addr: SocketAddrV4,
    /// Its DirPort (0 for none).
    pub dir_port: u16,
    /// Its IPv6 ORPort addresses (`a` lines).
    pub ipv6: Vec<SocketAddrV6>,
    /// SHA-256 of its microdescriptor (`m` line).
    pub md_digest: [u8; 32],
    /// Its flags (`s` line).
    pub flags: RelayFlags,
    /// Its `v` line, if any.
    pub version: Option<String>,
    /// Its `pr` line (subprotocol versions), if any.
    pub protocols: Option<String>,
    /// `w Bandwidth=` in kilobytes per second (0 if absent).
    pub bandwidth: u32,
    /// Whether `w` said `Unmeasured=1`.
    pub unmeasured: bool,
}

/// One `directory-signature` in the footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSignature {
    /// The digest signed.
    pub algorithm: DigestAlgorithm,
    /// The signer's v3 identity.
    pub identity: [u8; 20],
    /// SHA-1 of the signer's signing key.
    pub signing_key_digest: [u8; 20],
    /// The RSA signature.
    pub signature: Vec<u8>,
}

/// The digest algorithm of a `directory-signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// No algorithm given: SHA-1.
    Sha1,
    /// `sha256`.
    Sha256,
    /// Something else (such a signature is never counted).
    Unknown,
}

/// A consensus whose signatures have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consensus {
    /// `consensus-method`.
    pub consensus_method: u32,
    /// Its validity interval.
    pub lifetime: Lifetime,
    /// `voting-delay` (vote seconds, distribution seconds).
    pub voting_delay: Option<(u32, u32)>,
    /// `known-flags`.
    pub known_flags: Vec<String>,
    /// `params`: network parameters.
    pub params: BTreeMap<String, i32>,
    /// The `dir-source` entries.
    pub dir_sources: Vec<DirSource>,
    /// Every router entry, in document order (sorted by identity).
    pub routers: Vec<RouterStatus>,
    /// The footer's `bandwidth-weights` (`Wgg`, `Wmd`, ...).
    pub bandwidth_weights: BTreeMap<String, i32>,
}

impl Consensus {
    /// A network parameter, `default` if absent, clamped to `[min, max]`.
    pub fn param(&self, name: &str, default: i32, min: i32, max: i32) -> i32 {
        self.params
            .get(name)
            .copied()
            .unwrap_or(default)
            .clamp(min, max)
    }
}

/// A parsed consensus whose signatures are not yet checked.
#[derive(Debug, Clone)]
pub struct UnverifiedConsensus {
    consensus: Consensus,
    /// The footer's signatures.
    pub signatures: Vec<DirSignature>,
    sha1_digest: [u8; 20],
    sha256_digest: [u8; 32],
}

/// Where the parser is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Preamble,
    Authorities,
    Routers,
    Footer,
    Signatures,
}

fn parse_u16(s: &str, item: &Item<'_>, what: &'static str) -> Result<u16, ParseError> {
    s.parse().map_err(|_| item.err(what))
}

fn parse_kv_list(item: &Item<'_>, max: usize) -> Result<BTreeMap<String, i32>, ParseError> {
    let mut map = BTreeMap::new();
    for arg in item.args() {
        let (k, v) = arg.split_once('=').ok_or(item.err("expected Key=Value"))?;
        let v: i32 = v
            .parse()
            .map_err(|_| item.err("value is not a 32-bit integer"))?;
        if map.len() >= max {
            return Err(item.err("too many entries"));
        }
        map.insert(k.to_string(), v);
    }
    Ok(map)
}

fn parse_router(item: &Item<'_>) -> Result<RouterStatus, ParseError> {
    let mut args = item.args();
    let mut next = |what| args.next().ok_or(item.err(what));
    let nickname = next("r: nickname missing")?.to_string();
    let rsa_identity = base64_decode_array::<20>(next("r: identity missing")?)
        .ok_or(item.err("r: bad identity"))?;
    let published = parse_datetime(next("r: date missing")?, next("r: time missing")?)
        .ok_or(item.err("r: bad publication time"))?;
    let ip: Ipv4Addr = next("r: address missing")?
        .parse()
        .map_err(|_| item.err("r: bad IPv4 address"))?;
    let or_port = parse_u16(next("r: ORPort missing")?, item, "r: bad ORPort")?;
    let dir_port = parse_u16(next("r: DirPort missing")?, item, "r: bad DirPort")?;
    Ok(RouterStatus {
        nickname,
        rsa_identity,
        published,
        or_addr: SocketAddrV4::new(ip, or_port),
        dir_port,
        ipv6: Vec::new(),
        md_digest: [0; 32],
        flags: RelayFlags(0),
        version: None,
        protocols: None,
        bandwidth: 0,
        unmeasured: false,
    })
}

impl UnverifiedConsensus {
    /// Parses a `network-status-version 3 microdesc` consensus.
    pub fn parse(doc: &[u8]) -> Result<UnverifiedConsensus, ParseError> {
        if doc.len() > MAX_CONSENSUS_LEN {
            return Err(ParseError::at(0, "consensus too large"));
        }
        let mut section = Section::Preamble;
        let mut first = true;
        let mut vote_status = false;
        let mut consensus_method = None;
        let (mut valid_after, mut fresh_until, mut valid_until) = (None, None, None);
        let mut voting_delay = None;
        let mut known_flags = Vec::new();
        let mut params = BTreeMap::new();
        let mut dir_sources = Vec::new();
        let mut routers: Vec<RouterStatus> = Vec::new();
        let mut has_m = false;
        let mut bandwidth_weights = BTreeMap::new();
        let mut signatures = Vec::new();
        let mut signed_end = None;

        for item in Tokenizer::from_bytes(doc)? {
            let item = item?;
            if first {
                if item.keyword != "network-status-version"
                    || item.args().collect::<Vec<_>>() != ["3", "microdesc"]
                {
                    return Err(item.err("expected network-status-version 3 microdesc"));
                }
                first = false;
                continue;
            }
            let section_of = match item.keyword {
                "dir-source" | "contact" | "vote-digest" => Section::Authorities,
                "r" | "a" | "s" | "v" | "pr" | "w" | "m" => Section::Routers,
                "directory-footer" | "bandwidth-weights" => Section::Footer,
                "directory-signature" => Section::Signatures,
                _ => section,
            };
            if section_of < section {
                return Err(item.err("item out of order"));
            }
            section = section_of;
            if section == Section::Signatures && item.keyword != "directory-signature" {
                return Err(item.err("only signatures may follow the first signature"));
            }
            match item.keyword {
                "vote-status" => vote_status = item.args_text.trim_end() == "consensus",
                "consensus-method" => {
                    let m = item.arg(0, "consensus-method missing")?;
                    consensus_method =
                        Some(m.parse().map_err(|_| item.err("bad consensus-method"))?);
                }
                "valid-after" | "fresh-until" | "valid-until" => {
                    let t =
                        parse_datetime(item.arg(0, "date missing")?, item.arg(1, "time missing")?)
                            .ok_or(item.err("bad timestamp"))?;
                    let slot = match item.keyword {
                        "valid-after" => &mut valid_after,
                        "fresh-until" => &mut fresh_until,
                        _ => &mut valid_until,
                    };
                    if slot.replace(t).is_some() {
                        return Err(item.err("duplicate item"));
                    }
                }
                "voting-delay" => {
                    let a = item
                        .arg(0, "voting-delay missing")?
                        .parse()
                        .map_err(|_| item.err("bad voting-delay"))?;
                    let b = item
                        .arg(1, "voting-delay missing")?
                        .parse()
                        .map_err(|_| item.err("bad voting-delay"))?;
                    voting_delay = Some((a, b));
                }
                "known-flags" => {
                    known_flags = item.args().take(64).map(ToString::to_string).collect();
                }
                "params" => params = parse_kv_list(&item, 1024)?,
                "dir-source" => {
                    if dir_sources.len() >= MAX_SIGNATURES {
                        return Err(item.err("too many dir-source entries"));
                    }
                    let nickname = item.arg(0, "dir-source: nickname missing")?.to_string();
                    let identity =
                        hex_decode_array::<20>(item.arg(1, "dir-source: identity missing")?)
                            .ok_or(item.err("dir-source: bad identity"))?;
                    let address = item
                        .arg(3, "dir-source: address missing")?
                        .parse()
                        .map_err(|_| item.err("dir-source: bad address"))?;
                    let dir_port = parse_u16(
                        item.arg(4, "dir-source: DirPort missing")?,
                        &item,
                        "dir-source: bad DirPort",
                    )?;
                    let or_port = parse_u16(
                        item.arg(5, "dir-source: ORPort missing")?,
                        &item,
                        "dir-source: bad ORPort",
                    )?;
                    dir_sources.push(DirSource {
                        nickname,
                        identity,
                        address,
                        dir_port,
                        or_port,
                    });
                }
                "r" => {
                    if routers.len() >= MAX_ROUTERS {
                        return Err(item.err("too many routers"));
                    }
                    if !routers.is_empty() && !has_m {
                        return Err(item.err("previous router has no m line"));
                    }
                    let r = parse_router(&item)?;
                    if routers
                        .last()
                        .is_some_and(|prev| prev.rsa_identity >= r.rsa_identity)
                    {
                        return Err(item.err("routers not sorted by identity"));
                    }
                    routers.push(r);
                    has_m = false;
                }
                "a" | "s" | "v" | "pr" | "w" | "m" => {
                    let r = routers
                        .last_mut()
                        .ok_or(item.err("router item before any r line"))?;
                    match item.keyword {
                        "a" => {
                            let addr = item.arg(0, "a: address missing")?;
                            if r.ipv6.len() < 8
                                && let Ok(addr) = addr.parse::<SocketAddrV6>()
                            {
                                r.ipv6.push(addr);
                            }
                        }
                        "s" => {
                            r.flags = item
                                .args()
                                .fold(RelayFlags(0), |acc, f| acc | RelayFlags::from_name(f));
                        }
                        "v" => r.version = Some(item.args_text.to_string()),
                        "pr" => r.protocols = Some(item.args_text.to_string()),
                        "w" => {
                            for arg in item.args() {
                                match arg.split_once('=') {
                                    Some(("Bandwidth", v)) => {
                                        r.bandwidth =
                                            v.parse().map_err(|_| item.err("w: bad Bandwidth"))?;
                                    }
                                    Some(("Unmeasured", v)) => r.unmeasured = v == "1",
                                    _ => {}
                                }
                            }
                        }
                        _ => {
                            if has_m {
                                return Err(item.err("duplicate m line"));
                            }
                            r.md_digest =
                                base64_decode_array::<32>(item.arg(0, "m: digest missing")?)
                                    .ok_or(item.err("m: bad digest"))?;
                            has_m = true;
                        }
                    }
                }
                "bandwidth-weights" => bandwidth_weights = parse_kv_list(&item, 64)?,
                "directory-signature" => {
                    if signatures.len() >= MAX_SIGNATURES {
                        return Err(item.err("too many signatures"));
                    }
                    if signed_end.is_none() {
                        // Signed: from the start through the space after the first
                        // "directory-signature" keyword.
                        signed_end = Some(item.start + "directory-signature ".len());
                    }
                    let args: Vec<&str> = item.args().take(4).collect();
                    let (algorithm, id, sk) = match args.as_slice() {
                        [id, sk] => (DigestAlgorithm::Sha1, *id, *sk),
                        [alg, id, sk] => (
                            match *alg {
                                "sha1" => DigestAlgorithm::Sha1,
                                "sha256" => DigestAlgorithm::Sha256,
                                _ => DigestAlgorithm::Unknown,
                            },
                            *id,
                            *sk,
                        ),
                        _ => return Err(item.err("directory-signature: wrong number of arguments")),
                    };
                    signatures.push(DirSignature {
                        algorithm,
                        identity: hex_decode_array(id)
                            .ok_or(item.err("directory-signature: bad identity"))?,
                        signing_key_digest: hex_decode_array(sk)
                            .ok_or(item.err("directory-signature: bad key digest"))?,
                        signature: item.object_labelled(&["SIGNATURE"])?.to_vec(),
                    });
                }
                _ => {}
            }
        }
        let missing = |what| ParseError::at(0, what);
        if first {
            return Err(missing("empty document"));
        }
        if !vote_status {
            return Err(missing("vote-status consensus missing"));
        }
        if !routers.is_empty() && !has_m {
            return Err(missing("last router has no m line"));
        }
        let lifetime = Lifetime {
            valid_after: valid_after.ok_or(missing("valid-after missing"))?,
            fresh_until: fresh_until.ok_or(missing("fresh-until missing"))?,
            valid_until: valid_until.ok_or(missing("valid-until missing"))?,
        };
        if !(lifetime.valid_after <= lifetime.fresh_until
            && lifetime.fresh_until <= lifetime.valid_until)
        {
            return Err(missing(
                "valid-after, fresh-until, valid-until out of order",
            ));
        }
        let signed = signed_end
            .and_then(|end| doc.get(..end))
            .ok_or(missing("no directory-signature"))?;
        Ok(UnverifiedConsensus {
            consensus: Consensus {
                consensus_method: consensus_method.ok_or(missing("consensus-method missing"))?,
                lifetime,
                voting_delay,
                known_flags,
                params,
                dir_sources,
                routers,
                bandwidth_weights,
            },
            signatures,
            sha1_digest: Sha1::digest(signed).into(),
            sha256_digest: Sha256::digest(signed).into(),
        })
    }

    /// The consensus's lifetime, readable before verification (to decide whether it is
    /// worth fetching certificates for).
    pub fn lifetime(&self) -> Lifetime {
        self.consensus.lifetime
    }

    /// The v3 identities (and signing-key digests) of the configured authorities that
    /// signed but for which `certs` has no matching certificate: what to fetch from
    /// `/tor/keys/fp/...` before calling [`verify`](Self::verify).
    pub fn missing_certs(&self, authorities: &[DirAuthority], certs: &[AuthCert]) -> Vec<[u8; 20]> {
        let mut out: Vec<[u8; 20]> = Vec::new();
        for sig in &self.signatures {
            let configured = authorities.iter().any(|a| a.v3ident == sig.identity);
            let have = certs.iter().any(|c| {
                c.fingerprint == sig.identity && c.signing_key.digest() == sig.signing_key_digest
            });
            if configured && !have && !out.contains(&sig.identity) {
                out.push(sig.identity);
            }
        }
        out
    }

    /// Verifies the consensus: it must be reasonably live at `now` (Unix seconds) and
    /// more than half of `authorities` must have a valid signature on it, each made
    /// with the signing key of a certificate in `certs` that is current at `now`.
    pub fn verify(
        self,
        authorities: &[DirAuthority],
        certs: &[AuthCert],
        now: u64,
    ) -> Result<Consensus, VerifyError> {
        if !self.consensus.lifetime.is_reasonably_live(now) {
            return Err(VerifyError::NotTimely);
        }
        let mut signed_by: Vec<[u8; 20]> = Vec::new();
        for sig in &self.signatures {
            if signed_by.contains(&sig.identity)
                || !authorities.iter().any(|a| a.v3ident == sig.identity)
            {
                continue;
            }
            let digest: &[u8] = match sig.algorithm {
                DigestAlgorithm::Sha1 => &self.sha1_digest,
                DigestAlgorithm::Sha256 => &self.sha256_digest,
                DigestAlgorithm::Unknown => continue,
            };
            let good = certs.iter().any(|c| {
                c.fingerprint == sig.identity
                    && c.signing_key.digest() == sig.signing_key_digest
                    && c.is_current(now)
                    && c.signing_key.verifies(digest, &sig.signature)
            });
            if good {
                signed_by.push(sig.identity);
            }
        }
        let configured = authorities.len();
        if signed_by.len() * 2 > configured {
            Ok(self.consensus)
        } else {
            Err(VerifyError::NotEnoughSignatures {
                valid: signed_by.len(),
                configured,
            })
        }
    }

    /// The parsed contents, unverified: for inspection and tests only.
    pub fn dangerously_assume_verified(self) -> Consensus {
        self.consensus
    }
}
