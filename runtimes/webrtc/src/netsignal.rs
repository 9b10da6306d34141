//! Signalling carried through the onionpeer network (PEER_SIGNAL, PROTOCOL.md 3.1): two
//! peers that share a path open a direct WebRTC link without any signalling server.
//!
//! ```text
//!  A: core Connect(B) ─▶ RtcLinks::dial ─▶ NetworkSignaller::exchange
//!       ─▶ Command::Signal{OFFER, to B, via I} ═══ I ═══▶ B: Event::SignalReceived
//!                                                        ─▶ accept_offer ─▶ answer
//!  A: Event::SignalReceived{ANSWER} ◀═══ I ═══ Command::Signal{ANSWER, to A} ◀─┘
//!       ─▶ the exchange resolves ─▶ ICE + DTLS ─▶ the link's CERTS check B's fingerprint
//! ```
//!
//! Every WebRTC node answers offers that reach it through the network
//! ([`answer_network_offers`], started by `spawn_node`). A node *sends* offers through
//! the network for the addresses introduced to its [`NetworkSignaller`]
//! ([`NetworkSignaller::introduce`]); other addresses go to its fallback (HTTP).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onionpeer_core::cells::relay::SignalKind;
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::node::api::{Command, Event};
use onionpeer_smol::driver::WeakNodeHandle;
use smol::channel::{Sender, bounded};
use smol::future::FutureExt as _;

use crate::signal::{AnswerFuture, Signaller};

/// How long an offer waits for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a peer's offers go: the peer, and the peer that passes them on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Introduction {
    /// The peer at the address.
    pub peer: PeerId,
    /// A peer with a circuit to it (a bridge, say), or `None` to send on our own
    /// circuit to the peer.
    pub via: Option<PeerId>,
}

#[derive(Default)]
struct Inner {
    node: Option<WeakNodeHandle>,
    routes: BTreeMap<SocketAddr, Introduction>,
    waiting: BTreeMap<(PeerId, u32), Sender<String>>,
}

/// A [`Signaller`] that carries offers through the onionpeer network to the peers
/// introduced to it, and through `fallback` to any other address.
#[derive(Clone)]
pub struct NetworkSignaller {
    inner: Arc<Mutex<Inner>>,
    fallback: Option<Arc<dyn Signaller>>,
    next_session: Arc<AtomicU32>,
}

impl NetworkSignaller {
    /// A signaller sending to addresses not introduced through `fallback` (or failing
    /// them without one).
    pub fn new(fallback: Option<Arc<dyn Signaller>>) -> NetworkSignaller {
        // Sessions only need to differ between our concurrent offers to one peer; a
        // time-based start keeps a restarted node from reusing the previous numbers.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos());
        NetworkSignaller {
            inner: Arc::default(),
            fallback,
            next_session: Arc::new(AtomicU32::new(start)),
        }
    }

    /// Links to `addr` are WebRTC, signalled through the network to `intro.peer`. The
    /// address is only a name for the peer here (the core dials peers by address); its
    /// ICE candidates travel in the SDP.
    pub fn introduce(&self, addr: SocketAddr, intro: Introduction) {
        self.lock().routes.insert(addr, intro);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn exchange_via_network(
        inner: Arc<Mutex<Inner>>,
        intro: Introduction,
        session: u32,
        offer: String,
    ) -> io::Result<String> {
        let (tx, rx) = bounded(1);
        let node = {
            let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
            g.waiting.insert((intro.peer, session), tx);
            g.node.as_ref().and_then(|w| w.upgrade())
        };
        let result = async {
            let node = node.ok_or_else(|| io::Error::other("node not running"))?;
            node.command(Command::Signal {
                to: intro.peer,
                via: intro.via,
                session,
                kind: SignalKind::OFFER,
                sdp: offer.into_bytes(),
            })
            .await
            .map_err(|e| io::Error::other(format!("offer not sent: {e:?}")))?;
            drop(node);
            rx.recv()
                .await
                .map_err(|_| io::Error::other("node stopped"))
        }
        .or(async {
            smol::Timer::after(ANSWER_TIMEOUT).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer through the network",
            ))
        })
        .await;
        inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting
            .remove(&(intro.peer, session));
        result
    }
}

impl Signaller for NetworkSignaller {
    fn exchange(&self, addr: SocketAddr, offer: String) -> AnswerFuture {
        let intro = self.lock().routes.get(&addr).copied();
        match (intro, &self.fallback) {
            (Some(intro), _) => {
                let session = self.next_session.fetch_add(1, Ordering::Relaxed);
                Box::pin(Self::exchange_via_network(
                    self.inner.clone(),
                    intro,
                    session,
                    offer,
                ))
            }
            (None, Some(f)) => f.exchange(addr, offer),
            (None, None) => {
                Box::pin(
                    async move { Err(io::Error::other(format!("no signalling route to {addr}"))) },
                )
            }
        }
    }

    fn routes(&self, addr: &SocketAddr) -> bool {
        self.lock().routes.contains_key(addr)
            || self.fallback.as_ref().is_some_and(|f| f.routes(addr))
    }

    fn attach(&self, node: WeakNodeHandle) {
        let Some(strong) = node.upgrade() else {
            return;
        };
        self.lock().node = Some(node);
        // Answers reach the exchanges waiting for them.
        let events = strong.events();
        let inner = self.inner.clone();
        strong.keep_task(smol::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if let Event::SignalReceived {
                    from,
                    session,
                    kind: SignalKind::ANSWER,
                    sdp,
                } = ev
                {
                    let waiter = inner
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .waiting
                        .remove(&(from, session));
                    match (waiter, String::from_utf8(sdp)) {
                        (Some(tx), Ok(answer)) => {
                            let _ = tx.try_send(answer);
                        }
                        _ => tracing::debug!(%from, session, "unexpected or bad answer"),
                    }
                }
            }
        }));
        if let Some(f) = &self.fallback {
            f.attach(strong.downgrade());
        }
    }
}

/// Answer every offer that reaches the node through the network: the peer connection is
/// created (it becomes a link once its channel opens, and the initiator checks our
/// CERTS against the fingerprint in our answer) and the answer goes back the way the
/// offer came.
pub(crate) fn answer_network_offers(node: &onionpeer_smol::driver::NodeHandle) {
    let events = node.events();
    let weak = node.downgrade();
    node.keep_task(smol::spawn(async move {
        while let Ok(ev) = events.recv().await {
            let Event::SignalReceived {
                from,
                session,
                kind: SignalKind::OFFER,
                sdp,
            } = ev
            else {
                continue;
            };
            let Some(node) = weak.upgrade() else {
                return;
            };
            let answered = async {
                let offer = String::from_utf8(sdp).map_err(|_| io::Error::other("not UTF-8"))?;
                let answer = crate::driver::accept_offer(&node, offer).await?;
                node.command(Command::Signal {
                    to: from,
                    via: None,
                    session,
                    kind: SignalKind::ANSWER,
                    sdp: answer.into_bytes(),
                })
                .await
                .map_err(|e| io::Error::other(format!("{e:?}")))?;
                io::Result::Ok(())
            }
            .await;
            match answered {
                Ok(()) => tracing::debug!(%from, session, "answered an offer from the network"),
                Err(e) => tracing::info!(%from, session, error = %e, "network offer refused"),
            }
        }
    }));
}
