//! The node driver with WebRTC links: `onionpeer_smol::driver` runs the node, and the
//! node's [`RtcEndpoint`] (UDP socket and every `Rtc`) plugs into it as its
//! [`LinkTransport`], so data channel bytes go straight between str0m and the core inside
//! the driver's task.
//!
//! ```text
//!  UDP socket ◀──▶ RtcLinks (LinkTransport) ◀──▶ onionpeer_smol driver task ◀──▶ core
//!  signalling server ─▶ NodeHandle::accept_offer ─▶ ┘   (TLS links, exits: as ever)
//! ```
//!
//! Links are WebRTC when [`DialPolicy`] says so for the relay's address (the address of
//! its signalling endpoint), TLS otherwise; exits are TCP.

use std::any::Any;
use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use onionpeer_core::node::NodeError;
use onionpeer_core::node::api::RelayTarget;
use onionpeer_core::node::config::NodeConfig;
use onionpeer_smol::driver::{
    DialTarget, Exchange, LinkEvent, LinkKey, LinkTransport, WeakNodeHandle,
};
use onionpeer_smol::tls::TlsListener;

use crate::rtc::{RtcEndpoint, RtcEvent, RtcKey};
use crate::signal::{Answerer, Signaller};

pub use onionpeer_smol::driver::{
    CHUNK, Clock, DriverError, OnionReader, OnionStream, OnionWriter, STREAM_QUEUE, WRITE_QUEUE,
    os_seed,
};

/// How long ICE, DTLS and the data channel may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which relay addresses are dialled over WebRTC (the rest over TLS).
#[derive(Debug, Clone, Default)]
pub enum DialPolicy {
    /// Every link is WebRTC.
    #[default]
    AllWebRtc,
    /// Links to these addresses (signalling endpoints) are WebRTC, the rest TLS.
    WebRtcFor(BTreeSet<SocketAddr>),
}

impl DialPolicy {
    fn is_webrtc(&self, addr: &SocketAddr) -> bool {
        match self {
            DialPolicy::AllWebRtc => true,
            DialPolicy::WebRtcFor(set) => set.contains(addr),
        }
    }
}

/// How the driver is started.
pub struct DriverConfig {
    /// The node's configuration. `unix_time_at_zero` is overwritten from the wall clock.
    pub node: NodeConfig,
    /// For a relay: the TLS listener of its OR port, if it also takes TLS links.
    pub listener: Option<TlsListener>,
    /// The WebRTC endpoint (UDP socket, DTLS certificate).
    pub endpoint: RtcEndpoint,
    /// Where offers are answered: the signalling endpoint's listener (its address is the
    /// node's WebRTC address). Without it the node only dials.
    pub signalling: Option<smol::net::TcpListener>,
    /// How our offers reach peers.
    pub signaller: Arc<dyn Signaller>,
    /// Which links are WebRTC.
    pub dial: DialPolicy,
    /// Tests only: sign this value in our CERTS instead of our DTLS fingerprint.
    #[doc(hidden)]
    pub sign_fingerprint: Option<[u8; 32]>,
}

/// The node's WebRTC links, as the smol driver's [`LinkTransport`].
struct RtcLinks {
    endpoint: RtcEndpoint,
    signaller: Arc<dyn Signaller>,
    dial: DialPolicy,
    signal_addr: Option<SocketAddr>,
    sign_fingerprint: Option<[u8; 32]>,
}

impl RtcLinks {
    /// Answer `offer`: the connection is the driver's to accept once its channel opens.
    fn accept_offer(&mut self, offer: &str) -> io::Result<String> {
        self.endpoint.accept_offer(offer).map(|(_, answer)| answer)
    }
}

fn link(key: RtcKey) -> LinkKey {
    LinkKey(key.0)
}

fn rtc(key: LinkKey) -> RtcKey {
    RtcKey(key.0)
}

impl LinkTransport for RtcLinks {
    fn listen_addr(&self) -> Option<SocketAddr> {
        self.signal_addr
    }

    fn dials(&self, addr: &SocketAddr) -> bool {
        self.dial.is_webrtc(addr) || self.signaller.routes(addr)
    }

