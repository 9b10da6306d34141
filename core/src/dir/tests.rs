//! Tests across the directory module: a real private-network capture (made with
//! `tests/tor-net/start.sh --capture`), hand-written documents, path-selection
//! properties, and never-panic targets for every parser.

use alloc::string::String;
use alloc::vec::Vec;
use std::format;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

const DIRAUTH: &str = include_str!("testdata/dirauth.torrc");
const CONSENSUS: &[u8] = include_bytes!("testdata/consensus-microdesc");
const CERTS: &[u8] = include_bytes!("testdata/authority-certs");
const MICRODESCS: &[u8] = include_bytes!("testdata/microdescs");

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn fixture_certs() -> Vec<AuthCert> {
    parse_authcerts(CERTS)
        .unwrap()
        .into_iter()
        .map(|c| c.unwrap().verify().unwrap())
        .collect()
}

fn fixture_consensus() -> Consensus {
    let auths = parse_dir_authorities(DIRAUTH).unwrap();
    let unverified = UnverifiedConsensus::parse(CONSENSUS).unwrap();
    let now = unverified.lifetime().valid_after;
    unverified.verify(&auths, &fixture_certs(), now).unwrap()
}

fn fixture_netdir() -> NetDir {
    let mds = parse_microdescs(MICRODESCS)
        .unwrap()
        .into_iter()
        .map(Result::unwrap);
    NetDir::new(fixture_consensus(), mds)
}

/// Test-network path config: every relay is on 127.0.0.1, and the young network has
/// no measured bandwidth.
const TESTNET: PathConfig = PathConfig {
    enforce_distinct_subnets: false,
    require_fast: true,
    require_stable: false,
};

#[test]
fn real_network_authorities_and_certs() {
    let auths = parse_dir_authorities(DIRAUTH).unwrap();
    assert_eq!(auths.len(), 3);
    let certs = fixture_certs();
    assert_eq!(certs.len(), 3);
    for c in &certs {
        assert!(auths.iter().any(|a| a.v3ident == c.fingerprint));
        assert!(c.published < c.expires);
        assert_eq!(c.identity_key.digest(), c.fingerprint);
    }
}

#[test]
fn real_network_consensus_verifies() {
    let c = fixture_consensus();
    assert_eq!(c.routers.len(), 6);
    assert_eq!(c.dir_sources.len(), 3);
    assert_eq!(c.consensus_method, 35);
    assert_eq!(c.lifetime.valid_until - c.lifetime.valid_after, 20);
    assert_eq!(c.bandwidth_weights.get("Wgd"), Some(&3333));
    let exit = c.routers.iter().find(|r| r.nickname == "exit0").unwrap();
    assert!(
        exit.flags
            .contains(RelayFlags::EXIT | RelayFlags::RUNNING | RelayFlags::VALID)
    );
    assert_eq!(exit.or_addr.ip().octets(), [127, 0, 0, 1]);
    assert!(exit.unmeasured);
}

#[test]
fn real_network_consensus_refused_when_tampered_or_stale() {
    let auths = parse_dir_authorities(DIRAUTH).unwrap();
    let certs = fixture_certs();
    let now = UnverifiedConsensus::parse(CONSENSUS)
        .unwrap()
        .lifetime()
        .valid_after;

    // One changed byte in a router entry breaks every signature.
    let text =
        core::str::from_utf8(CONSENSUS)
            .unwrap()
            .replacen("w Bandwidth=0", "w Bandwidth=9", 1);
    let err = UnverifiedConsensus::parse(text.as_bytes())
        .unwrap()
        .verify(&auths, &certs, now)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::NotEnoughSignatures {
            valid: 0,
            configured: 3
        }
    );

    // Two of three certificates: 2 > 3/2, still a majority. One: not.
    let u = UnverifiedConsensus::parse(CONSENSUS).unwrap();
    assert!(u.clone().verify(&auths, &certs[..2], now).is_ok());
    assert_eq!(u.missing_certs(&auths, &certs[..1]).len(), 2);
    assert!(matches!(
        u.clone().verify(&auths, &certs[..1], now),
        Err(VerifyError::NotEnoughSignatures { valid: 1, .. })
    ));

    // Extra configured authorities that did not sign dilute the majority.
    let mut more = auths.clone();
    for i in 0..3u8 {
        let mut a = auths[0].clone();
        a.v3ident = [i; 20];
        more.push(a);
    }
    assert!(u.clone().verify(&more, &certs, now).is_err());

    // Two days late is beyond tor's tolerance; a few hours late is within it.
    assert!(u.clone().verify(&auths, &certs, now + 3 * 3600).is_ok());
    assert_eq!(
        u.clone()
            .verify(&auths, &certs, now + 2 * 86_400)
            .unwrap_err(),
        VerifyError::NotTimely
    );
}

