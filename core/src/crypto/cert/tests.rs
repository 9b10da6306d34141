use super::*;
use crate::crypto::identity::{Ed25519Keypair, RsaIdentityKey};
use alloc::vec;
use alloc::vec::Vec;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

// A CERTS cell that tor 0.4.5.0-alpha-dev sent as responder in a chutney network, from
// Arti's crates/tor-cell/tests/testvec_chanmsg.rs (test_certs): types 1, 2, 4, 5, 7.
const T1: &str = "3082023A308201A3A003020102020872AB0FE86C771604300D06092A864886F70D01010B0500301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D301E170D3230303632373030303030305A170D3231303231363233353935395A301C311A301806035504030C117777772E617775676863646E732E6E657430820122300D06092A864886F70D01010105000382010F003082010A0282010100FE255E99E10BE986DDA5DFB4AD7C39E8EFE4E5D79E105AB976942B6829386EB1D7B7AFB5ED4FCBEC8C1A34C34FD2ED182F8B42A0363453B55EE371F21347235277E2357F28AA10DD82D4248F7D1894AB5D2979654F71C350F73AD9F918D71F34F1505F77EC16391C8340F392F3684BA4BB6A7B022C3954C1158F152F9E3B4E328FAB2E4E881903CA0E32204B0FDA8AB62B6E215A7BDEC3F2AE41DC58EEC1252F643A1812A5D71802F48D6133DF79955E01F0287BB4AB8CF95BEBCD2EC66EF5B38C7B5EC08DED3D6E2A1D57289D773D5CB932803B6D97784D1DA36AE71C073ADBB7393714001CD7A082512772A7076DC01166417AF7C50AEF7F15FD0806EB07FF0203010001300D06092A864886F70D01010B050003818100CDA4E06BB6BB238B91188A077EEB0A4722518090FD116AF6CDEEB0E85CF6D8E242CF861F973A252EB5116709373B5AC817E6F848E2CBD76AEF684350D3416AEE5F33D56B96982509CDAF11CCA7260E5ADF6DDD0D017AE9A575C999ADAE50B3FB7027E810D47C8C5C14618C0AA10D307E304FBE50E868ADECB2C9536E2DB51BE0";
const T2: &str = "308201B930820122A0030201020208607C28BE6C390943300D06092A864886F70D01010B0500301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D301E170D3230303831303030303030305A170D3231303831303030303030305A301F311D301B06035504030C147777772E74636A76356B766A646472322E636F6D30819F300D06092A864886F70D010101050003818D0030818902818100D38B1E6CEB946E0DB0751F4CBACE3DCB9688B6C25304227B4710C35AFB73627E50500F5913E158B621802612D1C75827003703338375237552EB3CD3C12F6AB3604E60C1A2D26BB1FBAD206FF023969A90909D6A65A5458A5312C26EBD3A3DAD30302D4515CDCD264146AC18E6FC60A04BD3EC327F04294D96BA5AA25B464C3F0203010001300D06092A864886F70D01010B0500038181003BCE561EA7F95CC00B78AAB5D69573FF301C282A751D4A651921D042F1BECDBA24D918A6D8A5E138DC07BBA0B335478AE37ABD2C93A93932442AE9084329E846170FE0FC4A50AAFC804F311CC3CA4F41D845A7BA5901CBBC3E021E9794AAC70CE1F37B0A951592DB1B64F2B4AFB81AE52DBD9B6FEDE96A5FB8125EB6251EE50A";
const T4: &str = "01040006CC2A01F82294B866A31F01FC5D0DA8572850A9B929545C3266558D7D2316E3B74172B00100200400DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9FF1A5203FA27F86EF7528D89A0845D2520166E340754FFEA2AAE0F612B7CE5DA094A0236CDAC45034B0B6842C18E7F6B51B93A3CF7E60663B8AD061C30A62602";
const T5: &str = "01050006C98A03B4FD606B64E4CBD466B8D76CB131069BAE6F3AA1878857C9F624E31D77A799B8007173E5F8068431D0D3F5EE16B4C9FFD59DF373E152A87281BAE744AA5FCF72171BF4B27C4E8FC1C6A9FC5CA11058BC49647063D7903CFD9F512F89099B27BC0C";
const T7: &str = "DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E90006DA3A805CF6006F9179066534DE6B45AD47A5C469063EE462762723396DC9F25452A0A52DA3F5087DD239F2A311F6B0D4DFEFF4ABD089DC3D0237A0ABAB19EB2045B91CDCAF04BE0A72D548A27BF2E77BD876ECFE5E1BE622350DA6BF31F6E306ED896488DD5B39409B23FC3EB7B2C9F7328EB18DA36D54D80575899EA6507CCBFCDF1F";
/// 2020-08-26T00:00Z: inside every validity period of the vector.
const TOR_NOW: u64 = 444_000 * 3600;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn tor_bodies() -> [(u8, Vec<u8>); 5] {
    [(1, h(T1)), (2, h(T2)), (4, h(T4)), (5, h(T5)), (7, h(T7))]
}

