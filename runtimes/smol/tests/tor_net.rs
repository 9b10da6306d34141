//! Real-tor interop: a private Tor network (`tests/tor-net/start.sh`: three authorities,
//! two relays, one exit, all Debian's `tor` on 127.0.0.1), and onionpeer as its client:
//! bootstrap from the authorities (consensus verified against their v3 keys), 3-hop
//! circuits through the tor relays (ntor and CREATE_FAST first hops, ntor extends in
//! RELAY_EARLY), a multi-megabyte download over SOCKS through the tor exit (more than
//! 500 KB, so tor's authenticated SENDME v1 checks pass), BEGIN_DIR to an authority, and
//! the same download through a real tor client for comparison.
//!
//! Prints `SKIPPED: tor not installed` without `tor`. Set `ONIONPEER_TORNET_DIRAUTH` to
//! the DirAuthority file of a network already running to skip starting one.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onionpeer_core::dir::{
    HttpResponseParser, PathConfig, UnverifiedConsensus, parse_dir_authorities,
};
use onionpeer_core::node::api::{FirstHop, StreamTarget};
use onionpeer_smol::dirclient::{DirClient, DirPaths, relay_target};
use onionpeer_smol::driver::spawn_client;
use onionpeer_smol::proxy::{CircuitPool, PathSource, serve_socks};
use sha2::{Digest, Sha256};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

const SIZE: usize = 8 << 20;

fn tor_installed() -> bool {
    ["/usr/sbin/tor", "/usr/bin/tor"]
        .iter()
        .any(|p| std::path::Path::new(p).is_file())
        || Command::new("tor").arg("--version").output().is_ok()
}

/// A process group we started; killed (the whole group, by its id) on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.0.id();
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{pgid}")])
            .status();
        let _ = self.0.wait();
    }
}

fn spawn_group(cmd: &mut Command) -> Group {
    use std::os::unix::process::CommandExt;
    Group(cmd.process_group(0).spawn().expect("spawn"))
}