    fn dial(&mut self, target: DialTarget) -> io::Result<(LinkKey, Exchange)> {
        let (key, offer) = self.endpoint.offer()?;
        Ok((link(key), self.signaller.exchange(&target, offer)))
    }

    fn complete_dial(&mut self, key: LinkKey, reply: io::Result<String>) -> io::Result<()> {
        self.endpoint.accept_answer(rtc(key), &reply?)
    }

    fn next_wake(&self) -> Option<std::time::Instant> {
        self.endpoint.next_wake()
    }

    fn readable(&self) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>> {
        Box::pin(self.endpoint.readable())
    }

    fn handle_timeout(&mut self, now: std::time::Instant) {
        self.endpoint.handle_timeout(now);
    }

    fn recv(&mut self) {
        self.endpoint.recv();
    }

    fn poll_event(&mut self) -> Option<LinkEvent> {
        Some(match self.endpoint.poll_event()? {
            RtcEvent::Open {
                key,
                mut binding,
                remote,
            } => {
                if let Some(fake) = self.sign_fingerprint {
                    binding.local = fake;
                }
                LinkEvent::Open {
                    key: link(key),
                    binding,
                    remote,
                }
            }
            RtcEvent::Data { key, data } => LinkEvent::Data {
                key: link(key),
                data,
            },
            RtcEvent::Writable(key) => LinkEvent::Writable(link(key)),
            RtcEvent::Closed { key, error } => LinkEvent::Closed {
                key: link(key),
                error,
            },
        })
    }

    fn writable(&mut self, key: LinkKey) -> usize {
        self.endpoint.writable(rtc(key))
    }

    fn write(&mut self, key: LinkKey, data: &[u8]) -> bool {
        self.endpoint.write(rtc(key), data)
    }

    fn close(&mut self, key: LinkKey) {
        self.endpoint.close(rtc(key));
    }

