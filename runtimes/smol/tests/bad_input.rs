//! Bad input against a running relay and SOCKS port: garbage on the OR port before and
//! after TLS, clients that stall before and after TLS, junk on the SOCKS port, and a
//! "relay" whose CERTS do not prove what they should (a corrupted type-5 certificate, a
//! TLS certificate the CERTS do not cover, an identity other than the one expected).
//! Each is closed within a bounded time with a `tracing` line saying why, and the relay
//! keeps carrying a normal stream afterwards.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use onionpeer_core::node::api::{FirstHop, RelayTarget};
use onionpeer_core::node::config::{NodeConfig, Role};
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_smol::driver::{DriverConfig, NodeHandle, os_seed, spawn_client, spawn_node};
use onionpeer_smol::proxy::{CircuitPool, FixedPath, serve_socks};
use onionpeer_smol::tls::{LinkCert, TlsConnector, TlsListener, TlsResponder};
use sha2::{Digest, Sha256};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

/// How long the relays give a handshake (TLS and link) before closing.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long any bad peer may stay connected before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(10);
const SIZE: usize = 1 << 20;

/// Every log line of the process (INFO and up), for assertions.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        // Also to stderr, so a failing run shows what happened.
        std::io::stderr().write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_len() -> usize {
    log().lock().unwrap().len()
}

/// Wait until a log line written after `from` contains every one of `needles`.
async fn expect_log(from: usize, needles: &[&str]) {
    let start = Instant::now();
    loop {
        {
            let l = log().lock().unwrap();
            let text = String::from_utf8_lossy(&l[from..]);
            if text
                .lines()
                .any(|line| needles.iter().all(|n| line.contains(n)))
            {
                return;
            }
        }
        assert!(
            start.elapsed() < BOUND,
            "no log line with {needles:?}; log since: {}",
            String::from_utf8_lossy(&log().lock().unwrap()[from..])
        );
        smol::Timer::after(Duration::from_millis(50)).await;
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

async fn source(data: Arc<Vec<u8>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    smol::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let data = data.clone();
            smol::spawn(async move {
                let _ = s.write_all(&data).await;
                let _ = s.close().await;
            })
            .detach();
        }
    })
    .detach();
    addr
}

async fn relay(exit: bool) -> NodeHandle {
    let role = if exit { Role::EXIT } else { Role::RELAY };
    let mut node = NodeConfig::new(os_seed().unwrap(), role, 0);
    node.limits.link_handshake_timeout = HANDSHAKE_TIMEOUT;
    if exit {
        node.exit_policy = "accept 127.0.0.1:*".parse::<ExitPolicy>().unwrap();
    }
    let listener = TlsListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        TlsResponder::new(LinkCert::generate().unwrap()).unwrap(),
    )
    .await
    .unwrap();
    spawn_node(DriverConfig {
        node,
        listener: Some(listener),
        web: None,
        transport: None,
    })
    .unwrap()
}

/// A fresh onion proxy (so a fresh link to the first relay) with a SOCKS port over
/// `path`; fetch the source through it and check every byte.
async fn normal_stream_works(path: &[RelayTarget], server: SocketAddr, want: &[u8]) {
    let client = spawn_client().unwrap();
    let pool = Arc::new(CircuitPool::new(
        client.clone(),
        Arc::new(FixedPath(path.to_vec())),
        FirstHop::Ntor,
    ));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socks = l.local_addr().unwrap();
    let serving = smol::spawn(serve_socks(l, pool));
    let fetch = async {
        let mut s = TcpStream::connect(socks).await.unwrap();
        let SocketAddr::V4(v4) = server else {
            unreachable!()
        };
        let mut req = vec![5, 1, 0, 5, 1, 0, 1];
        req.extend_from_slice(&v4.ip().octets());
        req.extend_from_slice(&v4.port().to_be_bytes());
        s.write_all(&req).await.unwrap();
        let mut reply = [0u8; 12];
        s.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply[..4], &[5, 0, 5, 0], "SOCKS replies");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got
    };
    let got = bounded("a normal stream", Duration::from_secs(60), fetch).await;
    assert_eq!(Sha256::digest(&got), Sha256::digest(want));
    drop(serving);
    client.shutdown();
}

async fn bounded<T>(what: &str, limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    f.or(async {
        smol::Timer::after(limit).await;
        panic!("{what}: no result after {limit:?}")
    })
    .await
}

