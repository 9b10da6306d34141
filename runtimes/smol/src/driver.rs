//! The driver: one smol task per [`Node`] that moves bytes, connection events, timers and
//! application commands into the core and carries out what `poll_output` asks for.
//!
//! ```text
//!  sockets ─reader tasks─▶ ┐                        ┌─▶ writer tasks ─▶ sockets
//!  listener ─TLS accept──▶ ├─ net channel ─▶ driver ┤
//!  NodeHandle / streams ─▶ ┘  (app channel)   task  └─▶ replies, stream bytes, events
//! ```
//!
//! The driver holds no protocol logic: it keeps per-connection plumbing (a reader task,
//! a writer task, how many chunks are in flight) and per-stream plumbing (the
//! application's channel, writes not yet taken). Backpressure runs both ways:
//! - to the network: transmit bytes are pulled from the node only while the connection's
//!   writer has fewer than [`WRITE_QUEUE`] chunks queued;
//! - from an exit's destination: its reader reads only when granted, and grants follow
//!   `Node::read_capacity`;
//! - to the application: stream bytes are read from the node only while the stream's
//!   channel holds fewer than [`STREAM_QUEUE`] chunks; an application write completes
//!   when the node took all of it.
//!
//! Links come from TLS (dialled, or accepted on the OR port), WebSocket (accepted), or
//! a [`LinkTransport`] plugged in through [`DriverConfig::transport`]: links whose I/O
//! lives inside the driver's task (the WebRTC runtime's UDP socket and peer
//! connections), fed to the core without a task per link.
//!
//! Time: a `std::time::Instant` taken at start is the core's `Instant::ZERO`; the wall
//! clock is read once for `unix_time_at_zero`.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onionpeer_core::Instant;
use onionpeer_core::cells::channel::DestroyReason;
use onionpeer_core::cells::relay::EndReason;
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::node::api::{
    CircuitHandle, CommandError, CommandOk, ConnId, ConnectTarget, Event, FirstHop, Input,
    LinkBinding, LinkCloseReason, Output, RelayTarget, StreamHandle, StreamTarget,
};
use onionpeer_core::node::config::NodeConfig;
use onionpeer_core::node::{Node, NodeError};
use smol::channel::{Receiver, Sender, bounded, unbounded};
use smol::future::FutureExt as _;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{Task, Timer};

use crate::tls::{TlsConnector, TlsListener};
use crate::ws::{Site, Web};

/// Largest chunk moved between a socket and the node in one step.
pub const CHUNK: usize = 64 * 1024;
/// Chunks queued for one connection's writer before the driver stops pulling bytes.
pub const WRITE_QUEUE: usize = 4;
/// Chunks queued for the application on one stream before the driver stops reading.
pub const STREAM_QUEUE: usize = 8;
/// Messages from socket tasks waiting for the driver before they wait.
const NET_QUEUE: usize = 256;
/// How long a TCP connect plus TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// 32 bytes from the operating system's RNG (through the TLS library's provider, which
/// already draws from it).
pub fn os_seed() -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut seed)
        .map_err(|_| io::Error::other("no system randomness"))?;
    Ok(seed)
}

/// Maps the core's instants to the monotonic clock and back.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The monotonic instant of `at`, if representable.
    pub fn to_std(&self, at: Instant) -> Option<std::time::Instant> {
        if at == Instant::FAR_FUTURE {
            return None;
        }
        self.start.checked_add(Duration::from_nanos(at.as_nanos()))
    }
}

/// Why an application request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverError {
    /// The node refused the command.
    Command(CommandError),
    /// The circuit closed (or failed to build) with this DESTROY reason.
    CircuitClosed(DestroyReason),
    /// The stream ended with this END reason.
    StreamClosed(EndReason),
    /// The node's task is gone.
    Stopped,
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Command(e) => write!(f, "command refused: {e}"),
            DriverError::CircuitClosed(r) => write!(f, "circuit closed: {r:?}"),
            DriverError::StreamClosed(r) => write!(f, "stream closed: END reason {}", r.0),
            DriverError::Stopped => f.write_str("the node has stopped"),
        }
    }
}

impl std::error::Error for DriverError {}