    fn close_all(&mut self) {
        self.endpoint.close_all();
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The application's side of a running node with WebRTC links: the smol driver's
/// [`onionpeer_smol::driver::NodeHandle`] (which it derefs to), plus what WebRTC adds.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    inner: onionpeer_smol::driver::NodeHandle,
    fingerprint: [u8; 32],
}

impl Deref for NodeHandle {
    type Target = onionpeer_smol::driver::NodeHandle;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

/// Start a node on the global smol executor.
pub fn spawn_node(config: DriverConfig) -> Result<NodeHandle, NodeError> {
    spawn_node_with_web(config, None)
}

/// How long a WebRTC-only node keeps the circuit it registered with a peer on open for
/// that peer's verifying offer (the core's signalling lifetime).
const REGISTRATION_HOLD: Duration = Duration::from_secs(30);

/// Start a node that also serves `web` (WebSocket links, the page): its HTTP ports and,
/// with `web.on_or_port`, its OR port answer WebRTC offers POSTed to `/offer`, so a
/// browser reaches it over WebRTC at the address it would open a WebSocket to.
pub fn spawn_node_with_web(
    config: DriverConfig,
    mut web: Option<onionpeer_smol::ws::Web>,
) -> Result<NodeHandle, NodeError> {
    // The handler needs the node, which does not exist yet: it is filled in below.
    let answerer: Arc<std::sync::OnceLock<WeakAnswerer>> = Arc::default();
    if let Some(web) = &mut web {
        let slot = answerer.clone();
        web.site.offers = Some(onionpeer_smol::ws::OfferHandler(Arc::new(move |offer| {
            let a = slot.get().cloned();
            Box::pin(async move {
                match a {
                    Some(a) => a.answer(offer).await,
                    None => Err(io::Error::other("node not started")),
                }
            })
        })));
    }
    let mut config = config;
    if matches!(config.dial, DialPolicy::AllWebRtc)
        && let Some(p) = config.node.peersm.as_mut()
        && p.signal.registration_hold.is_zero()
    {
        // Peers verify our registrations over WebRTC: their offers come down the circuit
        // the registration went on (core/PROTOCOL.md section 12), so it stays open a while.
        p.signal.registration_hold = REGISTRATION_HOLD;
    }
    let fingerprint = config.endpoint.fingerprint();
    let signal_addr = config.signalling.as_ref().and_then(|l| l.local_addr().ok());
    let signaller = config.signaller.clone();
    let links = RtcLinks {
        endpoint: config.endpoint,
        signaller: config.signaller,
        dial: config.dial,
        signal_addr,
        sign_fingerprint: config.sign_fingerprint,
    };
    let inner = onionpeer_smol::driver::spawn_node(onionpeer_smol::driver::DriverConfig {
        node: config.node,
        listener: config.listener,
        web,
        transport: Some(Box::new(links)),
    })?;
    let _ = answerer.set(WeakAnswerer(inner.downgrade()));
    if let Some(l) = config.signalling {
        let weak = WeakAnswerer(inner.downgrade());
        inner.keep_task(smol::spawn(crate::signal::serve_signalling(l, weak)));
    }
    signaller.attach(inner.downgrade());
    crate::netsignal::answer_network_offers(&inner);
    Ok(NodeHandle { inner, fingerprint })
}

/// Answer `offer` through the node's task (see [`NodeHandle::accept_offer`]).
pub(crate) async fn accept_offer(
    node: &onionpeer_smol::driver::NodeHandle,
    offer: String,
) -> io::Result<String> {
    node.with_transport(move |t| match t.as_any_mut().downcast_mut::<RtcLinks>() {
        Some(links) => links.accept_offer(&offer),
        None => Err(io::Error::other("not a WebRTC node")),
    })
    .await?
}

/// Answers offers through the node's task without keeping the node alive.
#[derive(Clone)]
struct WeakAnswerer(WeakNodeHandle);

impl Answerer for WeakAnswerer {
    async fn answer(&self, offer: String) -> io::Result<String> {
        let node = self.0.upgrade().ok_or(DriverError::Stopped)?;
        accept_offer(&node, offer).await
    }
}

impl Answerer for NodeHandle {
    async fn answer(&self, offer: String) -> io::Result<String> {
        self.accept_offer(offer).await
    }
}

impl NodeHandle {
    /// How peers reach this node over WebRTC (nodes with a signalling endpoint only): the
    /// endpoint's address, identity and onion key.
    pub fn webrtc_target(&self) -> Option<&RelayTarget> {
        self.inner.transport_target()
    }

    /// The SHA-256 fingerprint of the node's DTLS certificate.
    pub fn dtls_fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Answer a WebRTC offer (SDP) with an answer (SDP): the peer connection is created
    /// and becomes a link once its data channel opens. For signalling servers other than
    /// [`crate::signal::serve_signalling`] (a bridge's, for example).
    pub async fn accept_offer(&self, offer: String) -> io::Result<String> {
        accept_offer(&self.inner, offer).await
    }

    /// WebRTC peer connections the node holds (open or opening).
    pub async fn webrtc_links(&self) -> usize {
        self.inner
            .with_transport(|t| {
                t.as_any_mut()
                    .downcast_mut::<RtcLinks>()
                    .map_or(0, |l| l.endpoint.len())
            })
            .await
            .unwrap_or(0)
    }

