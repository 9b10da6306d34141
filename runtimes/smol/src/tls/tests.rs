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

/// TLS 1.2 still works end to end (tor accepts it), so the TLS 1.2 signature checks of
/// both verifiers run: the client checks the ServerKeyExchange signature, the server the
/// CertificateVerify of the client's certificate.
#[test]
fn tls12_link_with_client_certificate() {
    smol::block_on(async {
        let server_cert = LinkCert::generate().unwrap();
        let responder = TlsResponder::new(server_cert.clone()).unwrap();
        let listener = TlsListener::bind("127.0.0.1:0".parse().unwrap(), responder)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = smol::spawn(async move { listener.accept().await.unwrap() });

        let client_cert = LinkCert::generate().unwrap();
        let provider = provider();
        let verifier = AnyCertVerifier::new(provider.signature_verification_algorithms);
        let (chain, key) = client_cert.rustls_parts();
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(chain, key)
            .unwrap();
        let connector = TlsConnector {
            connector: RustlsConnector::from(Arc::new(config)),
            local: client_cert.digest(),
        };
        let (stream, binding) = connector.connect(addr).await.unwrap();
        let (_, server_peer, server_binding) = server.await;
        assert!(server_peer.ip().is_loopback());
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        assert_eq!(binding.remote, server_cert.digest());
        assert_eq!(server_binding.remote, client_cert.digest());
    });
}