#[test]
fn real_network_certs_refused_when_tampered() {
    let text = core::str::from_utf8(CERTS).unwrap();
    let first = split_at_keyword(text, "dir-key-certificate-version")[0];
    let tampered = first.replacen("dir-key-expires 20", "dir-key-expires 21", 1);
    let err = UnverifiedAuthCert::parse(tampered.as_bytes())
        .unwrap()
        .verify()
        .unwrap_err();
    assert_eq!(err, VerifyError::BadCertification);
    let fp_line = first
        .lines()
        .find(|l| l.starts_with("fingerprint "))
        .unwrap();
    let wrong_fp = first.replacen(
        fp_line,
        "fingerprint 0000000000000000000000000000000000000000",
        1,
    );
    let err = UnverifiedAuthCert::parse(wrong_fp.as_bytes())
        .unwrap()
        .verify()
        .unwrap_err();
    assert_eq!(err, VerifyError::FingerprintMismatch);
}

#[test]
fn real_network_microdescs_match_consensus() {
    let mds: Vec<Microdesc> = parse_microdescs(MICRODESCS)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(mds.len(), 6);
    let consensus = fixture_consensus();
    for r in &consensus.routers {
        assert!(
            mds.iter().any(|m| m.digest == r.md_digest),
            "no microdesc for {}",
            r.nickname
        );
    }
    let netdir = fixture_netdir();
    assert_eq!(netdir.relays().len(), 6);
    assert!(netdir.missing_microdescs().is_empty());
    let exit = netdir
        .relays()
        .iter()
        .find(|r| r.nickname == "exit0")
        .unwrap();
    assert!(exit.ipv4_policy.allows(443) && !exit.ipv4_policy.allows(22));
    assert!(exit.ed25519_identity.is_some());

    // The fetch path for them is what tests/tor-net/start.sh fetched.
    let digests: Vec<[u8; 32]> = consensus.routers.iter().map(|r| r.md_digest).collect();
    let paths = microdesc_paths(&digests);
    assert_eq!(paths.len(), 1);
    let m_lines: Vec<&str> = core::str::from_utf8(CONSENSUS)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("m "))
        .collect();
    assert_eq!(paths[0], format!("/tor/micro/d/{}", m_lines.join("-")));
}

#[test]
fn real_network_paths() {
    let netdir = fixture_netdir();
    let mut r = rng(7);
    for _ in 0..200 {
        let p = select_path(&netdir, 443, &TESTNET, &mut r).unwrap();
        // Only exit0 accepts port 443; the authorities and the other relays reject all.
        assert_eq!(p.exit.nickname, "exit0");
        assert_ne!(p.guard.rsa_identity, p.middle.rsa_identity);
        assert_ne!(p.guard.rsa_identity, p.exit.rsa_identity);
        assert_ne!(p.middle.rsa_identity, p.exit.rsa_identity);
    }
    assert_eq!(
        select_path(&netdir, 22, &TESTNET, &mut r).unwrap_err(),
        PathError::NoCandidate(Position::Exit)
    );
    // With the /16 rule, a network on one address cannot make a path.
    assert!(select_path(&netdir, 443, &PathConfig::default(), &mut r).is_err());
}

// ---- Hand-written documents ----