impl From<DriverError> for io::Error {
    fn from(e: DriverError) -> io::Error {
        let kind = match e {
            DriverError::StreamClosed(EndReason::CONNRESET) => io::ErrorKind::ConnectionReset,
            DriverError::StreamClosed(EndReason::CONNECTREFUSED) => {
                io::ErrorKind::ConnectionRefused
            }
            DriverError::StreamClosed(EndReason::TIMEOUT) => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

type Reply<T> = Sender<Result<T, DriverError>>;

/// Identifies one link of a [`LinkTransport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkKey(pub u64);

/// What a [`LinkTransport`] reports to the driver.
#[derive(Debug)]
pub enum LinkEvent {
    /// The link carries bytes now: a dialled one becomes the core's connection, another
    /// one is offered to the core as an accepted link.
    Open {
        /// Which link.
        key: LinkKey,
        /// What the link handshake binds to (our and the peer's certificate digests).
        binding: LinkBinding,
        /// The peer's address, if known.
        remote: Option<SocketAddr>,
    },
    /// Bytes of the link, in order.
    Data {
        /// Which link.
        key: LinkKey,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The link's send buffer drained: more may be written.
    Writable(LinkKey),
    /// The link is gone.
    Closed {
        /// Which link.
        key: LinkKey,
        /// True unless the peer closed it in order.
        error: bool,
    },
}

/// The exchange that completes a dial (for WebRTC: the offer sent, the answer back).
pub type Exchange = Pin<Box<dyn Future<Output = io::Result<String>> + Send>>;

/// A link a [`LinkTransport`] dials (from the core's `ConnectTarget::Relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialTarget {
    /// The relay's address.
    pub addr: SocketAddr,
    /// The identity the link must prove, if known.
    pub peer: Option<PeerId>,
    /// A peer that can pass signalling (a WebRTC offer) to `peer` through the network:
    /// the one the core learned its record from.
    pub introducer: Option<PeerId>,
}

/// Links whose I/O lives inside the driver's task: the driver polls the transport for
/// events, wakes on its socket and timer, and writes only what it says it takes, so
/// bytes go straight between the transport and the core. The WebRTC runtime plugs its
/// endpoint in here; TLS, WebSocket and exit connections stay the driver's own.
pub trait LinkTransport: Send + Sync + 'static {
    /// The address peers reach this node's links of this kind at, if it takes any (for
    /// WebRTC: the signalling endpoint's).
    fn listen_addr(&self) -> Option<SocketAddr>;
    /// Whether a link to the relay at `addr` is dialled through this transport (else
    /// over TLS).
    fn dials(&self, addr: &SocketAddr) -> bool;
    /// Start dialling `target`: the new link's key and the exchange whose result goes to
    /// [`LinkTransport::complete_dial`].
    fn dial(&mut self, target: DialTarget) -> io::Result<(LinkKey, Exchange)>;
    /// The exchange of a dial finished with `reply`; an error closes the link.
    fn complete_dial(&mut self, key: LinkKey, reply: io::Result<String>) -> io::Result<()>;
    /// When [`LinkTransport::handle_timeout`] is due next.
    fn next_wake(&self) -> Option<std::time::Instant>;
    /// Resolves when [`LinkTransport::recv`] has input to read.
    fn readable(&self) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>>;
    /// Time passed.
    fn handle_timeout(&mut self, now: std::time::Instant);
    /// Read what input is waiting.
    fn recv(&mut self);
    /// The next event, if any.
    fn poll_event(&mut self) -> Option<LinkEvent>;
    /// How many bytes a write to `key` takes now.
    fn writable(&mut self, key: LinkKey) -> usize;
    /// Write `data` to `key`; false if refused.
    fn write(&mut self, key: LinkKey, data: &[u8]) -> bool;
    /// Close one link (no [`LinkEvent::Closed`] follows).
    fn close(&mut self, key: LinkKey);
    /// Close every link: the node stops.
    fn close_all(&mut self);
    /// The transport itself, for [`NodeHandle::with_transport`] callers that know its type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A byte stream of either kind the driver carries.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type BoxIo = Box<dyn Io>;

/// Messages from socket tasks.
enum NetMsg {
    Connected {
        conn: ConnId,
        result: io::Result<(BoxIo, LinkBinding)>,
    },
    /// A [`LinkTransport`] dial's exchange finished.
    Dialled {
        conn: ConnId,
        result: io::Result<String>,
    },
    Accepted {
        stream: BoxIo,
        peer: SocketAddr,
        binding: LinkBinding,
    },
    Data {
        conn: ConnId,
        data: Vec<u8>,
    },
    ReadClosed {
        conn: ConnId,
        error: bool,
    },
    Written {
        conn: ConnId,
    },
}

/// A call on the node's [`LinkTransport`], run in its task.
type TransportFn = Box<dyn FnOnce(&mut dyn LinkTransport) + Send>;
/// A closure run on the node with mutable access.
type MutateFn = Box<dyn FnOnce(&mut Node, Instant) + Send>;

/// Messages from the application.
enum AppMsg {
    Build {
        path: Vec<RelayTarget>,
        first_hop: FirstHop,
        reply: Reply<CircuitHandle>,
    },
    CloseCircuit(CircuitHandle),
    Open {
        circuit: CircuitHandle,
        target: StreamTarget,
        reply: Reply<OnionStream>,
    },
    Write {
        stream: StreamHandle,
        data: Vec<u8>,
        reply: Reply<()>,
    },
    Consumed(StreamHandle),
    CloseStream(StreamHandle),
    Subscribe(Sender<Event>),
    Inspect(Box<dyn FnOnce(&Node) + Send>),
    Transport(TransportFn),
    Keep(Task<()>),
    Mutate(MutateFn),
    Command(onionpeer_core::node::api::Command, Reply<CommandOk>),
    Shutdown,
}

enum WriteCmd {
    Data(Vec<u8>),
    Close,
}

/// What a stream's reader receives.
enum StreamItem {
    Data(Vec<u8>),
    End(EndReason),
}

/// How the driver is started.
pub struct DriverConfig {
    /// The node's configuration. `unix_time_at_zero` is overwritten from the wall clock.
    pub node: NodeConfig,
    /// For a relay: the TLS listener of its OR port.
    pub listener: Option<TlsListener>,
    /// WebSocket links from browsers and the page's HTTP server (a relay only). The
    /// site also gets `/node.json`: how a browser reaches and authenticates this node.
    pub web: Option<Web>,
    /// Links of another kind, living in the driver's task (see [`LinkTransport`]).
    pub transport: Option<Box<dyn LinkTransport>>,
}

/// The application's side of a running node. Cheap to clone; the node stops when
/// [`NodeHandle::shutdown`] is called or every handle and stream is dropped.
#[derive(Clone)]
pub struct NodeHandle {
    app: Sender<AppMsg>,
    peer_id: PeerId,
    relay_target: Option<RelayTarget>,
    transport_target: Option<RelayTarget>,
}

/// A [`NodeHandle`] that does not keep the node running.
#[derive(Clone)]
pub struct WeakNodeHandle {
    app: smol::channel::WeakSender<AppMsg>,
    peer_id: PeerId,
    relay_target: Option<RelayTarget>,
    transport_target: Option<RelayTarget>,
}

impl WeakNodeHandle {
    /// The handle, if the node still runs.
    pub fn upgrade(&self) -> Option<NodeHandle> {
        Some(NodeHandle {
            app: self.app.upgrade()?,
            peer_id: self.peer_id,
            relay_target: self.relay_target.clone(),
            transport_target: self.transport_target.clone(),
        })
    }
}

impl fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeHandle")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

/// Start a node on the global smol executor.
pub fn spawn_node(config: DriverConfig) -> Result<NodeHandle, NodeError> {
    let clock = Clock::start();
    let mut node_config = config.node;
    node_config.unix_time_at_zero = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // A client stalling before or during TLS gets as long as a stalled link handshake.
    let tls_timeout = node_config.limits.link_handshake_timeout;
    let mut node = Node::new(node_config, clock.now())?;
    let listen_addr = config.listener.as_ref().and_then(|l| l.local_addr().ok());
    let transport_addr = config.transport.as_ref().and_then(|t| t.listen_addr());
    if let Some(ip) = listen_addr.or(transport_addr).map(|a| a.ip()) {
        node.set_my_addrs(vec![ip]);
    }
    let relay_target = listen_addr.map(|a| node.relay_target(a));
    let transport_target = transport_addr.map(|a| node.relay_target(a));
    let peer_id = node.peer_id();
    let (net_tx, net_rx) = bounded(NET_QUEUE);
    let (app_tx, app_rx) = unbounded();
    let mut tasks = Vec::new();
    let mut or_site = None;
    if let Some(mut web) = config.web {
        let ws_addrs: Vec<SocketAddr> = web
            .listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let info = node_info(&node, listen_addr, &ws_addrs);
        web.site
            .docs
            .insert("/node.json".into(), ("application/json".into(), info));
        let site = std::sync::Arc::new(web.site);
        for l in web.listeners {
            tasks.push(smol::spawn(listen_web(
                l,
                site.clone(),
                tls_timeout,
                net_tx.clone(),
            )));
        }
        if web.on_or_port {
            or_site = Some(site);
        }
    }
    if let Some(l) = config.listener {
        tasks.push(smol::spawn(listen(l, or_site, tls_timeout, net_tx.clone())));
    }
    let driver = Driver {
        node,
        clock,
        connector: TlsConnector::new().ok(),
        net_tx,
        conns: BTreeMap::new(),
        paused_exits: BTreeSet::new(),
        streams: BTreeMap::new(),
        builds: BTreeMap::new(),
        opens: BTreeMap::new(),
        subscribers: Vec::new(),
        app_tx: app_tx.downgrade(),
        buf: vec![0; CHUNK],
        wake: Instant::FAR_FUTURE,
        transport: config.transport,
        links: BTreeMap::new(),
        listeners: tasks,
    };
    smol::spawn(driver.run(net_rx, app_rx)).detach();
    Ok(NodeHandle {
        app: app_tx,
        peer_id,
        relay_target,
        transport_target,
    })
}

impl NodeHandle {
    /// The node's RSA identity fingerprint.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// How clients reach this node (relays only): address, identity and onion key.
    pub fn relay_target(&self) -> Option<&RelayTarget> {
        self.relay_target.as_ref()
    }

    /// How peers reach this node over its [`LinkTransport`] (if that takes links):
    /// the transport's address, identity and onion key.
    pub fn transport_target(&self) -> Option<&RelayTarget> {
        self.transport_target.as_ref()
    }

    /// A handle that does not keep the node running.
    pub fn downgrade(&self) -> WeakNodeHandle {
        WeakNodeHandle {
            app: self.app.downgrade(),
            peer_id: self.peer_id,
            relay_target: self.relay_target.clone(),
            transport_target: self.transport_target.clone(),
        }
    }

    /// Run `f` on the node's [`LinkTransport`] in its task; the events it causes are
    /// handled right after. [`DriverError::Stopped`] without a transport.
    pub async fn with_transport<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn LinkTransport) -> T + Send + 'static,
    ) -> Result<T, DriverError> {
        let (tx, rx) = bounded(1);
        let msg = AppMsg::Transport(Box::new(move |t| {
            let _ = tx.try_send(f(t));
        }));
        self.app.send(msg).await.map_err(|_| DriverError::Stopped)?;
        rx.recv().await.map_err(|_| DriverError::Stopped)
    }

    /// Keep `task` running as long as the node does (a signalling server, say).
    pub fn keep_task(&self, task: Task<()>) {
        let _ = self.app.try_send(AppMsg::Keep(task));
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> AppMsg) -> Result<T, DriverError> {
        let (tx, rx) = bounded(1);
        self.app
            .send(make(tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.recv().await.map_err(|_| DriverError::Stopped)?
    }

    /// Build a circuit along `path`; resolves once it is built (or failed).
    pub async fn build_circuit(
        &self,
        path: Vec<RelayTarget>,
        first_hop: FirstHop,
    ) -> Result<CircuitHandle, DriverError> {
        self.ask(|reply| AppMsg::Build {
            path,
            first_hop,
            reply,
        })
        .await
    }

    /// Close a circuit this node built.
    pub fn close_circuit(&self, circuit: CircuitHandle) {
        let _ = self.app.try_send(AppMsg::CloseCircuit(circuit));
    }

    /// Open a stream on a built circuit; resolves once the exit connected it.
    pub async fn open_stream(
        &self,
        circuit: CircuitHandle,
        target: StreamTarget,
    ) -> Result<OnionStream, DriverError> {
        self.ask(|reply| AppMsg::Open {
            circuit,
            target,
            reply,
        })
        .await
    }

    /// Every event the node emits from now on (links, circuits, streams).
    pub fn events(&self) -> Receiver<Event> {
        let (tx, rx) = unbounded();
        let _ = self.app.try_send(AppMsg::Subscribe(tx));
        rx
    }

    /// Run `f` on the node (for counters, census and other getters).
    pub async fn inspect<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> T + Send + 'static,
    ) -> Result<T, DriverError> {
        let (tx, rx) = bounded(1);
        let msg = AppMsg::Inspect(Box::new(move |node| {
            let _ = tx.try_send(f(node));
        }));
        self.app.send(msg).await.map_err(|_| DriverError::Stopped)?;
        rx.recv().await.map_err(|_| DriverError::Stopped)
    }

    /// Run `f` on the node with mutable access (for calls like `Node::read_content`
    /// that take from the node); `f` also gets the node's current time.
    pub async fn with_node_mut<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node, Instant) -> T + Send + 'static,
    ) -> Result<T, DriverError> {
        let (tx, rx) = bounded(1);
        let msg = AppMsg::Mutate(Box::new(move |node, now| {
            let _ = tx.try_send(f(node, now));
        }));
        self.app.send(msg).await.map_err(|_| DriverError::Stopped)?;
        rx.recv().await.map_err(|_| DriverError::Stopped)
    }

