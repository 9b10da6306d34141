//! A private Tor network for interop tests and the bench: `tests/tor-net/start.sh` run
//! in its own process group (killed, by its id, on drop), a real tor client with a
//! SocksPort on it, a local source of bytes, and a SOCKS5 client.
#![allow(dead_code)] // each user takes what it needs

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

pub fn tor_installed() -> bool {
    ["/usr/sbin/tor", "/usr/bin/tor"]
        .iter()
        .any(|p| std::path::Path::new(p).is_file())
        || Command::new("tor").arg("--version").output().is_ok()
}

/// A process group we started; killed (the whole group, by its id) on drop.
pub struct Group(pub Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.0.id();
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{pgid}")])
            .status();
        let _ = self.0.wait();
    }
}

pub fn spawn_group(cmd: &mut Command) -> Group {
    use std::os::unix::process::CommandExt;
    Group(cmd.process_group(0).spawn().expect("spawn"))
}

/// Start the private network; returns the DirAuthority file and the guard keeping it up.
pub fn start_network() -> (PathBuf, Option<Group>) {
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
pub fn start_tor_client(dirauth: &std::path::Path) -> (SocketAddr, Group, PathBuf) {
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

#[path = "serve.rs"]
mod serve;
pub use serve::pattern;
use serve::serve;

/// A server sending `data` to each client. On port 80 or 443 when it can bind one: a tor
/// client only picks exits whose port summary lists the port, and exit0's lists those
/// two (its `accept 127.0.0.1:*` is address-specific, so not in the summary).
pub async fn source(data: Arc<Vec<u8>>, low_port: bool, pace: Option<Duration>) -> SocketAddr {
    let mut l = None;
    let ports: &[u16] = if low_port { &[80, 443, 0] } else { &[0] };
    for &port in ports {
        if let Ok(b) = TcpListener::bind(("127.0.0.1", port)).await {
            l = Some(b);
            break;
        }
    }
    let l = l.unwrap();
    let addr = l.local_addr().unwrap();
    serve(l, data, pace);
    addr
}

/// SOCKS5 CONNECT to an IPv4 `target` and read everything; returns bytes and seconds
/// (from the successful CONNECT). A refused CONNECT is retried a few times: a tor client
/// just bootstrapped on a young test network can fail its first circuits.
pub async fn fetch_via_socks(proxy: SocketAddr, target: SocketAddr) -> (Vec<u8>, f64) {
    let mut attempt = 0;
    let (mut s, started) = loop {
        let started = Instant::now();
        match socks_connect(proxy, target).await {
            Ok(s) => break (s, started),
            Err(code) if attempt < 4 => {
                eprintln!("SOCKS CONNECT via {proxy} refused (reply {code}); retrying");
                attempt += 1;
                smol::Timer::after(Duration::from_secs(2)).await;
            }
            Err(code) => panic!("SOCKS CONNECT via {proxy} refused (reply {code})"),
        }
    };
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    (got, started.elapsed().as_secs_f64())
}

/// SOCKS5 CONNECT; the stream after a success reply, or the reply code as an error.
pub async fn socks_connect(proxy: SocketAddr, target: SocketAddr) -> Result<TcpStream, u8> {
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
    if s.read_exact(&mut reply).await.is_err() {
        return Err(0xff);
    }
    match reply[1] {
        0 => Ok(s),
        code => Err(code),
    }
}

/// Kill one process by its id.
pub fn kill_pid(pid: &str, signal: &str) {
    let _ = Command::new("kill").args(["-s", signal, pid]).status();
}

/// Wait until process `pid` has exited (gone, or a zombie not reaped yet), at most
/// `limit`; how long it took. A SIGKILLed process can take a while to go on a loaded
/// machine (a thread in uninterruptible I/O), and its sockets close only then.
pub fn wait_exited(pid: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name in parentheses.
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')) =>
            {
                return Some(started.elapsed());
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

pub fn mib_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / (1 << 20) as f64
}