const MINI_CONSENSUS: &str = "network-status-version 3 microdesc
vote-status consensus
consensus-method 35
valid-after 2024-01-01 00:00:00
fresh-until 2024-01-01 01:00:00
valid-until 2024-01-01 03:00:00
voting-delay 300 300
known-flags Exit Fast Guard Running Stable Valid
params circwindow=1000 bwweightscale=10000
dir-source a1 0000000000000000000000000000000000000001 1.2.3.4 1.2.3.4 80 443
contact x
vote-digest 0000000000000000000000000000000000000000
r relayA AAAAAAAAAAAAAAAAAAAAAAAAAAA 2038-01-01 00:00:00 10.0.0.1 9001 0
a [2001:db8::1]:9001
m AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
s Fast Guard Running Stable Valid UnknownFlag
v Tor 0.4.8.1
pr Link=4-5
w Bandwidth=100
r relayB AQEBAQEBAQEBAQEBAQEBAQEBAQE 2038-01-01 00:00:00 10.1.0.1 9001 9030
m AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE
s Exit Fast Running Valid
w Bandwidth=50 Unmeasured=1
directory-footer
bandwidth-weights Wgg=10000 Wee=10000
directory-signature sha256 0000000000000000000000000000000000000001 0000000000000000000000000000000000000002
-----BEGIN SIGNATURE-----
AAAA
-----END SIGNATURE-----
";

#[test]
fn mini_consensus_parses() {
    let u = UnverifiedConsensus::parse(MINI_CONSENSUS.as_bytes()).unwrap();
    assert_eq!(u.signatures.len(), 1);
    assert_eq!(u.signatures[0].algorithm, DigestAlgorithm::Sha256);
    let c = u.dangerously_assume_verified();
    assert_eq!(c.lifetime.valid_after, 1_704_067_200);
    assert_eq!(c.lifetime.valid_until, 1_704_067_200 + 3 * 3600);
    assert_eq!(c.params.get("circwindow"), Some(&1000));
    assert_eq!(c.param("circwindow", 0, 0, 500), 500);
    assert_eq!(c.dir_sources[0].or_port, 443);
    assert_eq!(c.routers.len(), 2);
    let a = &c.routers[0];
    assert_eq!(a.rsa_identity, [0; 20]);
    assert_eq!(a.ipv6.len(), 1);
    assert_eq!(
        a.flags,
        RelayFlags::FAST
            | RelayFlags::GUARD
            | RelayFlags::RUNNING
            | RelayFlags::STABLE
            | RelayFlags::VALID
    );
    assert_eq!(a.bandwidth, 100);
    assert_eq!(a.version.as_deref(), Some("Tor 0.4.8.1"));
    assert_eq!(c.routers[1].md_digest, [1; 32]);
    assert!(c.routers[1].unmeasured);
}

#[test]
fn mini_consensus_errors_name_the_line() {
    let err = |from: &str, to: &str| {
        let doc = MINI_CONSENSUS.replacen(from, to, 1);
        UnverifiedConsensus::parse(doc.as_bytes()).unwrap_err()
    };
    assert_eq!(
        err("10.0.0.1 9001", "10.0.0.1 90010"),
        ParseError::at(13, "r: bad ORPort")
    );
    assert_eq!(
        err("valid-after 2024-01-01", "valid-after 2024-13-01"),
        ParseError::at(4, "bad timestamp")
    );
    assert_eq!(
        err("3 microdesc", "3"),
        ParseError::at(1, "expected network-status-version 3 microdesc")
    );
    assert_eq!(
        err(
            "r relayB AQEBAQEBAQEBAQEBAQEBAQEBAQE",
            "r relayB AAAAAAAAAAAAAAAAAAAAAAAAAAA"
        )
        .reason,
        "routers not sorted by identity"
    );
    assert_eq!(err("m AQEB", "x AQEB").reason, "last router has no m line");
    assert_eq!(
        err("m AAAA", "x AAAA"),
        ParseError::at(20, "previous router has no m line")
    );
    assert_eq!(
        err("-----END SIGNATURE-----\n", "").reason,
        "object not terminated"
    );
    assert_eq!(
        err("vote-status consensus", "vote-status vote").reason,
        "vote-status consensus missing"
    );
    assert_eq!(
        err(
            "dir-source a1",
            "r x AAAAAAAAAAAAAAAAAAAAAAAAAAA 2038-01-01 00:00:00 1.1.1.1 1 1\ndir-source a1"
        )
        .reason,
        "item out of order"
    );
}

