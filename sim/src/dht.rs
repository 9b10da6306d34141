//! The Peersm DHT application on a peer: bootstraps, lookups, stores, judged against the
//! simulator's global knowledge (the [`Directory`](crate::node::Directory) knows every
//! peer's id and which are DHT members).
//!
//! Actions (for `host`, or every host of `role`, default `peer`; repeated with
//! `every_ms`/`count` like the circuit actions):
//! - `bootstrap`: `via = "bridge"` (default: a random honest bridge), `"evil_bridge"` (a
//!   random colluding bridge) or a host name (that peer's record, or that bridge).
//!   A peer that joins after time zero (churn, `join`) bootstraps through a random bridge
//!   at once.
//! - `find_node`: `target = "random"` (default: a random key) or `"peer"` (the id of a
//!   random member). Success: the first peer found is the member closest to the target.
//! - `store`: announce a fresh name; the directory remembers who holds it.
//! - `find_value`: look up a random stored name of another peer. Success: its holder is
//!   among the holders found (not judged when the holder has left).
//!
//! A lookup whose result set is non-empty and all colluders (roles `colluder`,
//! `evil_bridge`) is *captured*.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use onionpeer_core::cells::relay::{HashName, PeerRecord, Progress};
use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::dht::Key;
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{BootstrapVia, Command, CommandOk, Event, QueryId};
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;

use crate::host::Instant;
use crate::node::{HostRole, SharedDirectory};
use crate::workload::AppEvent;

/// The action kinds this module handles.
pub const DHT_ACTIONS: [&str; 4] = ["bootstrap", "find_node", "store", "find_value"];

/// A DHT task.
#[derive(Debug, Clone, PartialEq)]
pub enum DhtJob {
    /// Join through `via` (see the module docs).
    Bootstrap {
        /// `bridge`, `evil_bridge` or a host name.
        via: String,
    },
    /// FIND_NODE of a random key, or of a member's id.
    FindNode {
        /// Look up a member's id rather than a random key.
        of_peer: bool,
    },
    /// Announce a new name.
    Store,
    /// FIND_VALUE of a name another peer stored.
    FindValue,
}

impl DhtJob {
    /// The job an action describes, if it is a DHT action.
    pub fn from_action(kind: &str, via: Option<&str>, target: Option<&str>) -> Option<DhtJob> {
        Some(match kind {
            "bootstrap" => DhtJob::Bootstrap {
                via: via.unwrap_or("bridge").to_string(),
            },
            "find_node" => DhtJob::FindNode {
                of_peer: target == Some("peer"),
            },
            "store" => DhtJob::Store,
            "find_value" => DhtJob::FindValue,
            _ => return None,
        })
    }
}

#[derive(Debug)]
enum Pending {
    Bootstrap,
    FindNode(Key),
    Store(HashName),
    FindValue { holder: String, id: PeerId },
}

/// The DHT state of one peer's application.
#[derive(Debug, Default)]
pub struct DhtApp {
    queries: BTreeMap<QueryId, (Pending, Instant)>,
    bootstrap_started: Option<Instant>,
    stores: u64,
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    (b - a).as_nanos() as f64 / 1e6
}

fn pick<'a, T>(rng: &mut ChaCha20Rng, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        return None;
    }
    v.get((rng.next_u64() % v.len() as u64) as usize)
}

fn is_colluder(role: HostRole) -> bool {
    matches!(role, HostRole::Colluder | HostRole::EvilBridge)
}

