//! Exit policies: which destinations an exit connects to, as an ordered list of
//! accept/reject rules in torrc's `ExitPolicy` syntax (`accept *:443`, `reject 10.0.0.0/8:*`).
//! The first rule that matches decides; no match rejects.

use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

/// One accept or reject rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRule {
    /// Accept (true) or reject (false).
    pub accept: bool,
    /// The addresses covered: `None` for `*`, else a network and prefix length.
    pub net: Option<(IpAddr, u8)>,
    /// The ports covered, inclusive.
    pub ports: (u16, u16),
}

impl ExitRule {
    fn matches(&self, addr: Option<IpAddr>, port: u16) -> bool {
        if port < self.ports.0 || port > self.ports.1 {
            return false;
        }
        match (self.net, addr) {
            (None, _) => true,
            // A rule about specific addresses cannot be decided for a host name before it
            // is resolved: such a destination only passes rules for `*`.
            (Some(_), None) => false,
            (Some((net, bits)), Some(a)) => in_prefix(net, bits, a),
        }
    }
}

fn in_prefix(net: IpAddr, bits: u8, a: IpAddr) -> bool {
    match (net, a) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = u32::from(bits.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(n) & mask) == (u32::from(a) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = u32::from(bits.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(n) & mask) == (u128::from(a) & mask)
        }
        _ => false,
    }
}

/// An ordered list of rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExitPolicy {
    /// The rules, first match wins.
    pub rules: Vec<ExitRule>,
}

impl ExitPolicy {
    /// Reject everything (the default: a relay is not an exit unless configured).
    pub fn reject_all() -> Self {
        ExitPolicy { rules: Vec::new() }
    }

    /// Accept everything.
    pub fn accept_all() -> Self {
        ExitPolicy {
            rules: alloc::vec![ExitRule {
                accept: true,
                net: None,
                ports: (1, u16::MAX)
            }],
        }
    }

    /// Whether a stream to `host` (an address literal or a name) and `port` may exit.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let addr = parse_host_addr(host);
        self.rules
            .iter()
            .find(|r| r.matches(addr, port))
            .is_some_and(|r| r.accept)
    }
}

fn parse_host_addr(host: &str) -> Option<IpAddr> {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.parse().ok()
}

/// Why an exit policy did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitPolicyError(pub &'static str);

impl fmt::Display for ExitPolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad exit policy: {}", self.0)
    }
}

impl FromStr for ExitRule {
    type Err = ExitPolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (accept, rest) = if let Some(r) = s.strip_prefix("accept ") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("reject ") {
            (false, r)
        } else {
            return Err(ExitPolicyError("a rule starts with 'accept ' or 'reject '"));
        };
        let rest = rest.trim();
        let colon = rest
            .rfind(':')
            .ok_or(ExitPolicyError("a rule needs ADDR:PORT"))?;
        let (addr, ports) = (&rest[..colon], &rest[colon + 1..]);
        let net = if addr == "*" {
            None
        } else {
            let (a, bits) = match addr.split_once('/') {
                Some((a, b)) => (
                    a,
                    Some(
                        b.parse::<u8>()
                            .map_err(|_| ExitPolicyError("bad prefix length"))?,
                    ),
                ),
                None => (addr, None),
            };
            let ip = parse_host_addr(a).ok_or(ExitPolicyError("bad address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = bits.unwrap_or(max);
            if bits > max {
                return Err(ExitPolicyError("prefix length too long"));
            }
            Some((ip, bits))
        };
        let ports = if ports == "*" {
            (1, u16::MAX)
        } else if let Some((lo, hi)) = ports.split_once('-') {
            let lo = lo.parse().map_err(|_| ExitPolicyError("bad port"))?;
            let hi = hi.parse().map_err(|_| ExitPolicyError("bad port"))?;
            if lo > hi {
                return Err(ExitPolicyError("port range is backwards"));
            }
            (lo, hi)
        } else {
            let p = ports.parse().map_err(|_| ExitPolicyError("bad port"))?;
            (p, p)
        };
        Ok(ExitRule { accept, net, ports })
    }
}

impl FromStr for ExitPolicy {
    type Err = ExitPolicyError;
    /// Rules separated by commas or newlines, as in torrc.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rules = s
            .split([',', '\n'])
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExitPolicy { rules })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins() {
        let p: ExitPolicy = "reject 127.0.0.0/8:*, accept *:80, accept *:443, reject *:*"
            .parse()
            .unwrap();
        assert!(p.allows("example.org", 80));
        assert!(p.allows("93.184.216.34", 443));
        assert!(!p.allows("127.0.0.1", 80));
        assert!(!p.allows("example.org", 22));
        assert!(!ExitPolicy::reject_all().allows("1.2.3.4", 80));
        assert!(ExitPolicy::accept_all().allows("[::1]", 1));
    }

    #[test]
    fn address_rules_do_not_match_names() {
        let p: ExitPolicy = "accept 10.0.0.0/8:1-1024".parse().unwrap();
        assert!(p.allows("10.2.3.4", 1024));
        assert!(!p.allows("10.2.3.4", 1025));
        assert!(!p.allows("intranet", 80));
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "allow *:80",
            "accept *",
            "accept 1.2.3.4/33:80",
            "accept *:9-1",
            "accept x:80",
        ] {
            assert!(bad.parse::<ExitPolicy>().is_err(), "{bad}");
        }
    }
}