fn as_entries(b: &[(u8, Vec<u8>)]) -> Vec<(u8, &[u8])> {
    b.iter().map(|(t, v)| (*t, v.as_slice())).collect()
}

#[test]
fn tor_ed25519_cert_known_answer() {
    let c = Ed25519Cert::decode(&h(T4)).unwrap();
    assert_eq!(c.cert_type, CertType::IDENTITY_V_SIGNING);
    assert_eq!(c.expiration_hours, 0x0006CC2A);
    assert_eq!(c.cert_key_type, CertKeyType::ED25519);
    let signing = h("F82294B866A31F01FC5D0DA8572850A9B929545C3266558D7D2316E3B74172B0");
    let identity = h("DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9");
    assert_eq!(&c.certified_key[..], &signing[..]);
    assert_eq!(&c.signing_key().unwrap().0[..], &identity[..]);
    assert_eq!(c.encode().unwrap(), h(T4));
    assert_eq!(c.verify(None, TOR_NOW).unwrap().0[..], identity[..]);
    assert_eq!(c.verify(None, c.expiry_secs() + 1), Err(CertError::Expired));
    assert!(c.verify(None, c.expiry_secs()).is_ok());

    let c5 = Ed25519Cert::decode(&h(T5)).unwrap();
    assert_eq!(c5.signing_key(), None);
    assert_eq!(c5.verify(None, TOR_NOW), Err(CertError::MissingSigningKey));
    c5.verify(Some(&c.certified_ed25519()), TOR_NOW).unwrap();
    assert_eq!(
        c5.verify(Some(&c.signing_key().unwrap()), TOR_NOW),
        Err(CertError::BadSignature)
    );
    // Tor's type 5 certifies the SHA-256 of its TLS certificate, which it also sends as
    // type 1.
    let d: [u8; 32] = Sha256::digest(h(T1)).into();
    assert_eq!(c5.certified_key, d);
}

#[test]
fn tor_crosscert_and_x509_known_answer() {
    let id = X509Cert::parse(&h(T2)).unwrap();
    let rsa = id.subject_rsa_key().unwrap();
    assert_eq!(rsa.bits(), 1024);
    id.verify_signed_by(&rsa).unwrap();
    assert_eq!(id.not_before(), 1_597_017_600); // 2020-08-10
    assert_eq!(id.not_after(), 1_628_553_600); // 2021-08-10
    let link = X509Cert::parse(&h(T1)).unwrap();
    link.verify_signed_by(&rsa).unwrap();
    assert_eq!(link.subject_rsa_key().unwrap().bits(), 2048);
    assert_eq!(
        link.verify_signed_by(&link.subject_rsa_key().unwrap()),
        Err(CertError::BadSignature)
    );

    let cc = RsaCrosscert::decode(&h(T7)).unwrap();
    assert_eq!(cc.expiration_hours, 0x0006DA3A);
    assert_eq!(cc.signature.len(), 128);
    assert_eq!(cc.encode().unwrap(), h(T7));
    cc.verify(&rsa, TOR_NOW).unwrap();
    assert_eq!(
        cc.verify(&rsa, cc.expiry_secs() + 1),
        Err(CertError::Expired)
    );
    let mut bad = cc.clone();
    bad.expiration_hours += 1;
    assert_eq!(bad.verify(&rsa, TOR_NOW), Err(CertError::BadSignature));
}

