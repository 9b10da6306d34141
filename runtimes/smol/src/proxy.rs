//! A SOCKS port like tor's `SocksPort`: every CONNECT becomes a stream on a built
//! circuit. Circuits are shared by streams with the same isolation key (the SOCKS
//! credentials, as tor's `IsolateSOCKSAuth`) and target port, and retired for new
//! streams [`MAX_CIRCUIT_DIRTINESS`] after they were built (tor's `MaxCircuitDirtiness`).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onionpeer_core::cells::relay::EndReason;
use onionpeer_core::node::api::{CircuitHandle, CommandError, FirstHop, RelayTarget, StreamTarget};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::lock::Mutex;
use smol::net::{TcpListener, TcpStream};

use crate::driver::{DriverError, NodeHandle, OnionStream};
use crate::socks::{MAX_MESSAGE_LEN, SocksAuth, SocksCmd, SocksHandshake, SocksStep};

/// How long a circuit takes new streams (tor's default `MaxCircuitDirtiness`).
pub const MAX_CIRCUIT_DIRTINESS: Duration = Duration::from_secs(600);
/// How long a SOCKS client may take to send its request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Circuits tried for one stream before giving up.
const ATTEMPTS: usize = 3;

/// Where circuits go: chooses a path for a stream to `port`.
pub trait PathSource: Send + Sync + 'static {
    /// A path (first hop first) whose last hop allows exits to `port`.
    fn path(&self, port: u16) -> Result<Vec<RelayTarget>, String>;
}

/// The same path every time (for a network whose relays are configured by hand).
#[derive(Debug, Clone)]
pub struct FixedPath(pub Vec<RelayTarget>);

impl PathSource for FixedPath {
    fn path(&self, _port: u16) -> Result<Vec<RelayTarget>, String> {
        Ok(self.0.clone())
    }
}

/// Circuits for streams, built on demand and reused.
pub struct CircuitPool {
    node: NodeHandle,
    paths: Arc<dyn PathSource>,
    first_hop: FirstHop,
    dirtiness: Duration,
    circuits: Mutex<BTreeMap<(SocksAuth, u16), (CircuitHandle, Instant)>>,
}

impl CircuitPool {
    /// A pool building circuits on `node` along paths from `paths`.
    pub fn new(node: NodeHandle, paths: Arc<dyn PathSource>, first_hop: FirstHop) -> CircuitPool {
        CircuitPool {
            node,
            paths,
            first_hop,
            dirtiness: MAX_CIRCUIT_DIRTINESS,
            circuits: Mutex::new(BTreeMap::new()),
        }
    }

    /// Retire circuits for new streams after `d` instead of [`MAX_CIRCUIT_DIRTINESS`].
    pub fn with_dirtiness(mut self, d: Duration) -> CircuitPool {
        self.dirtiness = d;
        self
    }

    /// The node the pool builds on.
    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// A circuit for streams with isolation key `auth` to `port`: a fresh one if none is
    /// young enough.
    pub async fn circuit(&self, auth: &SocksAuth, port: u16) -> Result<CircuitHandle, io::Error> {
        let mut circuits = self.circuits.lock().await;
        let key = (auth.clone(), port);
        if let Some(&(c, built)) = circuits.get(&key) {
            if built.elapsed() < self.dirtiness {
                return Ok(c);
            }
            // Too old for new streams; streams on it finish on their own.
            circuits.remove(&key);
        }
        let path = self.paths.path(port).map_err(io::Error::other)?;
        let started = Instant::now();
        let c = self.node.build_circuit(path, self.first_hop).await?;
        tracing::info!(
            circuit = c.0,
            ms = started.elapsed().as_millis() as u64,
            "circuit built"
        );
        circuits.insert(key, (c, Instant::now()));
        Ok(c)
    }

    async fn forget(&self, c: CircuitHandle) {
        self.circuits.lock().await.retain(|_, (h, _)| *h != c);
        self.node.close_circuit(c);
    }