    /// The next in-order verified bytes of a download (`Command::Get`): `(offset, bytes)`,
    /// or `None` until the next `Event::ContentReadable`.
    pub async fn read_content(
        &self,
        handle: onionpeer_core::node::api::DownloadHandle,
    ) -> Result<Option<(u64, Vec<u8>)>, DriverError> {
        self.with_node_mut(move |node, _| {
            let mut buf = vec![0; 256 * 1024];
            node.read_content(handle, &mut buf).map(|(off, k)| {
                buf.truncate(k);
                (off, buf)
            })
        })
        .await
    }

    /// Run any node command (Peersm bootstrap, lookups, ...): what it started. Its
    /// progress comes as [`Event`]s (see [`NodeHandle::events`]).
    pub async fn command(
        &self,
        cmd: onionpeer_core::node::api::Command,
    ) -> Result<CommandOk, DriverError> {
        self.ask(|reply| AppMsg::Command(cmd, reply)).await
    }

    /// Stop the node: every connection it holds is dropped, its listener closed.
    pub fn shutdown(&self) {
        let _ = self.app.try_send(AppMsg::Shutdown);
    }
}

/// A stream opened through the node: read with [`OnionStream::read`], write with
/// [`OnionStream::write_all`]; or [`OnionStream::split`] it to do both at once.
pub struct OnionStream {
    /// The receiving half.
    pub reader: OnionReader,
    /// The sending half.
    pub writer: OnionWriter,
    /// The address the exit connected to, if it said.
    pub addr: Option<std::net::IpAddr>,
}

/// The receiving half of an [`OnionStream`].
pub struct OnionReader {
    handle: StreamHandle,
    app: Sender<AppMsg>,
    rx: Receiver<StreamItem>,
    end: Option<EndReason>,
}