#[test]
fn tor_certs_cell_validates() {
    let b = tor_bodies();
    let tls: [u8; 32] = Sha256::digest(h(T1)).into();
    let who = validate_responder_certs(&as_entries(&b), &tls, TOR_NOW).unwrap();
    let rsa = X509Cert::parse(&h(T2)).unwrap().subject_rsa_key().unwrap();
    assert_eq!(who.rsa_id, rsa.peer_id());
    assert_eq!(
        who.ed25519_id.unwrap().0[..],
        h("DCB604DB2034B00FD16986D4ADB9D16B21CB4E4457A33DEC0F538903683E96E9")[..]
    );
    // Same set, RSA-only rules (drop the ed25519 certificates).
    let rsa_only: Vec<_> = b.iter().filter(|(t, _)| *t <= 2).cloned().collect();
    let who2 = validate_responder_certs(&as_entries(&rsa_only), &tls, TOR_NOW).unwrap();
    assert_eq!(who2.rsa_id, who.rsa_id);
    assert_eq!(who2.ed25519_id, None);
    // Wrong TLS certificate.
    assert_eq!(
        validate_responder_certs(&as_entries(&b), &[0; 32], TOR_NOW),
        Err(CertsError::LinkKeyMismatch)
    );
    // Type 5 expired (it has the shortest lifetime: 0x6C98A hours).
    assert_eq!(
        validate_responder_certs(&as_entries(&b), &tls, 0x0006_C98B * 3600),
        Err(CertsError::Invalid {
            cert_type: 5,
            error: CertError::Expired
        })
    );
}

fn relay_keys() -> &'static RelayKeys {
    static K: OnceLock<RelayKeys> = OnceLock::new();
    K.get_or_init(|| RelayKeys::generate(&mut rng(1)).unwrap())
}

/// Another RSA identity, for forgeries.
fn other_rsa() -> &'static RsaIdentityKey {
    static K: OnceLock<RsaIdentityKey> = OnceLock::new();
    K.get_or_init(|| RsaIdentityKey::generate(&mut rng(2)).unwrap())
}

const NOW: u64 = 1_700_000_000;
const TLS: [u8; 32] = [0x55; 32];

fn our_set() -> RelayCertSet {
    RelayCertSet::generate(&mut rng(5), relay_keys(), TLS, NOW).unwrap()
}

fn our_set_with_link() -> RelayCertSet {
    let spki = rsa_spki(other_rsa().public());
    RelayCertSet::generate_with_link_cert(&mut rng(6), relay_keys(), &spki, NOW).unwrap()
}

fn entries_of(s: &RelayCertSet) -> Vec<(u8, Vec<u8>)> {
    s.entries()
        .into_iter()
        .map(|(t, b)| (t, b.to_vec()))
        .collect()
}

#[test]
fn generated_set_validates() {
    let keys = relay_keys();
    let s = our_set();
    assert!(s.link_x509.is_none());
    let who = validate_responder_certs(&s.entries(), &TLS, NOW).unwrap();
    assert_eq!(who.rsa_id, keys.rsa_identity.peer_id());
    assert_eq!(who.ed25519_id, Some(keys.ed_identity.public()));
    // Deterministic.
    assert_eq!(s, our_set());
    insta::assert_snapshot!("relay_set_type2", hex::encode(&s.rsa_id_x509));
    insta::assert_snapshot!("relay_set_type4", hex::encode(&s.id_signing));
    insta::assert_snapshot!("relay_set_type5", hex::encode(&s.signing_tls));
    insta::assert_snapshot!("relay_set_type7", hex::encode(&s.crosscert));

    // Our X.509 parses with x509-cert and carries what we put in.
    let id = X509Cert::parse(&s.rsa_id_x509).unwrap();
    assert_eq!(id.subject_rsa_key().unwrap(), *keys.rsa_identity.public());
    assert!(id.not_before() <= NOW && NOW < id.not_after());
}

#[test]
fn generated_set_with_link_cert_validates_both_ways() {
    let s = our_set_with_link();
    let link = s.link_x509.clone().unwrap();
    let d: [u8; 32] = Sha256::digest(&link).into();
    assert_eq!(s.tls_cert_sha256, d);
    insta::assert_snapshot!("relay_set_type1", hex::encode(&link));
    let who = validate_responder_certs(&s.entries(), &d, NOW).unwrap();
    assert!(who.ed25519_id.is_some());
    let rsa_only: Vec<_> = s.entries().into_iter().filter(|(t, _)| *t <= 2).collect();
    let who2 = validate_responder_certs(&rsa_only, &d, NOW).unwrap();
    assert_eq!(who2.rsa_id, who.rsa_id);
    assert_eq!(who2.ed25519_id, None);
    assert_eq!(
        validate_responder_certs(&rsa_only, &TLS, NOW),
        Err(CertsError::LinkKeyMismatch)
    );
    // Link cert signed by another key.
    let parsed = X509Cert::parse(&link).unwrap();
    assert_eq!(
        parsed.verify_signed_by(other_rsa().public()),
        Err(CertError::BadSignature)
    );
}