impl DhtApp {
    /// Start `job` at `node` (the host `me`).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        now: Instant,
        job: &DhtJob,
        me: &str,
        rng: &mut ChaCha20Rng,
        node: &mut Node,
        dir: &SharedDirectory,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        if matches!(job, DhtJob::Bootstrap { .. }) {
            // A bridge links up with every other honest bridge (they share their
            // registrations) rather than joining.
            let fellows: Option<Vec<_>> = {
                let d = dir.borrow();
                d.hosts
                    .get(me)
                    .filter(|e| e.role == HostRole::Bridge)
                    .map(|_| {
                        d.hosts
                            .iter()
                            .filter(|(n, e)| e.role == HostRole::Bridge && n.as_str() != me)
                            .filter_map(|(_, e)| e.target.clone())
                            .collect()
                    })
            };
            if let Some(fellows) = fellows {
                for t in fellows {
                    let cmd = Command::Bootstrap {
                        via: BootstrapVia::Bridge(t),
                    };
                    if let Err(e) = node.command(now, cmd) {
                        emit(AppEvent::Refused(format!("{e:?}")));
                    }
                }
                return;
            }
        }
        let (cmd, pending) = {
            let d = dir.borrow();
            match job {
                DhtJob::Bootstrap { via } => {
                    let via = if via == "bridge" || via == "evil_bridge" {
                        let want = HostRole::parse(via);
                        let bridges: Vec<_> = d
                            .hosts
                            .iter()
                            .filter(|(n, e)| e.role == want && n.as_str() != me)
                            .filter_map(|(_, e)| e.target.clone())
                            .collect();
                        pick(rng, &bridges).cloned().map(BootstrapVia::Bridge)
                    } else {
                        d.hosts.get(via).and_then(|e| {
                            if e.role.is_bridge() {
                                e.target.clone().map(BootstrapVia::Bridge)
                            } else {
                                e.peer.clone().map(BootstrapVia::Peer)
                            }
                        })
                    };
                    let Some(via) = via else {
                        emit(AppEvent::NoPath);
                        return;
                    };
                    self.bootstrap_started.get_or_insert(now);
                    (Command::Bootstrap { via }, Pending::Bootstrap)
                }
                DhtJob::FindNode { of_peer } => {
                    let key = if *of_peer {
                        let members: Vec<PeerId> = d
                            .hosts
                            .iter()
                            .filter(|(n, e)| e.member && !e.role.is_bridge() && n.as_str() != me)
                            .filter_map(|(_, e)| e.peer.as_ref().map(|p| p.id))
                            .collect();
                        match pick(rng, &members) {
                            Some(id) => Key::from(*id),
                            None => return,
                        }
                    } else {
                        let mut k = [0u8; 20];
                        rng.fill_bytes(&mut k);
                        Key(k)
                    };
                    (Command::FindNode(key), Pending::FindNode(key))
                }
                DhtJob::Store => {
                    self.stores += 1;
                    let Ok(name) = HashName::new(format!("{me}/{}", self.stores).as_bytes()) else {
                        return;
                    };
                    let cmd = Command::Store {
                        hash_name: name.clone(),
                        progress: Progress::Full,
                    };
                    (cmd, Pending::Store(name))
                }
                DhtJob::FindValue => {
                    let others: Vec<&(HashName, String)> =
                        d.stored.iter().filter(|(_, h)| h != me).collect();
                    let Some(&(name, holder)) = pick(rng, &others) else {
                        return;
                    };
                    let Some(id) = d.hosts.get(holder).and_then(|e| e.peer.as_ref()) else {
                        return;
                    };
                    let pending = Pending::FindValue {
                        holder: holder.clone(),
                        id: id.id,
                    };
                    (Command::FindValue(name.clone()), pending)
                }
            }
        };
        match node.command(now, cmd) {
            Ok(CommandOk::Query(q)) => {
                self.queries.insert(q, (pending, now));
            }
            Ok(_) => {}
            Err(e) => emit(AppEvent::Refused(format!("{e:?}"))),
        }
    }

    /// React to a node event (only the DHT ones matter).
    pub fn on_event(
        &mut self,
        now: Instant,
        event: &Event,
        me: &str,
        node: &Node,
        dir: &SharedDirectory,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        match event {
            Event::DhtLookupDone {
                query,
                closest,
                holders,
                hops,
            } => {
                let Some((pending, started)) = self.queries.remove(query) else {
                    return;
                };
                let ms = ms_between(started, now);
                let mut d = dir.borrow_mut();
                let asker_colludes = d.hosts.get(me).is_some_and(|e| is_colluder(e.role));
                let captured = !asker_colludes && !closest.is_empty() && {
                    let colluders: BTreeSet<PeerId> = d
                        .hosts
                        .values()
                        .filter(|e| is_colluder(e.role))
                        .filter_map(|e| e.peer.as_ref().map(|p| p.id))
                        .collect();
                    closest.iter().all(|r| colluders.contains(&r.id))
                };
                let victim = d.hosts.get(me).is_some_and(|e| e.role == HostRole::Victim);
                let mut missed_honest = None;
                let (kind, ok) = match pending {
                    Pending::Bootstrap => {
                        if std::env::var_os("SIM_DHT_DEBUG").is_some() {
                            // How close the self-lookup of a joining peer got: the rank of
                            // its closest result among the members (0 = the true closest).
                            let key = Key::from(node.peer_id());
                            let all = d.closest_members_since(&key, me, 64, now);
                            let rank = closest
                                .first()
                                .and_then(|r| all.iter().position(|(_, id)| *id == r.id));
                            let names: Vec<Option<usize>> = closest
                                .iter()
                                .map(|r| all.iter().position(|(_, id)| *id == r.id))
                                .collect();
                            eprintln!(
                                "boot {me} t={:.1}s members={} rank={rank:?} ranks={names:?} hops={hops}",
                                now.as_nanos() as f64 / 1e9,
                                d.hosts.values().filter(|e| e.member).count(),
                            );
                        }
                        ("bootstrap", None)
                    }
                    Pending::FindNode(key) => {
                        // The closest peer that was a member for the whole lookup; the
                        // lookup's answer is its closest result still a member now (one
                        // that left since it answered does not count against it).
                        let truth = d.closest_members_since(&key, me, 1, started);
                        let honest = d
                            .closest_members_since(&key, me, 64, started)
                            .into_iter()
                            .find(|(n, _)| d.hosts.get(*n).is_some_and(|e| !is_colluder(e.role)));
                        missed_honest = honest.map(|(_, id)| !closest.iter().any(|r| r.id == id));
                        let answer = closest.iter().find(|r| {
                            d.by_id(&r.id)
                                .is_some_and(|n| d.hosts.get(n).is_some_and(|e| e.member))
                        });
                        let ok = truth.first().map(|(_, id)| {
                            answer.is_some_and(|r| {
                                key.distance(&Key::from(r.id)) <= key.distance(&Key::from(*id))
                            })
                        });
                        if ok == Some(false) && std::env::var_os("SIM_DHT_DEBUG").is_some() {
                            let (tname, tid) = truth[0];
                            let since = d.hosts[tname].member_since;
                            let rank = closest.iter().position(|r| r.id == tid);
                            eprintln!(
                                "miss find_node {me} t={:.1}s started={:.1}s truth={tname} since={:?} rank={rank:?} first={:?} n={} hops={hops} in_table={} suspicion={}",
                                now.as_nanos() as f64 / 1e9,
                                started.as_nanos() as f64 / 1e9,
                                since.map(|t| t.as_nanos() as f64 / 1e9),
                                closest.first().and_then(|r| d.by_id(&r.id)),
                                closest.len(),
                                node.routing_table().is_some_and(|t| t.get(&tid).is_some()),
                                node.suspicion(&tid),
                            );
                        }
                        ("find_node", ok)
                    }
                    Pending::Store(name) => {
                        d.stored.push((name, me.to_string()));
                        ("store", None)
                    }
                    Pending::FindValue { holder, id } => {
                        let live = d
                            .hosts
                            .get(&holder)
                            .is_some_and(|e| e.member && e.peer.as_ref().map(|p| p.id) == Some(id));
                        let found = holders.iter().any(|r: &PeerRecord| r.id == id);
                        if live && !found && std::env::var_os("SIM_DHT_DEBUG").is_some() {
                            eprintln!(
                                "miss find_value {me} t={:.1}s started={:.1}s holder={holder} holders={} closest={} hops={hops}",
                                now.as_nanos() as f64 / 1e9,
                                started.as_nanos() as f64 / 1e9,
                                holders.len(),
                                closest.len(),
                            );
                        }
                        ("find_value", live.then_some(found))
                    }
                };
                emit(AppEvent::Lookup {
                    kind,
                    ok,
                    hops: *hops,
                    ms,
                    captured,
                    missed_honest,
                    victim,
                });
            }
            Event::OrdbCircuitsReady(n) => {
                if let Some(started) = self.bootstrap_started.take() {
                    let mut d = dir.borrow_mut();
                    if let Some(e) = d.hosts.get_mut(me)
                        && e.peer.as_ref().map(|p| p.id) == Some(node.peer_id())
                        && !e.member
                    {
                        e.member = true;
                        e.member_since = Some(now);
                    }
                    emit(AppEvent::Bootstrapped {
                        ms: ms_between(started, now),
                        ordb: *n,
                    });
                }
            }
            _ => {}
        }
    }
}

/// Delay before a DHT task's first run: `offset` spreads the hosts of a role over time.
pub fn spread(rng: &mut ChaCha20Rng, spread_ms: u64) -> Duration {
    if spread_ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(rng.next_u64() % spread_ms)
    }
}