    /// Open a stream to `host:port`, on a new circuit if the pooled one turns out dead.
    pub async fn open(
        &self,
        auth: &SocksAuth,
        host: String,
        port: u16,
    ) -> Result<OnionStream, DriverError> {
        let mut last = DriverError::Stopped;
        for _ in 0..ATTEMPTS {
            let c = match self.circuit(auth, port).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(error = %e, "cannot build a circuit");
                    last = DriverError::StreamClosed(EndReason::DESTROY);
                    continue;
                }
            };
            let target = StreamTarget::Tcp {
                host: host.clone(),
                port,
            };
            match self.node.open_stream(c, target).await {
                Ok(s) => return Ok(s),
                Err(
                    e @ (DriverError::Command(CommandError::NoSuchCircuit)
                    | DriverError::CircuitClosed(_)
                    | DriverError::StreamClosed(EndReason::DESTROY)),
                ) => {
                    tracing::debug!(circuit = c.0, error = %e, "circuit unusable, retrying");
                    self.forget(c).await;
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// Serve SOCKS clients from `listener` until it fails.
pub async fn serve_socks(listener: TcpListener, pool: Arc<CircuitPool>) -> io::Result<()> {
    loop {
        let (tcp, peer) = listener.accept().await?;
        let pool = pool.clone();
        smol::spawn(async move {
            if let Err(e) = socks_connection(tcp, &pool).await {
                tracing::info!(%peer, error = %e, "SOCKS connection ended");
            }
        })
        .detach();
    }
}

/// One SOCKS client: handshake, stream, then bytes both ways until either end closes.
pub async fn socks_connection(mut tcp: TcpStream, pool: &CircuitPool) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    let (request, early) = async {
        let mut hs = SocksHandshake::new();
        let mut buf = Vec::new();
        let mut chunk = [0u8; MAX_MESSAGE_LEN];
        loop {
            match hs.step(&buf) {
                Ok(SocksStep::NeedMore) => {
                    let n = tcp.read(&mut chunk).await?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "client closed during the SOCKS handshake",
                        ));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Ok(SocksStep::Reply { consumed, reply }) => {
                    tcp.write_all(reply.as_bytes()).await?;
                    buf.drain(..consumed);
                }
                Ok(SocksStep::Request { consumed, request }) => {
                    buf.drain(..consumed);
                    return Ok((request, buf));
                }
                Err(e) => {
                    if let Some(reply) = e.reply {
                        let _ = tcp.write_all(reply.as_bytes()).await;
                    }
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
    }
    .or(async {
        smol::Timer::after(HANDSHAKE_TIMEOUT).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await?;

    if request.command != SocksCmd::CONNECT {
        // RESOLVE needs RELAY_RESOLVE, which the node does not offer yet.
        tcp.write_all(request.failure_reply(EndReason::MISC.0).as_bytes())
            .await?;
        return Err(io::Error::other("only CONNECT is supported"));
    }
    let host = request.addr.to_string();
    tracing::debug!(%host, port = request.port, "SOCKS CONNECT");
    let stream = match pool.open(&request.auth, host, request.port).await {
        Ok(s) => s,
        Err(e) => {
            let reason = match e {
                DriverError::StreamClosed(r) => r,
                _ => EndReason::MISC,
            };
            tcp.write_all(request.failure_reply(reason.0).as_bytes())
                .await?;
            return Err(e.into());
        }
    };
    tcp.write_all(request.success_reply(None).as_bytes())
        .await?;
    let (mut from_net, mut to_net) = stream.split();
    if !early.is_empty() {
        to_net.write_all(&early).await?;
    }
    let mut tcp_r = tcp.clone();
    let upload = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = tcp_r.read(&mut buf).await?;
            if n == 0 {
                // Tor streams have no half-close: END after what was sent, then wait
                // for the other direction to finish.
                to_net.close();
                return smol::future::pending::<io::Result<()>>().await;
            }
            to_net.write_all(&buf[..n]).await?;
        }
    };
    let download = async move {
        loop {
            match from_net.read().await {
                Ok(Some(d)) => tcp.write_all(&d).await?,
                Ok(None) => {
                    tcp.close().await?;
                    return Ok(());
                }
                Err(e) => {
                    // Abort rather than close, so the client sees the transfer failed.
                    let _ = tcp.shutdown(std::net::Shutdown::Both);
                    return Err(io::Error::from(e));
                }
            }
        }
    };
    download.or(upload).await
}