fn check(entries: &[(u8, Vec<u8>)], now: u64) -> Result<ResponderIdentity, CertsError> {
    validate_responder_certs(&as_entries(entries), &TLS, now)
}

fn replace(entries: &[(u8, Vec<u8>)], t: u8, body: Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    entries
        .iter()
        .map(|(tt, b)| (*tt, if *tt == t { body.clone() } else { b.clone() }))
        .collect()
}

#[test]
fn missing_and_duplicate() {
    let e = entries_of(&our_set());
    for t in [2u8, 4, 5, 7] {
        let less: Vec<_> = e.iter().filter(|(tt, _)| *tt != t).cloned().collect();
        assert_eq!(check(&less, NOW), Err(CertsError::Missing(t)), "type {t}");
        let mut more = e.clone();
        more.push(e.iter().find(|(tt, _)| *tt == t).unwrap().clone());
        assert_eq!(check(&more, NOW), Err(CertsError::Duplicate(t)), "type {t}");
    }
    // RSA-only without a link certificate.
    let only2: Vec<_> = e.iter().filter(|(t, _)| *t == 2).cloned().collect();
    assert_eq!(check(&only2, NOW), Err(CertsError::Missing(1)));
    // Unknown types are ignored.
    let mut extra = e.clone();
    extra.push((0, vec![1, 2]));
    extra.push((42, vec![]));
    extra.push((42, vec![]));
    assert!(check(&extra, NOW).is_ok());
    assert_eq!(check(&[], NOW), Err(CertsError::Missing(2)));
}

#[test]
fn tampering_and_expiry() {
    let keys = relay_keys();
    let s = our_set();
    let e = entries_of(&s);

    // Flip a bit in each signature.
    for t in [2u8, 4, 5, 7] {
        let mut body = e.iter().find(|(tt, _)| *tt == t).unwrap().1.clone();
        let n = body.len();
        body[n - 3] ^= 0x10;
        let want = CertsError::Invalid {
            cert_type: t,
            error: CertError::BadSignature,
        };
        assert_eq!(check(&replace(&e, t, body), NOW), Err(want), "type {t}");
    }
    // Garbage bodies.
    for t in [2u8, 4, 5, 7] {
        assert_eq!(
            check(&replace(&e, t, vec![1, 2, 3]), NOW),
            Err(CertsError::Malformed(t))
        );
    }
    // Expiry, earliest first: type 5 (2 days), then type 4 (30 days).
    let t5_end = Ed25519Cert::decode(&s.signing_tls).unwrap().expiry_secs();
    assert_eq!(
        check(&e, t5_end + 1),
        Err(CertsError::Invalid {
            cert_type: 5,
            error: CertError::Expired
        })
    );
    let t4_end = Ed25519Cert::decode(&s.id_signing).unwrap().expiry_secs();
    assert_eq!(
        check(&e, t4_end + 1),
        Err(CertsError::Invalid {
            cert_type: 4,
            error: CertError::Expired
        })
    );
    // X.509 identity not yet valid / long expired.
    assert_eq!(
        check(&e, NOW - 10 * 86400),
        Err(CertsError::Invalid {
            cert_type: 2,
            error: CertError::NotYetValid
        })
    );
    assert_eq!(
        check(&e, NOW + 500 * 86400),
        Err(CertsError::Invalid {
            cert_type: 2,
            error: CertError::Expired
        })
    );
    // Cross-certificate for another ed25519 identity, correctly signed.
    let stranger = Ed25519Keypair::generate(&mut rng(7));
    let cc = RsaCrosscert::create(&mut rng(8), &keys.rsa_identity, stranger.public(), u32::MAX)
        .unwrap()
        .encode()
        .unwrap();
    assert_eq!(
        check(&replace(&e, 7, cc), NOW),
        Err(CertsError::IdentityMismatch)
    );
    // Cross-certificate signed by another RSA key.
    let cc = RsaCrosscert::create(
        &mut rng(8),
        other_rsa(),
        keys.ed_identity.public(),
        u32::MAX,
    )
    .unwrap()
    .encode()
    .unwrap();
    assert_eq!(
        check(&replace(&e, 7, cc), NOW),
        Err(CertsError::Invalid {
            cert_type: 7,
            error: CertError::BadSignature
        })
    );
    // Type 4 without its identity extension.
    let c4 = Ed25519Cert::create(
        CertType::IDENTITY_V_SIGNING,
        u32::MAX,
        CertKeyType::ED25519,
        keys.ed_signing.public().0,
        &keys.ed_identity,
        false,
    );
    assert_eq!(
        check(&replace(&e, 4, c4.encode().unwrap()), NOW),
        Err(CertsError::Invalid {
            cert_type: 4,
            error: CertError::MissingSigningKey
        })
    );
    // Type 5 signed by the identity instead of the signing key.
    let c5 = Ed25519Cert::create(
        CertType::SIGNING_V_TLS_CERT,
        u32::MAX,
        CertKeyType::SHA256_OF_X509,
        TLS,
        &keys.ed_identity,
        true,
    );
    assert_eq!(
        check(&replace(&e, 5, c5.encode().unwrap()), NOW),
        Err(CertsError::Invalid {
            cert_type: 5,
            error: CertError::SigningKeyMismatch
        })
    );
    // A type 4 certificate sent as type 5.
    assert_eq!(
        check(&replace(&e, 5, s.id_signing.clone()), NOW),
        Err(CertsError::WrongCertType(5))
    );
    // Identity certificate with a 2048-bit key... use the tor link cert, self-signature
    // aside, its key is 2048 bits.
    assert_eq!(
        check(&replace(&e, 2, h(T1)), NOW),
        Err(CertsError::IdentityKeySize)
    );
    // Another relay's identity certificate: the cross-certificate no longer verifies.
    let other_set = RelayCertSet::generate(&mut rng(5), &other_keys(), TLS, NOW).unwrap();
    assert_eq!(
        check(&replace(&e, 2, other_set.rsa_id_x509.clone()), NOW),
        Err(CertsError::Invalid {
            cert_type: 7,
            error: CertError::BadSignature
        })
    );
}