/// Read until the peer closes (EOF or reset); returns how long it took.
async fn wait_closed(mut s: impl smol::io::AsyncRead + Unpin, what: &str) -> Duration {
    let start = Instant::now();
    bounded(what, BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    start.elapsed()
}

/// What the man in the middle does to the relay's CERTS cell.
#[derive(Clone, Copy)]
enum Mitm {
    /// Pass it on: it is genuine, but covers the relay's TLS certificate, not ours.
    PassThrough,
    /// Flip a bit in the type-5 (signing key → TLS link) certificate's signature.
    CorruptType5,
}

/// A TLS server with its own certificate that relays to `upstream` (a real onionpeer
/// relay), altering its CERTS cell as `mode` says.
async fn mitm(upstream: SocketAddr, mode: Mitm) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let responder = TlsResponder::new(LinkCert::generate().unwrap()).unwrap();
    smol::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let responder = responder.clone();
            smol::spawn(async move {
                let Ok((down, _)) = responder.accept(tcp).await else {
                    return;
                };
                let Ok((up, _)) = TlsConnector::new().unwrap().connect(upstream).await else {
                    return;
                };
                let (mut down_r, mut down_w) = smol::io::split(down);
                let (mut up_r, mut up_w) = smol::io::split(up);
                let to_relay = smol::spawn(async move {
                    let _ = smol::io::copy(&mut down_r, &mut up_w).await;
                });
                // VERSIONS: circuit id (2), command, length (2), payload.
                let mut head = [0u8; 5];
                if up_r.read_exact(&mut head).await.is_err() {
                    return;
                }
                let mut versions = vec![0u8; usize::from(u16::from_be_bytes([head[3], head[4]]))];
                let _ = up_r.read_exact(&mut versions).await;
                // CERTS (link protocol 4+): circuit id (4), command 129, length (2).
                let mut certs_head = [0u8; 7];
                let _ = up_r.read_exact(&mut certs_head).await;
                assert_eq!(certs_head[4], 129, "CERTS follows VERSIONS");
                let len = usize::from(u16::from_be_bytes([certs_head[5], certs_head[6]]));
                let mut certs = vec![0u8; len];
                let _ = up_r.read_exact(&mut certs).await;
                if let Mitm::CorruptType5 = mode {
                    corrupt_type5(&mut certs);
                }
                for part in [&head[..], &versions, &certs_head, &certs] {
                    if down_w.write_all(part).await.is_err() {
                        return;
                    }
                }
                let _ = down_w.flush().await;
                let _ = smol::io::copy(&mut up_r, &mut down_w).await;
                drop(to_relay);
            })
            .detach();
        }
    })
    .detach();
    addr
}

/// CERTS payload: count, then (type, u16 length, body) each. Flip the last byte (in the
/// ed25519 signature) of the type-5 certificate.
fn corrupt_type5(certs: &mut [u8]) {
    let mut at = 1;
    for _ in 0..certs[0] {
        let kind = certs[at];
        let len = usize::from(u16::from_be_bytes([certs[at + 1], certs[at + 2]]));
        if kind == 5 {
            certs[at + 3 + len - 1] ^= 0x01;
            return;
        }
        at += 3 + len;
    }
    panic!("no type-5 certificate in CERTS");
}

