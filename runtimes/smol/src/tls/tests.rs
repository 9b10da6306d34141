use super::*;

#[test]
fn random_hostnames_look_like_tors() {
    for _ in 0..50 {
        let name = random_hostname(".com").unwrap();
        let middle = name
            .strip_prefix("www.")
            .and_then(|n| n.strip_suffix(".com"))
            .unwrap();
        assert!((4..=25).contains(&middle.len()), "{name}");
        assert!(
            middle
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
        assert!(ServerName::try_from(name.clone()).is_ok(), "{name}");
    }
}

#[test]
fn link_cert_digest_is_sha256_of_der() {
    let cert = LinkCert::generate().unwrap();
    assert_eq!(cert.digest(), cert_digest(cert.der()));
    let expected: [u8; 32] = Sha256::digest(cert.der()).into();
    assert_eq!(cert.digest(), expected);
    // Two certificates never share a key or a digest.
    assert_ne!(cert.digest(), LinkCert::generate().unwrap().digest());
    assert!(!format!("{cert:?}").contains("key"));
}