fn other_keys() -> RelayKeys {
    RelayKeys {
        rsa_identity: other_rsa().clone(),
        ed_identity: Ed25519Keypair::generate(&mut rng(11)),
        ed_signing: Ed25519Keypair::generate(&mut rng(12)),
    }
}

#[test]
fn ed_cert_parse_rules() {
    let signer = Ed25519Keypair::generate(&mut rng(20));
    let mut c = Ed25519Cert::create(
        CertType(8),
        1000,
        CertKeyType::ED25519,
        [9; 32],
        &signer,
        true,
    );
    insta::assert_snapshot!("ed_cert_type8_with_key", hex::encode(c.encode().unwrap()));
    // An unknown extension without AFFECTS_VALIDATION is kept and round-trips.
    c.extensions.push(CertExt {
        ext_type: ExtType(0x42),
        flags: 0,
        data: vec![1, 2, 3],
    });
    let enc = c.encode().unwrap();
    let d = Ed25519Cert::decode(&enc).unwrap();
    assert_eq!(d, c);
    // (the signature is now stale)
    assert_eq!(d.verify(None, 0), Err(CertError::BadSignature));
    // ... with it, the certificate is rejected.
    c.extensions[1].flags = EXT_FLAG_AFFECTS_VALIDATION;
    assert!(Ed25519Cert::decode(&c.encode().unwrap()).is_err());
    // Wrong version, trailing bytes, short signed-with-key extension, truncation.
    let good = Ed25519Cert::create(CertType(4), 1, CertKeyType::ED25519, [0; 32], &signer, true)
        .encode()
        .unwrap();
    let mut v2 = good.clone();
    v2[0] = 2;
    assert!(Ed25519Cert::decode(&v2).is_err());
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        Ed25519Cert::decode(&long),
        Err(crate::codec::Error::ExtraBytes)
    );
    for n in 0..good.len() {
        assert!(Ed25519Cert::decode(&good[..n]).is_err());
    }
    let mut short_ext = good.clone();
    short_ext[40] = 31; // ExtLength low byte (offset 39..41)
    assert!(Ed25519Cert::decode(&short_ext).is_err());
    // Explicit key that disagrees with the extension.
    let dd = Ed25519Cert::decode(&good).unwrap();
    let other = Ed25519Keypair::generate(&mut rng(21)).public();
    assert_eq!(
        dd.verify(Some(&other), 0),
        Err(CertError::SigningKeyMismatch)
    );
    assert_eq!(dd.verify(Some(&signer.public()), 0), Ok(signer.public()));
    assert_eq!(hours_ceil(0), 0);
    assert_eq!(hours_ceil(1), 1);
    assert_eq!(hours_ceil(3600), 1);
    assert_eq!(hours_ceil(u64::MAX), u32::MAX);
}