#[test]
fn mini_consensus_lifetime_tolerance() {
    let c = UnverifiedConsensus::parse(MINI_CONSENSUS.as_bytes())
        .unwrap()
        .lifetime();
    assert!(c.is_live(c.valid_after) && c.is_live(c.valid_until) && !c.is_live(c.valid_until + 1));
    assert!(c.is_reasonably_live(c.valid_after - REASONABLY_LIVE_SECS));
    assert!(!c.is_reasonably_live(c.valid_after - REASONABLY_LIVE_SECS - 1));
    assert!(c.is_reasonably_live(c.valid_until + REASONABLY_LIVE_SECS));
    assert!(!c.is_reasonably_live(c.valid_until + REASONABLY_LIVE_SECS + 1));
}

const MINI_MD: &str = "onion-key
ntor-onion-key AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=
family $0202020202020202020202020202020202020202 $0303030303030303030303030303030303030303=x nick
p reject 1-1024,6667
p6 accept 80
id ed25519 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI
id rsa1024 ignored
";

#[test]
fn mini_microdesc_parses() {
    let two = format!("{MINI_MD}{MINI_MD}");
    let mds = parse_microdescs(two.as_bytes()).unwrap();
    assert_eq!(mds.len(), 2);
    let m = mds[0].clone().unwrap();
    assert_eq!(m.ntor_onion_key, [1; 32]);
    assert_eq!(m.ed25519_id, Some([2; 32]));
    assert_eq!(
        m.family,
        [
            FamilyMember::Id([2; 20]),
            FamilyMember::Id([3; 20]),
            FamilyMember::Nickname("nick".into())
        ]
    );
    assert!(m.ipv4_policy.allows(1025) && !m.ipv4_policy.allows(80) && !m.ipv4_policy.allows(6667));
    assert!(m.ipv6_policy.allows(80) && !m.ipv6_policy.allows(81));
    {
        use sha2::Digest;
        assert_eq!(
            m.digest,
            <[u8; 32]>::from(sha2::Sha256::digest(MINI_MD.as_bytes()))
        );
    }
    let no_ntor = MINI_MD.replace(
        "ntor-onion-key AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
        "",
    );
    assert!(Microdesc::parse(&no_ntor).is_err());
    assert_eq!(
        Microdesc::parse(&MINI_MD.replace("p reject 1-1024,6667", "p reject 0-5"))
            .unwrap_err()
            .line,
        4
    );
    assert!(!PortPolicy::reject_all().allows_some());
}

#[test]
fn request_paths() {
    assert_eq!(
        authcerts_path(&[[0xab; 20], [1; 20]]),
        format!("/tor/keys/fp/{}+{}", "AB".repeat(20), "01".repeat(20))
    );
    let digests: Vec<[u8; 32]> = (0..200u8).map(|i| [i; 32]).collect();
    let paths = microdesc_paths(&digests);
    assert_eq!(paths.len(), 3);
    assert_eq!(paths[0].matches('-').count(), MICRODESCS_PER_REQUEST - 1);
    assert!(paths[0].starts_with("/tor/micro/d/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-AQEB"));
    assert!(!paths[2].contains('='));
}

// ---- Path selection properties on synthetic networks ----