/// Start the private network; returns the DirAuthority file and the guard keeping it up.
fn start_network() -> (PathBuf, Option<Group>) {
    if let Some(f) = std::env::var_os("ONIONPEER_TORNET_DIRAUTH") {
        return (PathBuf::from(f), None);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/tor-net/start.sh");
    let base = 17600 + (std::process::id() % 40) * 10;
    let mut g = spawn_group(
        Command::new("bash")
            .arg(script)
            .arg("--keep-running")
            .env("TORNET_BASE_PORT", base.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let out = g.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep reading after the path, so the script never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(f) = line.strip_prefix("TORNET_DIRAUTH=") {
                let _ = tx.send(PathBuf::from(f));
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(400)) {
        Ok(f) => (f, Some(g)),
        Err(_) => panic!("tests/tor-net/start.sh did not bring the network up"),
    }
}

/// A real tor client with a SocksPort on the same network.
fn start_tor_client(dirauth: &std::path::Path) -> (SocketAddr, Group, PathBuf) {
    let dir = std::env::temp_dir().join(format!("onionpeer-torclient-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let torrc = dir.join("torrc");
    std::fs::write(
        &torrc,
        format!(
            "TestingTorNetwork 1\nDataDirectory {d}/data\nSocksPort 127.0.0.1:{port}\n\
             ControlPort 0\nORPort 0\nDirPort 0\nUseDefaultFallbackDirs 0\nClientUseIPv6 0\n\
             Log notice file {d}/notice.log\n%include {a}\n",
            d = dir.display(),
            a = dirauth.display()
        ),
    )
    .unwrap();
    let g = spawn_group(
        Command::new("tor")
            .arg("-f")
            .arg(&torrc)
            .arg("--quiet")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let log = dir.join("notice.log");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Bootstrapped 100%")) {
            return (([127, 0, 0, 1], port).into(), g, dir);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("tor client did not bootstrap");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// A server sending `data` to each client. On port 80 or 443 when it can bind one: a tor
/// client only picks exits whose port summary lists the port, and exit0's lists those
/// two (its `accept 127.0.0.1:*` is address-specific, so not in the summary).
async fn source(data: Arc<Vec<u8>>) -> SocketAddr {
    let mut l = None;
    for port in [80, 443, 0] {
        if let Ok(b) = TcpListener::bind(("127.0.0.1", port)).await {
            l = Some(b);
            break;
        }
    }
    let l = l.unwrap();
    let addr = l.local_addr().unwrap();
    smol::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
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

/// SOCKS5 CONNECT to an IPv4 `target` and read everything; returns bytes and seconds.
async fn fetch_via_socks(proxy: SocketAddr, target: SocketAddr) -> (Vec<u8>, f64) {
    let started = Instant::now();
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await.unwrap();
    let SocketAddr::V4(v4) = target else {
        unreachable!()
    };
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&v4.ip().octets());
    req.extend_from_slice(&v4.port().to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 0, "SOCKS reply code");
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    (got, started.elapsed().as_secs_f64())
}

fn mib_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / (1 << 20) as f64
}

async fn with_timeout<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    f.or(async {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("{what}: timed out after {secs} s")
    })
    .await
}

#[test]
fn onionpeer_client_on_a_real_tor_network() {
    if !tor_installed() {
        println!("SKIPPED: tor not installed");
        return;
    }
    let (dirauth, _net) = start_network();
    let torrc = std::fs::read_to_string(&dirauth).unwrap();
    let authorities = parse_dir_authorities(&torrc).unwrap();
    assert_eq!(authorities.len(), 3);
    smol::block_on(async {
        // Bootstrap: consensus, certificates, microdescriptors, all verified.
        let config = PathConfig {
            enforce_distinct_subnets: false,
            require_fast: false,
            require_stable: false,
        };
        let paths = with_timeout(
            60,
            "bootstrap",
            DirPaths::bootstrap(DirClient::new(authorities.clone()), config),
        )
        .await
        .unwrap();
        let netdir = paths.netdir();
        assert!(
            netdir.relays().len() >= 6,
            "{} relays",
            netdir.relays().len()
        );
        eprintln!("bootstrapped: {} relays", netdir.relays().len());

        let data = Arc::new(pattern(SIZE));
        let server = source(data.clone()).await;
        let want = Sha256::digest(&data[..]);
        let client = spawn_client().unwrap();

        // 3 hops with an ntor first hop, then with CREATE_FAST.
        let mut ours = 0.0;
        for first_hop in [FirstHop::Ntor, FirstHop::Fast] {
            let pool = Arc::new(CircuitPool::new(
                client.clone(),
                paths.clone() as Arc<dyn PathSource>,
                first_hop,
            ));
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let socks = l.local_addr().unwrap();
            smol::spawn(serve_socks(l, pool)).detach();
            let (got, secs) = with_timeout(
                120,
                "fetch through tor relays",
                fetch_via_socks(socks, server),
            )
            .await;
            assert_eq!(got.len(), SIZE, "{first_hop:?}");
            assert_eq!(Sha256::digest(&got), want, "{first_hop:?}");
            eprintln!(
                "onionpeer client, {first_hop:?} first hop, 3 tor relays: {} MiB in {secs:.2} s = {:.1} MiB/s",
                SIZE >> 20,
                mib_s(SIZE, secs)
            );
            if first_hop == FirstHop::Ntor {
                ours = secs;
            }
        }

        // BEGIN_DIR on a one-hop circuit to an authority.
        let auth = netdir
            .by_rsa_identity(&authorities[0].rsa_identity)
            .expect("authority in consensus");
        let circ = with_timeout(
            30,
            "one-hop circuit",
            client.build_circuit(vec![relay_target(auth)], FirstHop::Fast),
        )
        .await
        .unwrap();
        let mut s = with_timeout(
            30,
            "BEGIN_DIR",
            client.open_stream(circ, StreamTarget::Directory),
        )
        .await
        .unwrap();
        s.write_all(&onionpeer_core::dir::build_request(
            "127.0.0.1",
            onionpeer_core::dir::CONSENSUS_MICRODESC_PATH,
        ))
        .await
        .unwrap();
        let mut parser = HttpResponseParser::new(8 << 20);
        while let Some(chunk) = with_timeout(30, "BEGIN_DIR read", s.read()).await.unwrap() {
            parser.push(&chunk).unwrap();
        }
        let resp = parser.finish().unwrap();
        assert_eq!(resp.status, 200);
        UnverifiedConsensus::parse(&resp.body).expect("consensus over BEGIN_DIR");
        eprintln!("BEGIN_DIR: consensus of {} bytes", resp.body.len());

        // The same fetch through a real tor client.
        if !matches!(server.port(), 80 | 443) {
            println!("SKIPPED tor-client comparison: cannot listen on port 80 or 443");
            return;
        }
        let (tor_socks, _tor, tor_dir) = start_tor_client(&dirauth);
        let (got, tor_secs) = with_timeout(
            120,
            "fetch through tor client",
            fetch_via_socks(tor_socks, server),
        )
        .await;
        assert_eq!(Sha256::digest(&got), want);
        eprintln!(
            "tor client, 3 tor relays: {} MiB in {tor_secs:.2} s = {:.1} MiB/s; onionpeer/tor throughput ratio {:.2}",
            SIZE >> 20,
            mib_s(SIZE, tor_secs),
            tor_secs / ours
        );
        let _ = std::fs::remove_dir_all(tor_dir);
    });
}