#[test]
fn crosscert_snapshot_and_parse_rules() {
    let k = relay_keys();
    let cc = RsaCrosscert::create(
        &mut rng(30),
        &k.rsa_identity,
        k.ed_identity.public(),
        500_000,
    )
    .unwrap();
    let enc = cc.encode().unwrap();
    insta::assert_snapshot!("crosscert", hex::encode(&enc));
    assert_eq!(RsaCrosscert::decode(&enc).unwrap(), cc);
    for n in 0..enc.len() {
        assert!(RsaCrosscert::decode(&enc[..n]).is_err());
    }
    let mut long = enc.clone();
    long.push(1);
    assert!(RsaCrosscert::decode(&long).is_err());
}

#[test]
fn x509_rejects_garbage_and_other_algorithms() {
    assert_eq!(X509Cert::parse(&[]), Err(CertError::BadX509));
    let t2 = h(T2);
    for n in [1, 10, 100, t2.len() - 1] {
        assert!(X509Cert::parse(&t2[..n]).is_err());
    }
    let mut trailing = t2.clone();
    trailing.push(0);
    assert!(X509Cert::parse(&trailing).is_err());
    // sha256WithRSA -> sha1WithRSA (OID last byte 0x0b -> 0x05) in both places.
    let mut sha1 = t2.clone();
    let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    let mut i = 0;
    while let Some(p) = sha1[i..].windows(oid.len()).position(|w| w == oid) {
        sha1[i + p + 8] = 0x05;
        i += p + 1;
    }
    assert_eq!(X509Cert::parse(&sha1), Err(CertError::UnsupportedAlgorithm));
}

#[test]
fn fuzz_ed25519_cert_never_panics_and_round_trips() {
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok(c) = Ed25519Cert::decode(input) {
            assert_eq!(c.encode().unwrap(), input);
            let _ = c.verify(None, 0);
        }
    });
}

#[test]
fn fuzz_crosscert_never_panics_and_round_trips() {
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok(c) = RsaCrosscert::decode(input) {
            assert_eq!(c.encode().unwrap(), input);
        }
    });
}

#[test]
fn fuzz_x509_never_panics() {
    let t2 = h(T2);
    bolero::check!()
        .with_type::<(Vec<u8>, u16, u8)>()
        .for_each(|(input, at, xor)| {
            let _ = X509Cert::parse(input).map(|c| c.subject_rsa_key());
            // Mutations of a real certificate reach deeper than random bytes.
            let mut m = t2.clone();
            let i = usize::from(*at) % m.len();
            m[i] ^= *xor;
            if let Ok(c) = X509Cert::parse(&m) {
                let _ = c.subject_rsa_key();
                let _ = c.check_validity(TOR_NOW);
            }
        });
}

#[test]
fn fuzz_validation_never_panics() {
    let bodies = tor_bodies();
    bolero::check!()
        .with_type::<Vec<(u8, Vec<u8>, u8, u16, u8)>>()
        .for_each(|list| {
            let arbitrary: Vec<(u8, &[u8])> =
                list.iter().map(|(t, b, ..)| (*t, b.as_slice())).collect();
            let _ = validate_responder_certs(&arbitrary, &[0; 32], TOR_NOW);
            // Also: real certificates under arbitrary types, some with a byte flipped.
            let mixed: Vec<(u8, Vec<u8>)> = list
                .iter()
                .map(|(t, _, pick, at, xor)| {
                    let mut b = bodies[usize::from(*pick) % bodies.len()].1.clone();
                    let i = usize::from(*at) % b.len();
                    b[i] ^= *xor;
                    (*t % 9, b)
                })
                .collect();
            let _ = validate_responder_certs(&as_entries(&mixed), &[0; 32], TOR_NOW);
        });
}