/// A network of `n` relays: relay i is on 10.(i/2).0.(i%2) (pairs share a /16), has
/// bandwidth `bw(i)`, Guard on even i, Exit (accepting 443) on i % 3 == 0, and relays
/// 1 and 3 declare each other's family.
fn synthetic(n: u8, bw: impl Fn(u8) -> u32, weights: &str) -> NetDir {
    let mut cons = String::from(
        "network-status-version 3 microdesc\nvote-status consensus\nconsensus-method 35\nvalid-after 2024-01-01 00:00:00\nfresh-until 2024-01-01 01:00:00\nvalid-until 2024-01-01 03:00:00\n",
    );
    let mut mds = String::new();
    for i in 0..n {
        let id = [i; 20];
        let fam = match i {
            1 => format!("family ${}\n", hex_encode_upper(&[3; 20])),
            3 => format!("family ${}\n", hex_encode_upper(&[1; 20])),
            _ => String::new(),
        };
        let policy = if i % 3 == 0 { "p accept 443\n" } else { "" };
        let md = format!(
            "onion-key\nntor-onion-key {}\n{fam}{policy}",
            base64_encode_unpadded(&[i; 32])
        );
        let digest: [u8; 32] = {
            use sha2::Digest;
            sha2::Sha256::digest(md.as_bytes()).into()
        };
        mds.push_str(&md);
        let mut flags = String::from("Fast Running Valid");
        if i % 2 == 0 {
            flags.push_str(" Guard");
        }
        if i % 3 == 0 {
            flags.push_str(" Exit");
        }
        cons.push_str(&format!(
            "r n{i} {} 2038-01-01 00:00:00 10.{}.0.{} 9001 0\nm {}\ns {flags}\nw Bandwidth={}\n",
            base64_encode_unpadded(&id),
            i / 2,
            i % 2,
            base64_encode_unpadded(&digest),
            bw(i)
        ));
    }
    cons.push_str(&format!("directory-footer\nbandwidth-weights {weights}\ndirectory-signature 0000000000000000000000000000000000000001 0000000000000000000000000000000000000002\n-----BEGIN SIGNATURE-----\nAAAA\n-----END SIGNATURE-----\n"));
    let consensus = UnverifiedConsensus::parse(cons.as_bytes())
        .unwrap()
        .dangerously_assume_verified();
    let mds = parse_microdescs(mds.as_bytes())
        .unwrap()
        .into_iter()
        .map(Result::unwrap);
    NetDir::new(consensus, mds)
}

fn check_path(p: &Path<'_>, config: &PathConfig) {
    let hops = [p.guard, p.middle, p.exit];
    assert!(p.guard.flags.contains(RelayFlags::GUARD));
    assert!(p.exit.flags.contains(RelayFlags::EXIT) && p.exit.ipv4_policy.allows(443));
    for (i, a) in hops.iter().enumerate() {
        for b in &hops[i + 1..] {
            assert_ne!(a.rsa_identity, b.rsa_identity, "relay twice");
            assert!(!a.same_family(b), "family twice");
            if config.enforce_distinct_subnets {
                assert!(!a.same_ipv4_16(b), "/16 twice");
            }
        }
    }
}

#[test]
fn paths_respect_constraints_and_are_deterministic() {
    let weights = "Wgg=6000 Wgd=0 Wmg=4000 Wme=0 Wmd=0 Wmm=10000 Wee=10000 Wed=10000";
    let netdir = synthetic(12, |i| 100 + u32::from(i) * 10, weights);
    let config = PathConfig::default();
    let mut counts = [0usize; 12];
    let mut r = rng(1);
    for _ in 0..500 {
        let p = select_path(&netdir, 443, &config, &mut r).unwrap();
        check_path(&p, &config);
        counts[usize::from(p.middle.rsa_identity[0])] += 1;
    }
    // Wme=0 and Wmd=0: an exit-flagged relay is never a middle.
    for i in (0..12).step_by(3) {
        assert_eq!(counts[i], 0, "exit {i} chosen as middle");
    }
    let a: Vec<_> = (0..20)
        .map(|_| {
            select_path(&netdir, 443, &config, &mut rng(9))
                .unwrap()
                .exit
                .nickname
                .clone()
        })
        .collect();
    let mut r1 = rng(3);
    let mut r2 = rng(3);
    for _ in 0..50 {
        assert_eq!(
            select_path(&netdir, 443, &config, &mut r1).unwrap(),
            select_path(&netdir, 443, &config, &mut r2).unwrap()
        );
    }
    assert!(a.iter().all(|n| n == &a[0]));
}

#[test]
fn paths_cope_with_zero_bandwidth_and_weights() {
    for (bw, weights) in [
        (0u32, "Wgg=10000"),
        (100, "Wgg=0 Wgd=0 Wmg=0 Wme=0 Wmd=0 Wmm=0 Wee=0 Wed=0"),
    ] {
        let netdir = synthetic(9, |_| bw, weights);
        let mut seen = [false; 9];
        let mut r = rng(5);
        for _ in 0..300 {
            let p = select_path(&netdir, 443, &PathConfig::default(), &mut r).unwrap();
            check_path(&p, &PathConfig::default());
            seen[usize::from(p.middle.rsa_identity[0])] = true;
        }
        assert!(
            seen.iter().filter(|s| **s).count() >= 5,
            "uniform fallback reaches many middles"
        );
    }
}

