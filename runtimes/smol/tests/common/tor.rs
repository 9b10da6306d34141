//! A real `tor` relay on 127.0.0.1 for interop tests: started in a temporary data
//! directory, killed and cleaned up on drop.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `tor` binary, if installed (on PATH or where Debian puts it).
pub fn tor_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tor"));
    on_path
        .chain([
            PathBuf::from("/usr/sbin/tor"),
            PathBuf::from("/usr/bin/tor"),
        ])
        .find(|p| p.is_file())
}

/// A running tor relay. Dropping it kills the process and removes its data directory.
pub struct TorRelay {
    child: Child,
    dir: PathBuf,
    /// The relay's ORPort.
    pub or_addr: SocketAddr,
    /// Everything tor printed so far (its notice log), for failure messages.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl TorRelay {
    /// Start a standalone relay with `tor` and wait until its ORPort accepts connections.
    pub fn start(tor: &Path) -> TorRelay {
        let dir = temp_dir();
        let port = free_port();
        let or_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let torrc = dir.join("torrc");
        // A relay that never talks to the network: no descriptor upload, no reachability
        // self-test, no exit, no client ports. Without the dummy authority (a closed
        // loopback port) and with the default fallback directories, tor would start
        // bootstrapping from the public Tor network; this way it only ever dials
        // 127.0.0.1:1.
        let config = format!(
            "DataDirectory {data}\n\
             ORPort 127.0.0.1:{port}\n\
             Address 127.0.0.1\n\
             Nickname onionpeerinterop\n\
             ContactInfo onionpeer interop test\n\
             SocksPort 0\n\
             DirPort 0\n\
             PublishServerDescriptor 0\n\
             AssumeReachable 1\n\
             ExitRelay 0\n\
             ExitPolicy reject *:*\n\
             ClientUseIPv6 0\n\
             UseDefaultFallbackDirs 0\n\
             DirAuthority nowhere orport=1 no-v2 \
             v3ident=0000000000000000000000000000000000000001 127.0.0.1:1 \
             0000000000000000000000000000000000000001\n\
             Log notice stdout\n",
            data = dir.join("data").display(),
        );
        std::fs::write(&torrc, config).expect("write torrc");
        let mut child = Command::new(tor)
            .arg("-f")
            .arg(&torrc)
            .arg("--ignore-missing-torrc")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tor");
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut relay = TorRelay {
            child,
            dir,
            or_addr,
            log,
        };
        relay.wait_for_orport(Duration::from_secs(90));
        relay
    }

    fn wait_for_orport(&mut self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "tor exited ({status}) before opening its ORPort:\n{}",
                    self.log_text()
                );
            }
            if TcpStream::connect_timeout(&self.or_addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "tor's ORPort did not open within {limit:?}:\n{}",
            self.log_text()
        );
    }

    /// tor's output so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for TorRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh private directory under the system temp dir (tor wants its DataDirectory
/// 0700).
fn temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("onionpeer-tor-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).expect("create temp dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(dir.join("data"), private).expect("chmod data dir");
    }
    dir
}

/// A port nobody listens on right now (bind to port 0, read it, let go).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}