/// The sending half of an [`OnionStream`]. Dropping it closes the stream (END DONE).
pub struct OnionWriter {
    handle: StreamHandle,
    app: Sender<AppMsg>,
    closed: bool,
}

impl OnionStream {
    /// The node's handle on this stream.
    pub fn handle(&self) -> StreamHandle {
        self.writer.handle
    }

    /// The two halves, to read and write from separate tasks.
    pub fn split(self) -> (OnionReader, OnionWriter) {
        (self.reader, self.writer)
    }

    /// See [`OnionReader::read`].
    pub async fn read(&mut self) -> Result<Option<Vec<u8>>, DriverError> {
        self.reader.read().await
    }

    /// See [`OnionWriter::write_all`].
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), DriverError> {
        self.writer.write_all(data).await
    }
}

impl OnionReader {
    /// The next bytes; `Ok(None)` once the stream ended cleanly (END DONE), an error
    /// with the END reason otherwise.
    pub async fn read(&mut self) -> Result<Option<Vec<u8>>, DriverError> {
        if let Some(reason) = self.end {
            return end_result(reason);
        }
        match self.rx.recv().await {
            Ok(StreamItem::Data(d)) => {
                let _ = self.app.try_send(AppMsg::Consumed(self.handle));
                Ok(Some(d))
            }
            Ok(StreamItem::End(reason)) => {
                self.end = Some(reason);
                end_result(reason)
            }
            Err(_) => {
                self.end = Some(EndReason::MISC);
                Err(DriverError::Stopped)
            }
        }
    }
}

fn end_result(reason: EndReason) -> Result<Option<Vec<u8>>, DriverError> {
    if reason == EndReason::DONE {
        Ok(None)
    } else {
        Err(DriverError::StreamClosed(reason))
    }
}

impl OnionWriter {
    /// Send `data`; resolves once the node took all of it (its windows are the
    /// backpressure).
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), DriverError> {
        for chunk in data.chunks(CHUNK) {
            let (tx, rx) = bounded(1);
            self.app
                .send(AppMsg::Write {
                    stream: self.handle,
                    data: chunk.to_vec(),
                    reply: tx,
                })
                .await
                .map_err(|_| DriverError::Stopped)?;
            rx.recv().await.map_err(|_| DriverError::Stopped)??;
        }
        Ok(())
    }

    /// Close the stream (RELAY_END, reason DONE) after what was written.
    pub fn close(mut self) {
        self.closed = true;
        let _ = self.app.try_send(AppMsg::CloseStream(self.handle));
    }
}

impl Drop for OnionWriter {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.app.try_send(AppMsg::CloseStream(self.handle));
        }
    }
}

/// The driver's plumbing for one connection.
struct ConnState {
    exit: bool,
    /// Chunks handed to the writer and not yet written.
    inflight: usize,
    /// The node has bytes we have not pulled yet.
    wants_tx: bool,
    writer: Option<Sender<WriteCmd>>,
    /// Exit connections: read permits.
    grant: Option<Sender<usize>>,
    /// Connecting, reading and writing tasks: dropped (cancelled) with the state.
    tasks: Vec<Task<()>>,
    writer_task: Option<Task<()>>,
    /// A [`LinkTransport`] link: its key (no reader or writer task).
    link: Option<LinkKey>,
}

/// The driver's plumbing for one client stream.
struct StreamState {
    to_app: Sender<StreamItem>,
    writes: VecDeque<(Vec<u8>, usize, Reply<()>)>,
    close_after_writes: bool,
}

struct Driver {
    node: Node,
    clock: Clock,
    connector: Option<TlsConnector>,
    net_tx: Sender<NetMsg>,
    conns: BTreeMap<ConnId, ConnState>,
    /// Connected exit connections whose reader waits for a grant.
    paused_exits: BTreeSet<ConnId>,
    streams: BTreeMap<StreamHandle, StreamState>,
    builds: BTreeMap<CircuitHandle, Reply<CircuitHandle>>,
    opens: BTreeMap<StreamHandle, Reply<OnionStream>>,
    subscribers: Vec<Sender<Event>>,
    app_tx: smol::channel::WeakSender<AppMsg>,
    buf: Vec<u8>,
    wake: Instant,
    transport: Option<Box<dyn LinkTransport>>,
    /// The transport's links and the core's id for them (a link accepted by the
    /// transport is added when it opens).
    links: BTreeMap<LinkKey, Option<ConnId>>,
    listeners: Vec<Task<()>>,
}

enum Wake {
    Net(NetMsg),
    App(AppMsg),
    Transport,
    Timer,
    Stop,
}

impl Driver {
    async fn run(mut self, net_rx: Receiver<NetMsg>, app_rx: Receiver<AppMsg>) {
        self.drain();
        loop {
            let node_at = self.clock.to_std(self.wake);
            let transport_at = self.transport.as_ref().and_then(|t| t.next_wake());
            let timer = match (node_at, transport_at) {
                (Some(a), Some(b)) => Timer::at(a.min(b)),
                (Some(a), None) | (None, Some(a)) => Timer::at(a),
                (None, None) => Timer::never(),
            };
            let wake = async { net_rx.recv().await.map_or(Wake::Stop, Wake::Net) }
                .or(async { app_rx.recv().await.map_or(Wake::Stop, Wake::App) })
                .or(async {
                    match self.transport.as_ref().map(|t| t.readable()) {
                        Some(readable) => match readable.await {
                            Ok(()) => Wake::Transport,
                            // A broken socket: leave the links to their timeouts.
                            Err(_) => smol::future::pending().await,
                        },
                        None => smol::future::pending().await,
                    }
                })
                .or(async {
                    timer.await;
                    Wake::Timer
                })
                .await;
            match wake {
                Wake::Stop => break,
                Wake::Timer => {
                    if let Some(t) = &mut self.transport {
                        t.handle_timeout(std::time::Instant::now());
                        self.on_link_events();
                    }
                    let now = self.clock.now();
                    if now >= self.wake {
                        self.node.handle_input(Input::Timeout(now));
                    }
                }
                Wake::Transport => {
                    if let Some(t) = &mut self.transport {
                        t.recv();
                    }
                    self.on_link_events();
                }
                Wake::Net(msg) => self.on_net(msg),
                Wake::App(AppMsg::Shutdown) => break,
                Wake::App(msg) => self.on_app(msg),
            }
            // Batch what else is waiting before draining outputs.
            for _ in 0..64 {
                match net_rx.try_recv() {
                    Ok(msg) => {
                        self.on_net(msg);
                        self.drain();
                    }
                    Err(_) => break,
                }
            }
            self.drain();
        }
        // Tell the transport's peers now rather than let them time out.
        if let Some(t) = &mut self.transport {
            t.close_all();
        }
        tracing::debug!(id = %self.node.peer_id(), "node stopped");
    }