#[test]
fn family_must_be_mutual() {
    let netdir = synthetic(6, |_| 1, "Wgg=10000");
    let r1 = netdir.by_rsa_identity(&[1; 20]).unwrap();
    let r3 = netdir.by_rsa_identity(&[3; 20]).unwrap();
    let r0 = netdir.by_rsa_identity(&[0; 20]).unwrap();
    assert!(r1.same_family(r3) && r3.same_family(r1));
    assert!(!r0.same_family(r1));
    assert!(r0.same_ipv4_16(r1) && !r0.same_ipv4_16(r3));
}

#[test]
fn paths_fail_cleanly_without_candidates() {
    let netdir = synthetic(3, |_| 1, "Wgg=10000");
    assert_eq!(
        select_path(&netdir, 80, &PathConfig::default(), &mut rng(0)).unwrap_err(),
        PathError::NoCandidate(Position::Exit)
    );
    let empty = synthetic(0, |_| 1, "Wgg=10000");
    assert!(select_path(&empty, 443, &PathConfig::default(), &mut rng(0)).is_err());
}

// ---- Never panic ----

#[test]
fn parsers_never_panic() {
    bolero::check!().for_each(|input: &[u8]| {
        let _ = UnverifiedConsensus::parse(input);
        let _ = UnverifiedAuthCert::parse(input);
        let _ = parse_authcerts(input);
        let _ = parse_microdescs(input);
    });
}

#[test]
fn parsers_never_panic_on_mutated_real_documents() {
    // Arbitrary bytes rarely get past the first line; splice them into real documents.
    bolero::check!()
        .with_type::<(u16, u16, Vec<u8>)>()
        .for_each(|(at, del, junk)| {
            for doc in [CONSENSUS, CERTS, MICRODESCS, MINI_CONSENSUS.as_bytes()] {
                let at = usize::from(*at) % (doc.len() + 1);
                let end = (at + usize::from(*del) % 64).min(doc.len());
                let mut d = doc[..at].to_vec();
                d.extend_from_slice(junk);
                d.extend_from_slice(&doc[end..]);
                if let Ok(u) = UnverifiedConsensus::parse(&d) {
                    let _ = u.dangerously_assume_verified();
                }
                let _ = parse_authcerts(&d);
                let _ = parse_microdescs(&d);
            }
        });
}

#[test]
fn authcert_missing_items_are_named() {
    let text = core::str::from_utf8(CERTS).unwrap();
    let first = split_at_keyword(text, "dir-key-certificate-version")[0];
    let drop_line = |kw: &str| -> String {
        first
            .lines()
            .filter(|l| !l.starts_with(kw))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let err = |doc: &str| UnverifiedAuthCert::parse(doc.as_bytes()).unwrap_err();
    assert_eq!(
        err(&drop_line("fingerprint ")).reason,
        "fingerprint missing"
    );
    assert_eq!(
        err(&drop_line("dir-key-expires ")).reason,
        "dir-key-expires missing"
    );
    assert_eq!(
        err(&first.replacen("version 3", "version 2", 1)),
        ParseError::at(1, "expected dir-key-certificate-version 3")
    );
    assert_eq!(
        err(&first.replacen("dir-key-published 20", "dir-key-published 19", 1)).reason,
        "bad timestamp"
    );
    let dup = first.replacen(
        "dir-address",
        &format!("fingerprint {}\ndir-address", "00".repeat(20)),
        1,
    );
    assert_eq!(err(&dup).reason, "duplicate item");
    let cert = UnverifiedAuthCert::parse(first.as_bytes())
        .unwrap()
        .verify()
        .unwrap();
    assert!(cert.is_current(cert.published) && !cert.is_current(cert.expires + 1));
    assert!(cert.dir_address.is_some());
}
