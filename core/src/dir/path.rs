//! Path selection (path-spec §2.2–2.3): an exit that allows the target port, a guard
//! and a middle, each chosen at random weighted by consensus bandwidth times the
//! consensus `bandwidth-weights` for its position, with no relay twice, no two in one
//! IPv4 /16 and no two in one declared family.

use rand_core::CryptoRng;

use super::consensus::RelayFlags;
use super::netdir::{NetDir, Relay};

/// A hop's position in a circuit, which sets its eligibility and its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The first hop.
    Guard,
    /// A middle hop.
    Middle,
    /// The last hop, which connects to the target.
    Exit,
}

/// Knobs of path selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathConfig {
    /// Refuse two relays in one IPv4 /16 (tor's `EnforceDistinctSubnets`; off on
    /// test networks, where every relay is on 127.0.0.1).
    pub enforce_distinct_subnets: bool,
    /// Require the `Fast` flag on every hop (tor does for general circuits).
    pub require_fast: bool,
    /// Require the `Stable` flag on every hop (tor does for long-lived ports).
    pub require_stable: bool,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            enforce_distinct_subnets: true,
            require_fast: true,
            require_stable: false,
        }
    }
}

/// Why no path could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// No relay fits this position given the hops already chosen.
    NoCandidate(Position),
}

impl core::fmt::Display for PathError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PathError::NoCandidate(p) => write!(f, "no suitable relay for the {p:?} position"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PathError {}

/// A chosen three-hop path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path<'a> {
    /// First hop.
    pub guard: &'a Relay,
    /// Second hop.
    pub middle: &'a Relay,
    /// Third hop.
    pub exit: &'a Relay,
}

/// The default scale of `bandwidth-weights` (`bwweightscale`).
const WEIGHT_SCALE: i32 = 10_000;

/// Whether `relay` may hold `position` (flags and, for exits, the port).
pub fn is_eligible(
    relay: &Relay,
    position: Position,
    target_port: Option<u16>,
    config: &PathConfig,
) -> bool {
    let f = relay.flags;
    if !f.contains(RelayFlags::RUNNING | RelayFlags::VALID) {
        return false;
    }
    if (config.require_fast && !f.contains(RelayFlags::FAST))
        || (config.require_stable && !f.contains(RelayFlags::STABLE))
    {
        return false;
    }
    let middle_only = f.contains(RelayFlags::MIDDLE_ONLY);
    match position {
        Position::Guard => f.contains(RelayFlags::GUARD) && !middle_only,
        Position::Middle => true,
        Position::Exit => {
            f.contains(RelayFlags::EXIT)
                && !f.contains(RelayFlags::BAD_EXIT)
                && !middle_only
                && target_port.map_or(relay.ipv4_policy.allows_some(), |p| {
                    relay.ipv4_policy.allows(p)
                })
        }
    }
}

/// The bandwidth-weight name for a relay of these flags in this position (dir-spec
/// §3.8.3: `W` + position g/m/e + kind g (guard), e (exit), d (both), m (neither)).
fn weight_name(relay: &Relay, position: Position) -> &'static str {
    let guard = relay.flags.contains(RelayFlags::GUARD);
    let exit =
        relay.flags.contains(RelayFlags::EXIT) && !relay.flags.contains(RelayFlags::BAD_EXIT);
    match (position, guard, exit) {
        (Position::Guard, true, true) => "Wgd",
        (Position::Guard, true, false) => "Wgg",
        (Position::Guard, false, _) => "Wgm",
        (Position::Middle, true, true) => "Wmd",
        (Position::Middle, true, false) => "Wmg",
        (Position::Middle, false, true) => "Wme",
        (Position::Middle, false, false) => "Wmm",
        (Position::Exit, true, true) => "Wed",
        (Position::Exit, false, true) => "Wee",
        (Position::Exit, true, false) => "Weg",
        (Position::Exit, false, false) => "Wem",
    }
}

/// The selection weight of `relay` in `position`: bandwidth × W / scale. A missing
/// weight counts as the full scale (tor's behaviour without `bandwidth-weights`).
pub fn relay_weight(netdir: &NetDir, relay: &Relay, position: Position) -> u64 {
    let scale = netdir.param("bwweightscale", WEIGHT_SCALE, 1, i32::MAX);
    let w = netdir
        .bandwidth_weight(weight_name(relay, position))
        .unwrap_or(scale)
        .clamp(0, scale);
    let (w, scale) = (w.unsigned_abs() as u64, scale.unsigned_abs() as u64);
    u64::from(relay.bandwidth).saturating_mul(w) / scale
}

/// A uniform integer in `[0, n)`, without modulo bias. `n` must be non-zero.
fn uniform_below<R: CryptoRng>(rng: &mut R, n: u64) -> u64 {
    let zone = u64::MAX - (u64::MAX - n + 1) % n;
    loop {
        let v = rng.next_u64();
        if v <= zone {
            return v % n;
        }
    }
}

/// Chooses one relay for `position`, unlike every relay in `chosen` (not the same,
/// not in one family, not in one /16 when so configured). Weighted by bandwidth;
/// if every candidate weighs zero (common on test networks), uniformly.
pub fn select_relay<'a, R: CryptoRng>(
    netdir: &'a NetDir,
    position: Position,
    target_port: Option<u16>,
    chosen: &[&Relay],
    config: &PathConfig,
    rng: &mut R,
) -> Result<&'a Relay, PathError> {
    let candidates = || {
        netdir.relays().iter().filter(move |r| {
            is_eligible(r, position, target_port, config)
                && chosen.iter().all(|c| {
                    c.rsa_identity != r.rsa_identity
                        && !c.same_family(r)
                        && !(config.enforce_distinct_subnets && c.same_ipv4_16(r))
                })
        })
    };
    let total = candidates().fold(0u64, |acc, r| {
        acc.saturating_add(relay_weight(netdir, r, position))
    });
    if total > 0 {
        let mut pick = uniform_below(rng, total);
        for r in candidates() {
            let w = relay_weight(netdir, r, position);
            if pick < w {
                return Ok(r);
            }
            pick -= w;
        }
    }
    let count = candidates().count() as u64;
    if count == 0 {
        return Err(PathError::NoCandidate(position));
    }
    let idx = uniform_below(rng, count);
    candidates()
        .nth(usize::try_from(idx).unwrap_or(usize::MAX))
        .ok_or(PathError::NoCandidate(position))
}

/// Chooses a three-hop path to `target_port`: the exit first (it is the scarcest),
/// then the guard, then the middle, as tor does.
pub fn select_path<'a, R: CryptoRng>(
    netdir: &'a NetDir,
    target_port: u16,
    config: &PathConfig,
    rng: &mut R,
) -> Result<Path<'a>, PathError> {
    let exit = select_relay(netdir, Position::Exit, Some(target_port), &[], config, rng)?;
    let guard = select_relay(netdir, Position::Guard, None, &[exit], config, rng)?;
    let middle = select_relay(netdir, Position::Middle, None, &[exit, guard], config, rng)?;
    Ok(Path {
        guard,
        middle,
        exit,
    })
}
