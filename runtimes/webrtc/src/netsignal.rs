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
//! ([`answer_network_offers`], started by `spawn_node`), and refuses (REFUSED
//! UNANSWERED) those it cannot answer. A node *sends* an offer through the network when
//! it knows a peer that can pass it on: the introducer the core names on the dial (the
//! peer it learned the target's record from: the bridge's DB_FOUND_PEER, a DHT_FOUND; or
//! the target itself when it just registered with us, so the offer goes down the circuit
//! it registered on), or one introduced to its [`NetworkSignaller`]
//! ([`NetworkSignaller::introduce`]). Other dials, and exchanges the network refused or
//! left unanswered, go to its fallback (HTTP).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onionpeer_core::cells::relay::{SignalKind, SignalRefusal};
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::node::api::{Command, Event};
use onionpeer_smol::driver::WeakNodeHandle;
use smol::channel::{Sender, bounded};
use smol::future::FutureExt as _;

use crate::signal::{AnswerFuture, DialTarget, Signaller};

/// How long an offer waits for its answer through the network when there is no
/// fallback.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// The same with a fallback to try next: the two must fit the core's 30 s link deadline
/// (answers through an introducer take a few round trips, well under a second).
const ANSWER_TIMEOUT_BEFORE_FALLBACK: Duration = Duration::from_secs(8);

/// Where a peer's offers go: the peer, and the peer that passes them on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Introduction {
    /// The peer at the address.
    pub peer: PeerId,
    /// A peer with a circuit to it (a bridge, say), or `None` to send on our own
    /// circuit to the peer.
    pub via: Option<PeerId>,
}

/// What a [`NetworkSignaller`]'s exchanges came to, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalStats {
    /// Offers sent through the network.
    pub offers_sent: u64,
    /// Answers that came back through the network.
    pub answered: u64,
    /// Offers refused through the network (REFUSED from an introducer or the target).
    pub refused: u64,
    /// Offers that got no answer in time, or could not be sent.
    pub failed: u64,
    /// Exchanges handed to the fallback (no route through the network, or it failed).
    pub fallbacks: u64,
}

#[derive(Default)]
struct Stats {
    offers_sent: AtomicU64,
    answered: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    fallbacks: AtomicU64,
}

impl Stats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What an exchange waiting for the network gets: the answer, or why there is none.
type Reply = Result<String, SignalRefusal>;

#[derive(Default)]
struct Inner {
    node: Option<WeakNodeHandle>,
    routes: BTreeMap<SocketAddr, Introduction>,
    waiting: BTreeMap<(PeerId, u32), Sender<Reply>>,
}

/// A [`Signaller`] that carries offers through the onionpeer network to the peers it
/// has an introducer for, and through `fallback` otherwise (or when that fails).
#[derive(Clone)]
pub struct NetworkSignaller {
    inner: Arc<Mutex<Inner>>,
    fallback: Option<Arc<dyn Signaller>>,
    next_session: Arc<AtomicU32>,
    stats: Arc<Stats>,
}