#[test]
fn bad_input_is_closed_logged_and_the_relay_keeps_serving() {
    log();
    smol::block_on(async {
        let data = Arc::new(pattern(SIZE));
        let server = source(data.clone()).await;
        let relays = [relay(false).await, relay(false).await, relay(true).await];
        let path: Vec<RelayTarget> = relays
            .iter()
            .map(|r| r.relay_target().unwrap().clone())
            .collect();
        let or_port = path[0].addr;
        normal_stream_works(&path, server, &data).await;

        // 1. Garbage on the OR port before TLS.
        let mark = log_len();
        let mut tcp = TcpStream::connect(or_port).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.0\r\n\r\n\x00\xff\xfe garbage garbage")
            .await
            .unwrap();
        wait_closed(tcp, "garbage before TLS").await;
        expect_log(mark, &["TLS handshake failed"]).await;
        normal_stream_works(&path, server, &data).await;

        // 2. A client that connects and sends nothing: closed at the handshake timeout.
        let mark = log_len();
        let tcp = TcpStream::connect(or_port).await.unwrap();
        let took = wait_closed(tcp, "stalled before TLS").await;
        assert!(
            took >= HANDSHAKE_TIMEOUT - Duration::from_millis(200),
            "{took:?}"
        );
        expect_log(mark, &["TLS handshake failed", "timed out"]).await;
        normal_stream_works(&path, server, &data).await;

        // 3. Garbage after TLS: not a VERSIONS cell.
        let mark = log_len();
        let (mut tls, _) = TlsConnector::new().unwrap().connect(or_port).await.unwrap();
        tls.write_all(&[0xff; 600]).await.unwrap();
        tls.flush().await.unwrap();
        wait_closed(tls, "garbage after TLS").await;
        expect_log(mark, &["link closed on error", "ProtocolViolation"]).await;
        normal_stream_works(&path, server, &data).await;

        // 4. TLS, then silence: the link handshake times out.
        let mark = log_len();
        let (tls, _) = TlsConnector::new().unwrap().connect(or_port).await.unwrap();
        let took = wait_closed(tls, "stalled after TLS").await;
        assert!(
            took >= HANDSHAKE_TIMEOUT - Duration::from_millis(200),
            "{took:?}"
        );
        expect_log(mark, &["link closed on error", "HandshakeTimeout"]).await;
        normal_stream_works(&path, server, &data).await;

        // 5. Junk on the SOCKS port: an error reply or a close, and a log line.
        let client = spawn_client().unwrap();
        let pool = Arc::new(CircuitPool::new(
            client.clone(),
            Arc::new(FixedPath(path.clone())),
            FirstHop::Ntor,
        ));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socks = l.local_addr().unwrap();
        let _serving = smol::spawn(serve_socks(l, pool));
        for junk in [
            &b"\x16\x03\x01\x02\x00 this is TLS, not SOCKS"[..],
            b"\x05\x01\x00\x05\x01\x00\x09\x00\x00", // SOCKS5, address type 9
            b"\x05\x00",                             // no methods offered
            b"\x04\x01\x00\x50\x00\x00\x00\x01",     // SOCKS4a without its NUL-ended user id..
        ] {
            let mark = log_len();
            let mut s = TcpStream::connect(socks).await.unwrap();
            s.write_all(junk).await.unwrap();
            if junk[0] == 4 {
                // ..then closed half-way: the handshake ends at EOF.
                s.shutdown(std::net::Shutdown::Write).unwrap();
            }
            wait_closed(s, "junk on the SOCKS port").await;
            expect_log(mark, &["SOCKS connection ended"]).await;
        }
        normal_stream_works(&path, server, &data).await;

        // 6. A relay whose CERTS do not hold: a corrupted type-5 certificate, and genuine
        //    CERTS over a different TLS certificate (a man in the middle).
        for (mode, name) in [
            (Mitm::CorruptType5, "corrupted type-5"),
            (Mitm::PassThrough, "CERTS of another TLS certificate"),
        ] {
            let mark = log_len();
            let mut bad = path.clone();
            bad[0].addr = mitm(or_port, mode).await;
            let r = bounded(
                name,
                Duration::from_secs(30),
                client.build_circuit(bad, FirstHop::Ntor),
            )
            .await;
            assert!(r.is_err(), "{name}: circuit built through a bad link");
            expect_log(mark, &["link closed on error", "BadCertificates"]).await;
        }

        // 7. A relay that is not who we asked for: relay 1's identity at relay 0's address.
        let mark = log_len();
        let mut wrong = path.clone();
        wrong[0].id = path[1].id;
        wrong[0].ed_id = path[1].ed_id;
        let r = bounded(
            "wrong identity",
            Duration::from_secs(30),
            client.build_circuit(wrong, FirstHop::Ntor),
        )
        .await;
        assert!(r.is_err(), "circuit built to the wrong identity");
        expect_log(mark, &["link closed on error", "BadCertificates"]).await;

        // The same client, and the relays, still work.
        let c = bounded(
            "good circuit after bad ones",
            Duration::from_secs(30),
            client.build_circuit(path.clone(), FirstHop::Ntor),
        )
        .await;
        assert!(c.is_ok(), "{c:?}");
        normal_stream_works(&path, server, &data).await;
        for r in &relays {
            r.shutdown();
        }
        client.shutdown();
    });
}
