//! Our TLS responder and initiator against each other: both ends agree on both digests.

use onionpeer_smol::tls::{LinkCert, TlsConnector, TlsListener, TlsResponder, cert_digest};
use smol::io::{AsyncReadExt, AsyncWriteExt};

async fn exchange(connector: TlsConnector, expect_client_digest: [u8; 32]) {
    let server_cert = LinkCert::generate().unwrap();
    let server_digest = server_cert.digest();
    let listener = TlsListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        TlsResponder::new(server_cert).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(listener.responder().cert_digest(), server_digest);
    let addr = listener.local_addr().unwrap();

    let server = smol::spawn(async move {
        let (mut stream, peer, binding) = listener.accept().await.unwrap();
        assert!(peer.ip().is_loopback());
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        stream.write_all(&buf).await.unwrap();
        stream.flush().await.unwrap();
        binding
    });
    let (mut stream, client_binding) = connector.connect(addr).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    stream.flush().await.unwrap();
    let mut echo = [0u8; 5];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"hello");
    let server_binding = server.await;

    // The initiator saw the responder's certificate, as the responder computes it.
    assert_eq!(client_binding.remote, server_digest);
    assert_eq!(server_binding.local, server_digest);
    // And the other way round.
    assert_eq!(client_binding.local, expect_client_digest);
    assert_eq!(server_binding.remote, expect_client_digest);
    // The peer's certificate is hashed as a whole, DER.
    let (_, conn) = stream.get_ref();
    let der = &conn.peer_certificates().unwrap()[0];
    assert_eq!(cert_digest(der), server_digest);
}

#[test]
fn client_without_certificate() {
    smol::block_on(exchange(TlsConnector::new().unwrap(), [0; 32]));
}

#[test]
fn client_with_certificate() {
    let cert = LinkCert::generate().unwrap();
    let digest = cert.digest();
    smol::block_on(exchange(
        TlsConnector::with_client_cert(&cert).unwrap(),
        digest,
    ));
}
