//! A small SOCKS port for a node on WebRTC links: every CONNECT becomes a stream on one
//! shared circuit along a fixed path, rebuilt when it fails. (The smol runtime's
//! `CircuitPool` is tied to its own node handle; this is the minimum the CLI's
//! `proxy --webrtc` needs.)

use std::io;
use std::time::Duration;

use onionpeer_core::cells::relay::EndReason;
use onionpeer_core::node::api::{CircuitHandle, FirstHop, RelayTarget, StreamTarget};
use onionpeer_smol::socks::{MAX_MESSAGE_LEN, SocksCmd, SocksHandshake, SocksStep};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::lock::Mutex;
use smol::net::{TcpListener, TcpStream};
use std::sync::Arc;

use crate::driver::{DriverError, NodeHandle, OnionStream};

/// How long a SOCKS client may take to send its request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// One circuit along a fixed path, shared by every stream, rebuilt on failure.
pub struct FixedCircuit {
    node: NodeHandle,
    path: Vec<RelayTarget>,
    first_hop: FirstHop,
    current: Mutex<Option<CircuitHandle>>,
}

impl FixedCircuit {
    /// Circuits of `node` along `path`.
    pub fn new(node: NodeHandle, path: Vec<RelayTarget>, first_hop: FirstHop) -> FixedCircuit {
        FixedCircuit {
            node,
            path,
            first_hop,
            current: Mutex::new(None),
        }
    }

    /// A stream to `host:port`, on the shared circuit (built, or rebuilt once, as needed).
    pub async fn open(&self, host: String, port: u16) -> Result<OnionStream, DriverError> {
        let mut last = DriverError::Stopped;
        for _ in 0..2 {
            let circ = {
                let mut cur = self.current.lock().await;
                match *cur {
                    Some(c) => c,
                    None => {
                        let c = self
                            .node
                            .build_circuit(self.path.clone(), self.first_hop)
                            .await?;
                        *cur = Some(c);
                        c
                    }
                }
            };
            let target = StreamTarget::Tcp {
                host: host.clone(),
                port,
            };
            match self.node.open_stream(circ, target).await {
                Ok(s) => return Ok(s),
                Err(e @ DriverError::StreamClosed(_)) => return Err(e),
                Err(e) => {
                    // The circuit is gone or refused the stream: build a new one.
                    let mut cur = self.current.lock().await;
                    if *cur == Some(circ) {
                        *cur = None;
                    }
                    last = e;
                }
            }
        }
        Err(last)
    }
}

/// Serve SOCKS clients from `listener` until it fails.
pub async fn serve_socks(listener: TcpListener, circuits: Arc<FixedCircuit>) -> io::Result<()> {
    loop {
        let (tcp, peer) = listener.accept().await?;
        let circuits = circuits.clone();
        smol::spawn(async move {
            if let Err(e) = socks_connection(tcp, &circuits).await {
                tracing::info!(%peer, error = %e, "SOCKS connection ended");
            }
        })
        .detach();
    }
}

async fn socks_connection(mut tcp: TcpStream, circuits: &FixedCircuit) -> io::Result<()> {
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
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
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
        tcp.write_all(request.failure_reply(EndReason::MISC.0).as_bytes())
            .await?;
        return Err(io::Error::other("only CONNECT is supported"));
    }
    let stream = match circuits.open(request.addr.to_string(), request.port).await {
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
                // No half-close in Tor streams: END after what was sent, then wait.
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
                    let _ = tcp.shutdown(std::net::Shutdown::Both);
                    return Err(io::Error::from(e));
                }
            }
        }
    };
    download.or(upload).await
}
