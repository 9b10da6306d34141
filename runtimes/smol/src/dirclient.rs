//! The directory client: fetches the microdesc consensus, the authority certificates
//! that sign it and the microdescriptors it names, over plain HTTP from the authorities'
//! DirPorts; verifies them with the core's `dir` module; keeps the result fresh; and
//! chooses paths from it ([`DirPaths`] is a [`PathSource`]).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::dir::{
    AuthCert, CONSENSUS_MICRODESC_PATH, DirAuthority, HttpResponseParser, MAX_CONSENSUS_LEN,
    Microdesc, NetDir, PathConfig, Position, UnverifiedConsensus, authcerts_path, build_request,
    microdesc_paths, parse_authcerts, parse_microdescs, select_path, select_relay,
};
use onionpeer_core::node::api::RelayTarget;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

use crate::proxy::PathSource;

/// How long one HTTP fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest certificate or microdescriptor response accepted.
const MAX_DOC: usize = 8 << 20;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// `GET path` from a DirPort over plain HTTP/1.0; the body of a 200 response.
pub async fn http_get(addr: SocketAddr, path: &str, max_body: usize) -> io::Result<Vec<u8>> {
    async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(&build_request(&addr.ip().to_string(), path))
            .await?;
        let mut parser = HttpResponseParser::new(max_body);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            parser
                .push(&buf[..n])
                .map_err(|e| invalid(format!("{e:?}")))?;
        }
        let resp = parser.finish().map_err(|e| invalid(format!("{e:?}")))?;
        if resp.status != 200 {
            return Err(io::Error::other(format!(
                "GET {path}: HTTP {} {}",
                resp.status, resp.reason
            )));
        }
        Ok(resp.body)
    }
    .or(async {
        smol::Timer::after(FETCH_TIMEOUT).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await
}

/// A directory client for a set of authorities.
pub struct DirClient {
    authorities: Vec<DirAuthority>,
    certs: Mutex<Vec<AuthCert>>,
}

impl DirClient {
    /// A client trusting `authorities` (from `dir::parse_dir_authorities`).
    pub fn new(authorities: Vec<DirAuthority>) -> DirClient {
        DirClient {
            authorities,
            certs: Mutex::new(Vec::new()),
        }
    }

    /// The trusted authorities.
    pub fn authorities(&self) -> &[DirAuthority] {
        &self.authorities
    }

    /// Fetch and verify a fresh network directory, trying each authority in turn.
    pub async fn fetch(&self) -> io::Result<NetDir> {
        let mut last = io::Error::other("no directory authorities configured");
        for a in &self.authorities {
            match self.fetch_from(SocketAddr::V4(a.dir_addr)).await {
                Ok(d) => return Ok(d),
                Err(e) => {
                    tracing::info!(authority = %a.nickname, error = %e, "directory fetch failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Fetch and verify a network directory from one DirPort.
    pub async fn fetch_from(&self, addr: SocketAddr) -> io::Result<NetDir> {
        let body = http_get(addr, CONSENSUS_MICRODESC_PATH, MAX_CONSENSUS_LEN).await?;
        let unverified = UnverifiedConsensus::parse(&body).map_err(invalid)?;
        let missing = {
            let certs = self.certs.lock().unwrap_or_else(|e| e.into_inner());
            unverified.missing_certs(&self.authorities, &certs)
        };
        if !missing.is_empty() {
            let body = http_get(addr, &authcerts_path(&missing), MAX_DOC).await?;
            let fetched = parse_authcerts(&body).map_err(invalid)?;
            let mut certs = self.certs.lock().unwrap_or_else(|e| e.into_inner());
            for c in fetched.into_iter().flatten() {
                match c.verify() {
                    Ok(c) => certs.push(c),
                    Err(e) => tracing::info!(error = ?e, "bad authority certificate"),
                }
            }
        }
        let consensus = {
            let certs = self.certs.lock().unwrap_or_else(|e| e.into_inner());
            unverified
                .verify(&self.authorities, &certs, unix_now())
                .map_err(|e| invalid(format!("consensus does not verify: {e:?}")))?
        };
        tracing::info!(
            routers = consensus.routers.len(),
            valid_until = consensus.lifetime.valid_until,
            "consensus verified"
        );
        let skeleton = NetDir::new(consensus.clone(), std::iter::empty());
        let mut mds: Vec<Microdesc> = Vec::new();
        for path in microdesc_paths(skeleton.missing_microdescs()) {
            let body = http_get(addr, &path, MAX_DOC).await?;
            mds.extend(
                parse_microdescs(&body)
                    .map_err(invalid)?
                    .into_iter()
                    .flatten(),
            );
        }
        let netdir = NetDir::new(consensus, mds);
        tracing::info!(usable = netdir.relays().len(), "network directory ready");
        Ok(netdir)
    }
}

/// The relay as a hop of a path.
pub fn relay_target(r: &onionpeer_core::dir::Relay) -> RelayTarget {
    RelayTarget {
        addr: SocketAddr::V4(r.or_addr),
        id: PeerId(r.rsa_identity),
        ntor_key: r.ntor_onion_key,
        ed_id: r.ed25519_identity,
    }
}

/// Paths chosen from the current directory, which a background task keeps fresh.
pub struct DirPaths {
    netdir: RwLock<NetDir>,
    config: PathConfig,
    rng: Mutex<ChaCha20Rng>,
}

impl DirPaths {
    /// Bootstrap from `client`, then refetch in the background before each directory
    /// stops being fresh (and retry every few seconds on failure).
    pub async fn bootstrap(client: DirClient, config: PathConfig) -> io::Result<Arc<DirPaths>> {
        let netdir = client.fetch().await?;
        let paths = Arc::new(DirPaths {
            netdir: RwLock::new(netdir),
            config,
            rng: Mutex::new(ChaCha20Rng::from_seed(crate::driver::os_seed()?)),
        });
        let weak = Arc::downgrade(&paths);
        smol::spawn(async move {
            loop {
                let Some(paths) = weak.upgrade() else { return };
                let lifetime = paths.netdir().lifetime();
                drop(paths);
                // Between fresh-until and valid-until, as tor does; at once if past.
                let due = lifetime.fresh_until
                    + (lifetime.valid_until.saturating_sub(lifetime.fresh_until)) / 2;
                let wait = due.saturating_sub(unix_now()).max(1);
                smol::Timer::after(Duration::from_secs(wait)).await;
                match client.fetch().await {
                    Ok(d) => match weak.upgrade() {
                        Some(paths) => *paths.netdir.write().unwrap_or_else(|e| e.into_inner()) = d,
                        None => return,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "directory refresh failed");
                        smol::Timer::after(Duration::from_secs(5)).await;
                    }
                }
            }
        })
        .detach();
        Ok(paths)
    }

    /// A copy of the current directory.
    pub fn netdir(&self) -> NetDir {
        self.netdir
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl PathSource for DirPaths {
    fn path(&self, port: u16) -> Result<Vec<RelayTarget>, String> {
        let netdir = self.netdir.read().unwrap_or_else(|e| e.into_inner());
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let hops = match select_path(&netdir, port, &self.config, &mut *rng) {
            Ok(p) => [p.guard, p.middle, p.exit],
            // No exit's port summary lists the port (summaries omit rules for single
            // addresses): like tor, try an exit that allows something.
            Err(_) => {
                let c = &self.config;
                let exit = select_relay(&netdir, Position::Exit, None, &[], c, &mut *rng);
                let exit = exit.map_err(|e| e.to_string())?;
                let guard = select_relay(&netdir, Position::Guard, None, &[exit], c, &mut *rng)
                    .map_err(|e| e.to_string())?;
                let middle = select_relay(
                    &netdir,
                    Position::Middle,
                    None,
                    &[exit, guard],
                    c,
                    &mut *rng,
                )
                .map_err(|e| e.to_string())?;
                [guard, middle, exit]
            }
        };
        tracing::debug!(
            guard = %hops[0].nickname,
            middle = %hops[1].nickname,
            exit = %hops[2].nickname,
            "path chosen"
        );
        Ok(hops.into_iter().map(relay_target).collect())
    }
}
