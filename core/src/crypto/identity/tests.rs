use super::*;
use alloc::string::ToString;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::OnceLock;

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

/// RSA keygen is slow in debug builds: make the seeded key once.
fn key1() -> &'static RsaIdentityKey {
    static K: OnceLock<RsaIdentityKey> = OnceLock::new();
    K.get_or_init(|| RsaIdentityKey::generate(&mut rng(1)).unwrap())
}

#[test]
fn rsa_key_is_1024_bits_and_deterministic() {
    let k = key1();
    assert_eq!(k.public().bits(), 1024);
    assert_eq!(k.public().modulus().len(), 128);
    let again = RsaIdentityKey::generate(&mut rng(1)).unwrap();
    assert_eq!(again.public(), k.public());
    insta::assert_snapshot!("rsa_identity_der_seed1", hex::encode(k.public().to_der()));
    insta::assert_snapshot!("peer_id_seed1", k.peer_id().to_string());
}

#[test]
fn der_round_trip_and_peer_id_is_sha1_of_der() {
    let pk = key1().public();
    let der = pk.to_der();
    let back = RsaPublicIdentity::from_der(&der).unwrap();
    assert_eq!(&back, pk);
    let h: [u8; 20] = Sha1::digest(&der).into();
    assert_eq!(pk.peer_id().0, h);
}

#[test]
fn known_fingerprint() {
    // The RSA identity key of the type-2 certificate in a CERTS cell that tor
    // 0.4.5.0-alpha-dev sent in a chutney network (Arti, crates/tor-cell/tests/
    // testvec_chanmsg.rs, test_certs), as PKCS#1 DER.
    let der = hex::decode(
        "30818902818100D38B1E6CEB946E0DB0751F4CBACE3DCB9688B6C25304227B4710C35AFB73627E50500F\
         5913E158B621802612D1C75827003703338375237552EB3CD3C12F6AB3604E60C1A2D26BB1FBAD206FF0\
         23969A90909D6A65A5458A5312C26EBD3A3DAD30302D4515CDCD264146AC18E6FC60A04BD3EC327F0429\
         4D96BA5AA25B464C3F0203010001",
    )
    .unwrap();
    let pk = RsaPublicIdentity::from_der(&der).unwrap();
    assert_eq!(pk.to_der(), der);
    assert_eq!(pk.bits(), 1024);
    let want: [u8; 20] = Sha1::digest(&der).into();
    assert_eq!(pk.peer_id(), PeerId(want));
}

#[test]
fn peer_id_hex() {
    let id = PeerId([0xab; 20]);
    let s = id.to_string();
    assert_eq!(s, "ABABABABABABABABABABABABABABABABABABABAB");
    assert_eq!(PeerId::from_hex(&s).unwrap(), id);
    assert_eq!(PeerId::from_hex(&s.to_lowercase()).unwrap(), id);
    assert_eq!(PeerId::from_hex(&alloc::format!("${s}")).unwrap(), id);
    assert_eq!(s.parse::<PeerId>().unwrap(), id);
    assert!(PeerId::from_hex("AB").is_err());
    assert!(PeerId::from_hex("ZZABABABABABABABABABABABABABABABABABABAB").is_err());
    assert!(PeerId::from_hex("ééABABABABABABABABABABABABABABABABABAB").is_err());
}

#[test]
fn rsa_sign_verify_unprefixed() {
    let k = key1();
    let digest = [7u8; 32];
    let sig = k.sign_digest(&mut rng(9), &digest).unwrap();
    assert_eq!(sig.len(), 128);
    k.public().verify_digest(&digest, &sig).unwrap();
    // Deterministic regardless of the blinding RNG.
    assert_eq!(sig, k.sign_digest(&mut rng(10), &digest).unwrap());
    assert_eq!(
        k.public().verify_digest(&[8u8; 32], &sig),
        Err(KeyError::BadSignature)
    );
    let mut bad = sig.clone();
    bad[5] ^= 1;
    assert_eq!(
        k.public().verify_digest(&digest, &bad),
        Err(KeyError::BadSignature)
    );
    // The unprefixed and DigestInfo kinds are not interchangeable.
    assert!(k.public().verify_sha256_digestinfo(&digest, &sig).is_err());
    let sig2 = k.sign_sha256_digestinfo(&mut rng(9), &digest).unwrap();
    k.public().verify_sha256_digestinfo(&digest, &sig2).unwrap();
}

#[test]
fn ed25519_deterministic_sign_verify() {
    let a = Ed25519Keypair::generate(&mut rng(3));
    let b = Ed25519Keypair::generate(&mut rng(3));
    assert_eq!(a.public(), b.public());
    insta::assert_snapshot!("ed25519_public_seed3", a.public().to_string());
    let sig = a.sign(b"hello");
    assert_eq!(sig, b.sign(b"hello"));
    a.verify(b"hello", &sig).unwrap();
    a.public().verify(b"hello", &sig).unwrap();
    assert_eq!(
        a.public().verify(b"hellp", &sig),
        Err(KeyError::BadSignature)
    );
    let other = Ed25519Keypair::generate(&mut rng(4));
    assert_eq!(
        other.public().verify(b"hello", &sig),
        Err(KeyError::BadSignature)
    );
    assert_eq!(
        Ed25519Keypair::from_secret(&[1; 32]).public(),
        Ed25519Keypair::from_secret(&[1; 32]).public()
    );
}

#[test]
fn fuzz_rsa_from_der_never_panics() {
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok(k) = RsaPublicIdentity::from_der(input) {
            let _ = k.peer_id();
        }
        let _ = PeerId::from_hex(core::str::from_utf8(input).unwrap_or(""));
    });
}

#[test]
fn fuzz_ed25519_verify_never_panics() {
    bolero::check!()
        .with_type::<([u8; 32], [u8; 64], alloc::vec::Vec<u8>)>()
        .for_each(|(k, s, m)| {
            let _ = Ed25519Identity(*k).verify(m, s);
        });
}