    /// The smol driver's handle.
    pub fn smol_handle(&self) -> &onionpeer_smol::driver::NodeHandle {
        &self.inner
    }
}

/// Bind a node's WebRTC address: the signalling endpoint's TCP listener at `addr` and
/// the UDP socket on the same port (with port 0, a port free for both), with a fresh
/// DTLS certificate.
pub async fn bind_webrtc(addr: SocketAddr) -> io::Result<(smol::net::TcpListener, RtcEndpoint)> {
    let mut last = None;
    for _ in 0..16 {
        let tcp = smol::net::TcpListener::bind(addr).await?;
        let at = tcp.local_addr()?;
        match crate::rtc::bind_udp(at) {
            Ok(udp) => {
                let ep = RtcEndpoint::new(udp, crate::rtc::generate_cert()?, CONNECT_TIMEOUT)?;
                return Ok((tcp, ep));
            }
            // The port is free for TCP but not UDP: with port 0, try another.
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port free for TCP and UDP")))
}

/// An endpoint that only dials: a UDP socket on `udp_addr` (port 0: any), no signalling.
pub fn dial_only_endpoint(udp_addr: SocketAddr) -> io::Result<RtcEndpoint> {
    RtcEndpoint::new(
        crate::rtc::bind_udp(udp_addr)?,
        crate::rtc::generate_cert()?,
        CONNECT_TIMEOUT,
    )
}

/// Start a relay reached over WebRTC at `addr` (port 0: any free port), with fresh keys
/// from the OS RNG, dialling every link over WebRTC with HTTP signalling. With an exit
/// policy it is an exit (opening what the policy accepts), without one a middle relay.
pub async fn spawn_relay(
    addr: SocketAddr,
    exit_policy: Option<onionpeer_core::node::exit_policy::ExitPolicy>,
) -> io::Result<NodeHandle> {
    let node = onionpeer_smol::driver::relay_config(exit_policy)?;
    let (signalling, endpoint) = bind_webrtc(addr).await?;
    spawn_node(DriverConfig {
        node,
        listener: None,
        endpoint,
        signalling: Some(signalling),
        signaller: Arc::new(crate::signal::HttpSignaller),
        dial: DialPolicy::AllWebRtc,
        sign_fingerprint: None,
    })
    .map_err(|e| io::Error::other(e.to_string()))
}

/// Start a Peersm peer (or with `bridge`, a bridge) whose links are WebRTC: its HTTP
/// signalling endpoint and UDP socket at `webrtc` (its PEER record advertises that
/// address), its OR port at `or_port` for TLS links (and WebSocket ones with `web`).
/// Every link it dials is WebRTC, signalled through the network via the peer the core
/// names as the target's introducer (or one introduced to its
/// [`crate::netsignal::NetworkSignaller`]), else by HTTP to the peer's endpoint; so the
/// peers it meets must be WebRTC peers too.
pub async fn spawn_peer(
    webrtc: SocketAddr,
    or_port: SocketAddr,
    bridge: bool,
    web: Option<onionpeer_smol::ws::Web>,
) -> io::Result<(NodeHandle, crate::netsignal::NetworkSignaller)> {
    use onionpeer_core::node::config::{PeersmConfig, Role};
    let cert = onionpeer_smol::tls::LinkCert::generate()?;
    let listener =
        TlsListener::bind(or_port, onionpeer_smol::tls::TlsResponder::new(cert)?).await?;
    let (signalling, endpoint) = bind_webrtc(webrtc).await?;
    let mut node = NodeConfig::new(os_seed()?, Role::RELAY, 0);
    let mut peersm = PeersmConfig::new(signalling.local_addr()?);
    peersm.bridge = bridge;
    node.peersm = Some(peersm);
    let signaller =
        crate::netsignal::NetworkSignaller::new(Some(Arc::new(crate::signal::HttpSignaller)));
    let handle = spawn_node_with_web(
        DriverConfig {
            node,
            listener: Some(listener),
            endpoint,
            signalling: Some(signalling),
            signaller: Arc::new(signaller.clone()),
            dial: DialPolicy::AllWebRtc,
            sign_fingerprint: None,
        },
        web,
    )
    .map_err(|e| io::Error::other(e.to_string()))?;
    Ok((handle, signaller))
}

/// Start an onion proxy (a client node: builds circuits, relays nothing) whose links are
/// WebRTC from a UDP socket on `udp_addr`.
pub fn spawn_client(udp_addr: SocketAddr) -> io::Result<NodeHandle> {
    let node = NodeConfig::new(os_seed()?, onionpeer_core::node::config::Role::CLIENT, 0);
    spawn_node(DriverConfig {
        node,
        listener: None,
        endpoint: dial_only_endpoint(udp_addr)?,
        signalling: None,
        signaller: Arc::new(crate::signal::HttpSignaller),
        dial: DialPolicy::AllWebRtc,
        sign_fingerprint: None,
    })
    .map_err(|e| io::Error::other(e.to_string()))
}