    /// Carry the transport's events to the node, until there are none (feeding the node
    /// may write to links, which may produce more).
    fn on_link_events(&mut self) {
        while let Some(ev) = self.transport.as_mut().and_then(|t| t.poll_event()) {
            let now = self.clock.now();
            match ev {
                LinkEvent::Open {
                    key,
                    binding,
                    remote,
                } => match self.links.get(&key).copied() {
                    Some(Some(conn)) => {
                        tracing::debug!(conn = conn.0, ?remote, "transport link open");
                        self.node
                            .handle_input(Input::Connected { now, conn, binding });
                    }
                    // A link the transport accepted (dialled ones are known).
                    _ => match self.node.accept_link(now, remote, binding) {
                        Ok(conn) => {
                            tracing::debug!(conn = conn.0, ?remote, "transport link accepted");
                            self.links.insert(key, Some(conn));
                            let mut st = ConnState::new(false);
                            st.link = Some(key);
                            self.conns.insert(conn, st);
                        }
                        Err(e) => {
                            tracing::info!(?remote, error = %e, "transport link refused");
                            self.links.remove(&key);
                            self.close_link(key);
                        }
                    },
                },
                LinkEvent::Data { key, data } => {
                    if let Some(Some(conn)) = self.links.get(&key).copied() {
                        self.node.handle_input(Input::Data {
                            now,
                            conn,
                            data: &data,
                        });
                    }
                }
                LinkEvent::Writable(key) => {
                    if let Some(Some(conn)) = self.links.get(&key).copied()
                        && self.conns.get(&conn).is_some_and(|st| st.wants_tx)
                    {
                        self.pump_tx(conn);
                    }
                }
                LinkEvent::Closed { key, error } => {
                    if let Some(Some(conn)) = self.links.remove(&key)
                        && self.conns.remove(&conn).is_some()
                    {
                        tracing::debug!(conn = conn.0, error, "transport link closed");
                        self.node.handle_input(Input::Closed { now, conn, error });
                    }
                }
            }
            self.drain();
        }
    }

    fn close_link(&mut self, key: LinkKey) {
        if let Some(t) = &mut self.transport {
            t.close(key);
        }
    }

    fn on_net(&mut self, msg: NetMsg) {
        let now = self.clock.now();
        match msg {
            NetMsg::Connected { conn, result } => {
                if !self.conns.contains_key(&conn) {
                    return;
                }
                match result {
                    Ok((io, binding)) => {
                        self.attach(conn, io);
                        self.node
                            .handle_input(Input::Connected { now, conn, binding });
                    }
                    Err(e) => {
                        tracing::debug!(conn = conn.0, error = %e, "connect failed");
                        self.conns.remove(&conn);
                        self.node.handle_input(Input::Closed {
                            now,
                            conn,
                            error: true,
                        });
                    }
                }
            }
            NetMsg::Dialled { conn, result } => {
                let key = self.conns.get(&conn).and_then(|st| st.link);
                let (Some(key), Some(t)) = (key, self.transport.as_mut()) else {
                    return;
                };
                if let Err(e) = t.complete_dial(key, result) {
                    tracing::debug!(conn = conn.0, error = %e, "transport dial failed");
                    t.close(key);
                    self.links.remove(&key);
                    self.conns.remove(&conn);
                    self.node.handle_input(Input::Closed {
                        now,
                        conn,
                        error: true,
                    });
                }
                self.on_link_events();
            }
            NetMsg::Accepted {
                stream,
                peer,
                binding,
            } => match self.node.accept_link(now, Some(peer), binding) {
                Ok(conn) => {
                    tracing::debug!(conn = conn.0, %peer, "link accepted");
                    self.conns.insert(conn, ConnState::new(false));
                    self.attach(conn, stream);
                }
                Err(e) => tracing::info!(%peer, error = %e, "link refused"),
            },
            NetMsg::Data { conn, data } => {
                let Some(st) = self.conns.get(&conn) else {
                    return;
                };
                if st.exit {
                    self.paused_exits.insert(conn);
                }
                self.node.handle_input(Input::Data {
                    now,
                    conn,
                    data: &data,
                });
            }
            NetMsg::ReadClosed { conn, error } => {
                if self.conns.remove(&conn).is_some() {
                    self.paused_exits.remove(&conn);
                    self.node.handle_input(Input::Closed { now, conn, error });
                }
            }
            NetMsg::Written { conn } => {
                if let Some(st) = self.conns.get_mut(&conn) {
                    st.inflight = st.inflight.saturating_sub(1);
                    if st.wants_tx {
                        self.pump_tx(conn);
                    }
                }
            }
        }
    }