impl NetworkSignaller {
    /// A signaller sending what the network cannot carry through `fallback` (or failing
    /// it without one).
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
            stats: Arc::default(),
        }
    }

    /// Links to `addr` are WebRTC, signalled through the network to `intro.peer`. The
    /// address is only a name for the peer here (the core dials peers by address); its
    /// ICE candidates travel in the SDP. Without this, a dial is signalled through the
    /// introducer the core names for it, if any.
    pub fn introduce(&self, addr: SocketAddr, intro: Introduction) {
        self.lock().routes.insert(addr, intro);
    }

    /// What the exchanges came to so far.
    pub fn stats(&self) -> SignalStats {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SignalStats {
            offers_sent: get(&s.offers_sent),
            answered: get(&s.answered),
            refused: get(&s.refused),
            failed: get(&s.failed),
            fallbacks: get(&s.fallbacks),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where an offer for `to` goes through the network, if anywhere.
    fn route_for(&self, to: &DialTarget) -> Option<Introduction> {
        if let Some(intro) = self.lock().routes.get(&to.addr) {
            return Some(*intro);
        }
        let peer = to.peer?;
        let introducer = to.introducer?;
        // A peer that is its own introducer registered with us: the core sends the offer
        // down the circuit it registered on.
        Some(Introduction {
            peer,
            via: Some(introducer).filter(|i| *i != peer),
        })
    }

    /// Send `offer` to `intro.peer` through the network and wait for its answer: an
    /// error if it cannot be sent, is refused, or gets no answer within `timeout`.
    pub async fn exchange_via_network(
        &self,
        intro: Introduction,
        offer: String,
        timeout: Duration,
    ) -> io::Result<String> {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded(1);
        let node = {
            let mut g = self.lock();
            g.waiting.insert((intro.peer, session), tx);
            g.node.as_ref().and_then(|w| w.upgrade())
        };
        let stats = self.stats.clone();
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
            Stats::bump(&stats.offers_sent);
            drop(node);
            match rx.recv().await {
                Ok(Ok(answer)) => {
                    Stats::bump(&stats.answered);
                    Ok(answer)
                }
                Ok(Err(reason)) => {
                    Stats::bump(&stats.refused);
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("offer refused: {}", reason.name()),
                    ))
                }
                Err(_) => Err(io::Error::other("node stopped")),
            }
        }
        .or(async {
            smol::Timer::after(timeout).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer through the network",
            ))
        })
        .await;
        if let Err(e) = &result
            && e.kind() != io::ErrorKind::ConnectionRefused
        {
            Stats::bump(&self.stats.failed);
        }
        self.lock().waiting.remove(&(intro.peer, session));
        result
    }
}

impl Signaller for NetworkSignaller {
    fn exchange(&self, to: &DialTarget, offer: String) -> AnswerFuture {
        let to = *to;
        let this = self.clone();
        Box::pin(async move {
            if let Some(intro) = this.route_for(&to) {
                let timeout = match this.fallback {
                    Some(_) => ANSWER_TIMEOUT_BEFORE_FALLBACK,
                    None => ANSWER_TIMEOUT,
                };
                match this
                    .exchange_via_network(intro, offer.clone(), timeout)
                    .await
                {
                    Ok(answer) => return Ok(answer),
                    Err(e) if this.fallback.is_some() => {
                        tracing::info!(addr = %to.addr, peer = %intro.peer, error = %e,
                            "signalling through the network failed; trying the fallback");
                    }
                    Err(e) => return Err(e),
                }
            }
            match &this.fallback {
                Some(f) => {
                    Stats::bump(&this.stats.fallbacks);
                    f.exchange(&to, offer).await
                }
                None => Err(io::Error::other(format!(
                    "no signalling route to {}",
                    to.addr
                ))),
            }
        })
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
        // Answers and refusals reach the exchanges waiting for them.
        let events = strong.events();
        let inner = self.inner.clone();
        strong.keep_task(smol::spawn(async move {
            while let Ok(ev) = events.recv().await {
                let Event::SignalReceived {
                    from,
                    session,
                    kind,
                    sdp,
                } = ev
                else {
                    continue;
                };
                let reply = match kind {
                    SignalKind::ANSWER => {
                        String::from_utf8(sdp).map_err(|_| SignalRefusal::UNANSWERED)
                    }
                    SignalKind::REFUSED => {
                        Err(SignalRefusal::decode(&sdp).unwrap_or(SignalRefusal::UNANSWERED))
                    }
                    _ => continue,
                };
                let waiter = inner
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .waiting
                    .remove(&(from, session));
                match waiter {
                    Some(tx) => {
                        let _ = tx.try_send(reply);
                    }
                    None => tracing::debug!(%from, session, ?kind, "unexpected signal"),
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
                Err(e) => {
                    tracing::info!(%from, session, error = %e, "network offer refused");
                    // Tell the offerer now rather than let it wait out its timeout.
                    let refused = node
                        .command(Command::Signal {
                            to: from,
                            via: None,
                            session,
                            kind: SignalKind::REFUSED,
                            sdp: SignalRefusal::UNANSWERED.encode().to_vec(),
                        })
                        .await;
                    if let Err(e) = refused {
                        tracing::debug!(%from, session, error = ?e, "refusal not sent");
                    }
                }
            }
        }
    }));
}
