//! Interop with a real `tor` relay: our TLS initiator and the core's channel codec
//! against tor's ORPort, from VERSIONS to CREATED_FAST.
//!
//! Skipped, with a message saying so, only when no `tor` binary is installed.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use onionpeer_core::cells::channel::{
    AuthMethod, CertType, ChanCell, ChanMsg, ChannelCodec, CircId, CreateFast, LINK_VERSIONS,
    Netinfo, Versions,
};
use onionpeer_smol::tls::{LinkBinding, TlsConnector, TlsStream};
use sha1::{Digest, Sha1};
use smol::io::{AsyncReadExt, AsyncWriteExt};

use common::tor::{TorRelay, tor_binary};

/// Reads channel cells from a link with the core's framer.
struct CellReader {
    codec: ChannelCodec,
    buf: Vec<u8>,
}

impl CellReader {
    async fn next(&mut self, stream: &mut TlsStream) -> ChanCell {
        loop {
            if let Some((cell, used)) = self.codec.decode(&self.buf).expect("malformed cell") {
                self.buf.drain(..used);
                return cell;
            }
            let mut chunk = [0u8; 4096];
            let n = with_timeout(stream.read(&mut chunk)).await.expect("read");
            assert!(n > 0, "tor closed the link");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

async fn with_timeout<T>(f: impl Future<Output = T>) -> T {
    smol::future::or(f, async {
        smol::Timer::after(Duration::from_secs(30)).await;
        panic!("timed out waiting for tor");
    })
    .await
}

async fn send(stream: &mut TlsStream, codec: &ChannelCodec, cell: ChanCell) {
    let bytes = codec.encode_to_vec(&cell).expect("encode");
    stream.write_all(&bytes).await.expect("write");
    stream.flush().await.expect("flush");
}

/// The certified key of a Tor Ed25519 certificate (cert-spec): version(1) cert_type(1)
/// expiration(4) cert_key_type(1) certified_key(32) ...
fn certified_key(cert: &[u8]) -> (u8, u8, [u8; 32]) {
    assert!(cert.len() >= 39, "ed25519 certificate too short");
    assert_eq!(cert[0], 1, "ed25519 certificate version");
    (cert[1], cert[6], cert[7..39].try_into().unwrap())
}

/// KDF-TOR (tor-spec "KDF-TOR"): SHA1(K0 | [0]) | SHA1(K0 | [1]) | ...; the first 20
/// bytes are KH, the key confirmation of CREATE_FAST.
fn kdf_tor_kh(k0: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    Digest::update(&mut h, k0);
    Digest::update(&mut h, [0u8]);
    h.finalize().into()
}

#[test]
fn link_handshake_and_create_fast_against_real_tor() {
    let Some(tor) = tor_binary() else {
        eprintln!("SKIPPED: `tor` is not installed; the real-tor interop test did not run");
        return;
    };
    let relay = TorRelay::start(&tor);
    let result = std::panic::catch_unwind(|| smol::block_on(talk_to(&relay)));
    if let Err(e) = result {
        eprintln!("--- tor's log ---\n{}", relay.log_text());
        std::panic::resume_unwind(e);
    }
}

async fn talk_to(relay: &TorRelay) {
    let connector = TlsConnector::new().expect("connector");
    let (mut stream, binding): (TlsStream, LinkBinding) =
        with_timeout(connector.connect(relay.or_addr))
            .await
            .expect("TLS to tor");
    assert_eq!(binding.local, [0; 32], "no client certificate sent");
    let (_, conn) = stream.get_ref();
    eprintln!(
        "TLS with tor: {:?}, {:?}",
        conn.protocol_version(),
        conn.negotiated_cipher_suite().map(|s| s.suite())
    );

    // VERSIONS, then tor's VERSIONS, CERTS, AUTH_CHALLENGE, NETINFO.
    let mut codec = ChannelCodec::negotiating();
    let versions = Versions {
        versions: LINK_VERSIONS.to_vec(),
    };
    send(&mut stream, &codec, ChanCell::new(None, versions)).await;
    let mut reader = CellReader {
        codec,
        buf: Vec::new(),
    };
    let ChanMsg::Versions(theirs) = reader.next(&mut stream).await.msg else {
        panic!("expected VERSIONS first");
    };
    eprintln!("tor's VERSIONS: {:?}", theirs.versions);
    let version = theirs
        .best_shared(&LINK_VERSIONS)
        .expect("a shared version");
    assert_eq!(version, 5, "negotiated link version");
    codec.set_link_version(version).unwrap();
    reader.codec = codec;

    let mut certs = None;
    let mut challenge = None;
    let netinfo = loop {
        let cell = reader.next(&mut stream).await;
        match cell.msg {
            ChanMsg::Certs(c) => certs = Some(c),
            ChanMsg::AuthChallenge(a) => challenge = Some(a),
            ChanMsg::Netinfo(n) => break n,
            ChanMsg::Padding(_) | ChanMsg::Vpadding(_) => {}
            other => panic!("unexpected cell in the handshake: {other:?}"),
        }
    };
    let certs = certs.expect("tor sent CERTS before NETINFO");
    let types: Vec<u8> = certs.entries.iter().map(|e| e.cert_type.0).collect();
    eprintln!("tor's CERTS types: {types:?}");
    for t in [
        CertType::ID_X509_RSA1024,
        CertType::ED_ID_SIGNING,
        CertType::ED_SIGNING_LINK,
        CertType::RSA_ED_CROSSCERT,
    ] {
        assert!(types.contains(&t.0), "CERTS lacks type {t}: {types:?}");
    }
    let link = certs.cert_body(CertType::ED_SIGNING_LINK).unwrap();
    let (cert_type, key_type, key) = certified_key(link);
    assert_eq!(
        cert_type, 5,
        "type-5 entry holds a signing->link certificate"
    );
    assert_eq!(
        key_type, 3,
        "certified key is a SHA-256 of an X.509 certificate"
    );
    assert_eq!(
        key, binding.remote,
        "tor's type-5 certificate certifies the TLS certificate our TLS layer saw"
    );
    let challenge = challenge.expect("tor sent AUTH_CHALLENGE");
    eprintln!("tor's AUTH_CHALLENGE methods: {:?}", challenge.methods);
    assert!(
        challenge
            .methods
            .contains(&AuthMethod::ED25519_SHA256_RFC5705)
    );
    eprintln!("tor's NETINFO: {netinfo:?}");
    assert_eq!(
        netinfo.other_addr,
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "tor saw us at 127.0.0.1"
    );

    // Our NETINFO (a client sends timestamp 0 and no address of its own), then a
    // one-hop circuit with CREATE_FAST.
    let ours = Netinfo {
        timestamp: 0,
        other_addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        my_addrs: Vec::new(),
    };
    send(&mut stream, &codec, ChanCell::new(None, ours)).await;
    let x = [0x42u8; 20];
    let circ = CircId::new(0x8000_0001);
    send(&mut stream, &codec, ChanCell::new(circ, CreateFast { x })).await;
    let reply = loop {
        let cell = reader.next(&mut stream).await;
        match cell.msg {
            ChanMsg::Padding(_) | ChanMsg::Vpadding(_) | ChanMsg::PaddingNegotiate(_) => {}
            _ => break cell,
        }
    };
    assert_eq!(reply.circ_id, circ, "reply on our circuit");
    let ChanMsg::CreatedFast(created) = reply.msg else {
        panic!("expected CREATED_FAST, got {:?}", reply.msg);
    };
    let mut k0 = x.to_vec();
    k0.extend_from_slice(&created.y);
    assert_eq!(created.kh, kdf_tor_kh(&k0), "CREATED_FAST key confirmation");
    eprintln!("tor answered CREATE_FAST with a valid CREATED_FAST");
}