    fn on_app(&mut self, msg: AppMsg) {
        let now = self.clock.now();
        match msg {
            AppMsg::Build {
                path,
                first_hop,
                reply,
            } => match self.node.build_circuit(now, path, first_hop) {
                Ok(h) => {
                    self.builds.insert(h, reply);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(DriverError::Command(e)));
                }
            },
            AppMsg::CloseCircuit(h) => {
                let _ = self
                    .node
                    .command(now, onionpeer_core::node::api::Command::CloseCircuit(h));
            }
            AppMsg::Open {
                circuit,
                target,
                reply,
            } => match self.node.open_stream(now, circuit, target) {
                Ok(s) => {
                    self.opens.insert(s, reply);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(DriverError::Command(e)));
                }
            },
            AppMsg::Write {
                stream,
                data,
                reply,
            } => match self.streams.get_mut(&stream) {
                Some(st) => {
                    st.writes.push_back((data, 0, reply));
                    self.pump_write(stream);
                }
                None => {
                    let _ = reply.try_send(Err(DriverError::Command(CommandError::NoSuchStream)));
                }
            },
            AppMsg::Consumed(s) => self.pump_read(s),
            AppMsg::CloseStream(s) => {
                if let Some(st) = self.streams.get_mut(&s) {
                    if st.writes.is_empty() {
                        self.close_stream(s);
                    } else {
                        st.close_after_writes = true;
                    }
                }
            }
            AppMsg::Subscribe(tx) => self.subscribers.push(tx),
            AppMsg::Inspect(f) => f(&self.node),
            AppMsg::Transport(f) => {
                if let Some(t) = &mut self.transport {
                    f(t.as_mut());
                }
                self.on_link_events();
            }
            AppMsg::Keep(task) => self.listeners.push(task),
            AppMsg::Mutate(f) => f(&mut self.node, now),
            AppMsg::Command(cmd, reply) => {
                let r = self.node.command(now, cmd).map_err(DriverError::Command);
                let _ = reply.try_send(r);
            }
            AppMsg::Shutdown => {}
        }
    }

    fn close_stream(&mut self, s: StreamHandle) {
        let now = self.clock.now();
        let _ = self
            .node
            .command(now, onionpeer_core::node::api::Command::CloseStream(s));
        self.streams.remove(&s);
    }

    /// Act on every output until the node is idle.
    fn drain(&mut self) {
        loop {
            match self.node.poll_output() {
                Output::Timeout(at, _) => {
                    self.wake = at;
                    break;
                }
                Output::Connect { conn, target } => self.connect(conn, target),
                Output::Transmit(conn) => {
                    if let Some(st) = self.conns.get_mut(&conn) {
                        st.wants_tx = true;
                        self.pump_tx(conn);
                    }
                }
                Output::Close(conn) => self.close(conn),
                Output::Event(e) => self.on_event(e),
            }
        }
        // Grant reads to exit connections the node has room for.
        if !self.paused_exits.is_empty() {
            let ready: Vec<(ConnId, usize)> = self
                .paused_exits
                .iter()
                .map(|&c| (c, self.node.read_capacity(c)))
                .filter(|&(_, cap)| cap > 0)
                .collect();
            for (conn, cap) in ready {
                self.paused_exits.remove(&conn);
                if let Some(g) = self.conns.get(&conn).and_then(|st| st.grant.as_ref()) {
                    let _ = g.try_send(cap.min(CHUNK));
                }
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match &e {
            Event::LinkUp {
                conn,
                peer,
                version,
            } => {
                tracing::debug!(conn = conn.0, ?peer, version, "link up")
            }
            Event::LinkDown { conn, reason } => match reason {
                // Peers vanish all the time; not worth more than a debug line.
                LinkCloseReason::Closed
                | LinkCloseReason::Local
                | LinkCloseReason::TransportError => {
                    tracing::debug!(conn = conn.0, ?reason, "link down")
                }
                // A peer that misbehaved or failed: worth an operator's attention.
                _ => tracing::info!(conn = conn.0, ?reason, "link closed on error"),
            },
            Event::CircuitBuilt(h) => {
                if let Some(r) = self.builds.remove(h) {
                    let _ = r.try_send(Ok(*h));
                }
            }
            Event::CircuitClosed { circuit, reason } => {
                if let Some(r) = self.builds.remove(circuit) {
                    let _ = r.try_send(Err(DriverError::CircuitClosed(*reason)));
                }
            }
            Event::StreamOpened { stream, addr } => {
                if let Some(r) = self.opens.remove(stream) {
                    let (to_app, rx) = unbounded();
                    self.streams.insert(
                        *stream,
                        StreamState {
                            to_app,
                            writes: VecDeque::new(),
                            close_after_writes: false,
                        },
                    );
                    if let Some(app) = self.app_tx.upgrade() {
                        let s = OnionStream {
                            reader: OnionReader {
                                handle: *stream,
                                app: app.clone(),
                                rx,
                                end: None,
                            },
                            writer: OnionWriter {
                                handle: *stream,
                                app,
                                closed: false,
                            },
                            addr: *addr,
                        };
                        if let Err(err) = r.try_send(Ok(s)) {
                            // The application gave up waiting: close the stream.
                            drop(err);
                        }
                    }
                    self.pump_read(*stream);
                }
            }
            Event::StreamReadable(s) => self.pump_read(*s),
            Event::StreamWritable(s) => self.pump_write(*s),
            Event::StreamClosed { stream, reason } => {
                if let Some(r) = self.opens.remove(stream) {
                    let _ = r.try_send(Err(DriverError::StreamClosed(*reason)));
                }
                if let Some(st) = self.streams.remove(stream) {
                    let _ = st.to_app.try_send(StreamItem::End(*reason));
                    for (_, _, reply) in st.writes {
                        let _ = reply.try_send(Err(DriverError::StreamClosed(*reason)));
                    }
                }
            }
            // Clock skew and the Peersm DHT's progress only go to subscribers.
            Event::ClockSkew { .. }
            | Event::DhtLookupDone { .. }
            | Event::OrdbCircuitsReady(_)
            | Event::PeerFound(_)
            | Event::OrdbAnswered { .. }
            | Event::ContentInfo { .. }
            | Event::ContentReadable(_)
            | Event::ContentProgress { .. }
            | Event::ContentDone { .. }
            | Event::SignalReceived { .. } => {}
        }
        self.subscribers.retain(|s| s.try_send(e.clone()).is_ok());
    }

    fn pump_read(&mut self, s: StreamHandle) {
        let now = self.clock.now();
        while let Some(st) = self.streams.get(&s) {
            if st.to_app.len() >= STREAM_QUEUE {
                break;
            }
            match self.node.read_stream(now, s, &mut self.buf) {
                Ok(n) if n > 0 => {
                    let _ = st.to_app.try_send(StreamItem::Data(self.buf[..n].to_vec()));
                }
                _ => break,
            }
        }
    }

    fn pump_write(&mut self, s: StreamHandle) {
        let now = self.clock.now();
        let Some(st) = self.streams.get_mut(&s) else {
            return;
        };
        while let Some((data, off, _)) = st.writes.front_mut() {
            match self.node.write_stream(now, s, &data[*off..]) {
                Ok(n) => {
                    *off += n;
                    if *off < data.len() {
                        break;
                    }
                    if let Some((_, _, reply)) = st.writes.pop_front() {
                        let _ = reply.try_send(Ok(()));
                    }
                }
                Err(e) => {
                    for (_, _, reply) in st.writes.drain(..) {
                        let _ = reply.try_send(Err(DriverError::Command(e)));
                    }
                    break;
                }
            }
        }
        if st.writes.is_empty() && st.close_after_writes {
            self.close_stream(s);
        }
    }

    fn pump_tx(&mut self, conn: ConnId) {
        let Some(st) = self.conns.get_mut(&conn) else {
            return;
        };
        if let (Some(key), Some(t)) = (st.link, self.transport.as_mut()) {
            // Pull only what the link takes now; the rest waits for LinkEvent::Writable.
            loop {
                let room = t.writable(key).min(self.buf.len());
                if room == 0 {
                    return;
                }
                let n = self.node.poll_transmit(conn, &mut self.buf[..room]);
                if n == 0 {
                    st.wants_tx = false;
                    return;
                }
                if !t.write(key, &self.buf[..n]) {
                    tracing::debug!(conn = conn.0, "transport refused a write");
                    return;
                }
            }
        }
        let Some(w) = &st.writer else {
            return;
        };
        while st.inflight < WRITE_QUEUE {
            let n = self.node.poll_transmit(conn, &mut self.buf);
            if n == 0 {
                st.wants_tx = false;
                return;
            }
            if w.try_send(WriteCmd::Data(self.buf[..n].to_vec())).is_ok() {
                st.inflight += 1;
            }
        }
    }

    fn connect(&mut self, conn: ConnId, target: ConnectTarget) {
        let net = self.net_tx.clone();
        let (exit, task) = match target {
            ConnectTarget::Relay {
                addr,
                id,
                introducer,
            } if self.transport.as_ref().is_some_and(|t| t.dials(&addr)) => {
                tracing::debug!(conn = conn.0, %addr, ?id, ?introducer, "dialling transport link");
                let target = DialTarget {
                    addr,
                    peer: id,
                    introducer,
                };
                let dial = self.transport.as_mut().map(|t| t.dial(target));
                let (key, exchange) = match dial {
                    Some(Ok(x)) => x,
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "cannot dial a transport link");
                        let now = self.clock.now();
                        self.node.handle_input(Input::Closed {
                            now,
                            conn,
                            error: true,
                        });
                        return;
                    }
                    None => return,
                };
                self.links.insert(key, Some(conn));
                let task = smol::spawn(async move {
                    let result = exchange.await;
                    let _ = net.send(NetMsg::Dialled { conn, result }).await;
                });
                let mut st = ConnState::new(false);
                st.link = Some(key);
                st.tasks.push(task);
                self.conns.insert(conn, st);
                return;
            }
            ConnectTarget::Relay { addr, id, .. } => {
                tracing::debug!(conn = conn.0, %addr, ?id, "connecting link");
                let connector = self.connector.clone();
                let task = smol::spawn(async move {
                    let result = async {
                        let c = connector.ok_or_else(|| io::Error::other("no TLS connector"))?;
                        let (s, b) = c.connect(addr).await?;
                        Ok((Box::new(s) as BoxIo, b))
                    }
                    .or(timeout())
                    .await;
                    let _ = net.send(NetMsg::Connected { conn, result }).await;
                });
                (false, task)
            }
            ConnectTarget::Exit { host, port } => {
                tracing::debug!(conn = conn.0, %host, port, "connecting exit");
                let task = smol::spawn(async move {
                    let result = async {
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        let tcp = TcpStream::connect((host, port)).await?;
                        tcp.set_nodelay(true)?;
                        Ok((Box::new(tcp) as BoxIo, LinkBinding::default()))
                    }
                    .or(timeout())
                    .await;
                    let _ = net.send(NetMsg::Connected { conn, result }).await;
                });
                (true, task)
            }
        };
        let mut st = ConnState::new(exit);
        st.tasks.push(task);
        self.conns.insert(conn, st);
    }

    /// Start the reader and writer tasks of a connected transport.
    fn attach(&mut self, conn: ConnId, io: BoxIo) {
        let Some(st) = self.conns.get_mut(&conn) else {
            return;
        };
        let (r, w) = smol::io::split(io);
        let (wtx, wrx) = unbounded();
        st.writer = Some(wtx);
        st.writer_task = Some(smol::spawn(writer(conn, w, wrx, self.net_tx.clone())));
        let grants = if st.exit {
            let (gtx, grx) = bounded(1);
            st.grant = Some(gtx);
            self.paused_exits.insert(conn);
            Some(grx)
        } else {
            None
        };
        st.tasks
            .push(smol::spawn(reader(conn, r, grants, self.net_tx.clone())));
        if st.wants_tx {
            self.pump_tx(conn);
        }
    }

    /// The node closes `conn`: send what is left, then let the writer close it.
    fn close(&mut self, conn: ConnId) {
        let Some(mut st) = self.conns.remove(&conn) else {
            return;
        };
        self.paused_exits.remove(&conn);
        if let (Some(key), Some(t)) = (st.link, self.transport.as_mut()) {
            self.links.remove(&key);
            loop {
                let room = t.writable(key).min(self.buf.len());
                let n = if room == 0 {
                    0
                } else {
                    self.node.poll_transmit(conn, &mut self.buf[..room])
                };
                if n == 0 || !t.write(key, &self.buf[..n]) {
                    break;
                }
            }
            t.close(key);
            return;
        }
        if let (Some(w), Some(task)) = (st.writer.take(), st.writer_task.take()) {
            loop {
                let n = self.node.poll_transmit(conn, &mut self.buf);
                if n == 0 {
                    break;
                }
                let _ = w.try_send(WriteCmd::Data(self.buf[..n].to_vec()));
            }
            let _ = w.try_send(WriteCmd::Close);
            task.detach();
        }
    }
}

impl ConnState {
    fn new(exit: bool) -> ConnState {
        ConnState {
            exit,
            inflight: 0,
            wants_tx: false,
            writer: None,
            grant: None,
            tasks: Vec::new(),
            writer_task: None,
            link: None,
        }
    }
}

async fn timeout<T>() -> io::Result<T> {
    Timer::after(CONNECT_TIMEOUT).await;
    Err(io::ErrorKind::TimedOut.into())
}

async fn reader(
    conn: ConnId,
    mut r: smol::io::ReadHalf<BoxIo>,
    grants: Option<Receiver<usize>>,
    net: Sender<NetMsg>,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let max = match &grants {
            Some(g) => match g.recv().await {
                Ok(n) => n.clamp(1, CHUNK),
                Err(_) => return,
            },
            None => CHUNK,
        };
        let msg = match r.read(&mut buf[..max]).await {
            Ok(0) => NetMsg::ReadClosed { conn, error: false },
            Ok(n) => NetMsg::Data {
                conn,
                data: buf[..n].to_vec(),
            },
            Err(e) => {
                tracing::debug!(conn = conn.0, error = %e, "read failed");
                NetMsg::ReadClosed { conn, error: true }
            }
        };
        let end = matches!(msg, NetMsg::ReadClosed { .. });
        if net.send(msg).await.is_err() || end {
            return;
        }
    }
}

async fn writer(
    conn: ConnId,
    mut w: smol::io::WriteHalf<BoxIo>,
    cmds: Receiver<WriteCmd>,
    net: Sender<NetMsg>,
) {
    while let Ok(cmd) = cmds.recv().await {
        match cmd {
            WriteCmd::Data(d) => {
                let ok =
                    w.write_all(&d).await.is_ok() && (!cmds.is_empty() || w.flush().await.is_ok());
                if !ok {
                    let _ = net.send(NetMsg::ReadClosed { conn, error: true }).await;
                    return;
                }
                if net.send(NetMsg::Written { conn }).await.is_err() {
                    return;
                }
            }
            WriteCmd::Close => break,
        }
    }
    let _ = w.flush().await;
    let _ = w.close().await;
}

/// `/node.json`: the node's identity, onion key and addresses, for a browser page that
/// bootstraps through it (hex keys; `ws` lists the WebSocket listeners).
fn node_info(node: &Node, or_addr: Option<SocketAddr>, ws: &[SocketAddr]) -> Vec<u8> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let addr = or_addr
        .or_else(|| ws.first().copied())
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let t = node.relay_target(addr);
    let ws: Vec<String> = ws.iter().map(|a| format!("\"{a}\"")).collect();
    let or = or_addr.map_or("null".to_owned(), |a| format!("\"{a}\""));
    format!(
        "{{\"id\":\"{}\",\"ntor_key\":\"{}\",\"or_addr\":{or},\"ws\":[{}],\"bridge\":{}}}\n",
        hex(&t.id.0),
        hex(&t.ntor_key),
        ws.join(","),
        node.config().peersm.as_ref().is_some_and(|p| p.bridge),
    )
    .into_bytes()
}

/// A WebSocket link or HTTP request on `tcp` (see [`crate::ws`]), within `limit`.
async fn accept_web(
    tcp: TcpStream,
    peer: SocketAddr,
    site: &Site,
    limit: Duration,
    net: &Sender<NetMsg>,
) {
    let timeout = async {
        Timer::after(limit).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "HTTP request timed out",
        ))
    };
    match crate::ws::accept(tcp, site).or(timeout).await {
        Ok(crate::ws::Accepted::Link(io, binding)) => {
            tracing::debug!(%peer, "websocket link open");
            let _ = net
                .send(NetMsg::Accepted {
                    stream: io,
                    peer,
                    binding,
                })
                .await;
        }
        Ok(crate::ws::Accepted::Served) => {}
        Err(e) => tracing::debug!(%peer, error = %e, "HTTP connection failed"),
    }
}

/// Accept connections on a plain listener for WebSocket links and HTTP.
async fn listen_web(
    listener: TcpListener,
    site: std::sync::Arc<Site>,
    limit: Duration,
    net: Sender<NetMsg>,
) {
    loop {
        let (tcp, peer) = match crate::ws::accept_tcp(&listener).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let site = site.clone();
        let net = net.clone();
        smol::spawn(async move { accept_web(tcp, peer, &site, limit, &net).await }).detach();
    }
}

/// Accept TCP connections and complete TLS in a task each, so a stalled client holds up
/// nobody. With a `site`, a connection that starts with an HTTP request is a WebSocket
/// link or a page request instead.
async fn listen(
    listener: TlsListener,
    site: Option<std::sync::Arc<Site>>,
    handshake_timeout: Duration,
    net: Sender<NetMsg>,
) {
    loop {
        let (tcp, peer) = match listener.accept_tcp().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let responder = listener.responder().clone();
        let net = net.clone();
        let site = site.clone();
        smol::spawn(async move {
            if let Some(site) = site {
                let sniff = async {
                    Timer::after(handshake_timeout).await;
                    Err(io::ErrorKind::TimedOut.into())
                };
                match crate::ws::looks_like_http(&tcp).or(sniff).await {
                    Ok(true) => {
                        accept_web(tcp, peer, &site, handshake_timeout, &net).await;
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "no first byte");
                        return;
                    }
                }
            }
            let limit = async {
                Timer::after(handshake_timeout).await;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ))
            };
            match responder.accept(tcp).or(limit).await {
                Ok((stream, binding)) => {
                    let _ = net
                        .send(NetMsg::Accepted {
                            stream: Box::new(stream),
                            peer,
                            binding,
                        })
                        .await;
                }
                Err(e) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
            }
        })
        .detach();
    }
}

/// The config of a relay with fresh keys from the OS RNG: an exit with `exit_policy`,
/// a middle relay without one.
pub fn relay_config(
    exit_policy: Option<onionpeer_core::node::exit_policy::ExitPolicy>,
) -> io::Result<NodeConfig> {
    use onionpeer_core::node::config::Role;
    let role = if exit_policy.is_some() {
        Role::EXIT
    } else {
        Role::RELAY
    };
    let mut node = NodeConfig::new(os_seed()?, role, 0);
    if let Some(p) = exit_policy {
        node.exit_policy = p;
    }
    Ok(node)
}

/// Start a relay listening on `or_addr` (port 0: any free port), with fresh keys from the
/// OS RNG. With an exit policy it is an exit (opening what the policy accepts), without
/// one a middle relay.
pub async fn spawn_relay(
    or_addr: SocketAddr,
    exit_policy: Option<onionpeer_core::node::exit_policy::ExitPolicy>,
) -> io::Result<NodeHandle> {
    let node = relay_config(exit_policy)?;
    let cert = crate::tls::LinkCert::generate()?;
    let listener = TlsListener::bind(or_addr, crate::tls::TlsResponder::new(cert)?).await?;
    spawn_node(DriverConfig {
        node,
        listener: Some(listener),
        web: None,
        transport: None,
    })
    .map_err(|e| io::Error::other(e.to_string()))
}

/// Start an onion proxy (a client node: builds circuits, relays nothing).
pub fn spawn_client() -> io::Result<NodeHandle> {
    let node = NodeConfig::new(os_seed()?, onionpeer_core::node::config::Role::CLIENT, 0);
    spawn_node(DriverConfig {
        node,
        listener: None,
        web: None,
        transport: None,
    })
    .map_err(|e| io::Error::other(e.to_string()))
}

/// Start a Peersm peer (a relay taking part in the DHT, advertising its OR port in its
/// PEER record), or with `bridge` a bridge that registers newcomers and answers
/// DB_FIND_PEER. With `web`, it also accepts browser links over WebSocket (and serves
/// the page): see [`crate::ws`].
pub async fn spawn_peer(
    or_addr: SocketAddr,
    bridge: bool,
    web: Option<Web>,
) -> io::Result<NodeHandle> {
    use onionpeer_core::node::config::{PeersmConfig, Role};
    let cert = crate::tls::LinkCert::generate()?;
    let listener = TlsListener::bind(or_addr, crate::tls::TlsResponder::new(cert)?).await?;
    let mut node = NodeConfig::new(os_seed()?, Role::RELAY, 0);
    let mut peersm = PeersmConfig::new(listener.local_addr()?);
    peersm.bridge = bridge;
    node.peersm = Some(peersm);
    spawn_node(DriverConfig {
        node,
        listener: Some(listener),
        web,
        transport: None,
    })
    .map_err(|e| io::Error::other(e.to_string()))
}
