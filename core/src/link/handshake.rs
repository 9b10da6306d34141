//! The in-protocol link handshake (tor-spec §4), both sides, as a state enum.
//!
//! ```text
//! initiator                         responder
//!   VERSIONS  ──────────────────────▶
//!             ◀──────────────────────  VERSIONS, CERTS, AUTH_CHALLENGE, NETINFO
//!   NETINFO   ──────────────────────▶
//! ```
//!
//! The initiator never authenticates itself (as a Tor client does); it verifies the
//! responder's CERTS against the transport's certificate digest that the runtime passes
//! in ([`LinkBinding`]), which binds the Tor identity to this very TLS/DTLS connection.
//! A responder accepts an initiator that does authenticate (a Tor relay extending to us
//! sends CERTS and AUTHENTICATE) and treats it as unauthenticated, as it would a client.

use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

use crate::cells::channel::{
    AuthChallenge, AuthMethod, CertEntry, Certs, ChanCell, ChanMsg, LINK_VERSIONS, Netinfo,
    Versions,
};
use crate::crypto::cert::{CertsError, ResponderIdentity, validate_responder_certs};
use crate::crypto::identity::PeerId;
use crate::node::api::LinkBinding;

/// Where a link's handshake stands.
#[derive(Debug, Clone)]
pub enum LinkHandshake {
    /// Initiator: our VERSIONS is sent; waiting for the responder's.
    AwaitVersions,
    /// Initiator: version agreed; waiting for CERTS.
    AwaitCerts {
        /// The negotiated version.
        version: u16,
    },
    /// Initiator: the responder is authenticated; waiting for AUTH_CHALLENGE/NETINFO.
    AwaitNetinfo {
        /// The negotiated version.
        version: u16,
        /// Who the responder proved to be.
        peer: ResponderIdentity,
    },
    /// Responder: waiting for the initiator's VERSIONS.
    AwaitInitiatorVersions,
    /// Responder: our cells are sent; waiting for the initiator's NETINFO.
    AwaitInitiatorNetinfo {
        /// The negotiated version.
        version: u16,
    },
}

/// What one side needs to know to take a handshake step.
#[derive(Debug)]
pub struct HandshakeContext<'a> {
    /// Wall-clock time, for certificate lifetimes and NETINFO.
    pub unix_now: u64,
    /// The transport's certificate digests.
    pub binding: LinkBinding,
    /// The identity the initiator expects the responder to prove, if any.
    pub expected_peer: Option<PeerId>,
    /// Responder: the CERTS cell to send (its type-5 certificate covers `binding.local`).
    pub our_certs: Option<&'a Certs>,
    /// Responder: a fresh random AUTH_CHALLENGE.
    pub challenge: [u8; 32],
    /// The peer's address as the transport sees it, for NETINFO.
    pub peer_addr: Option<IpAddr>,
    /// Our own public addresses, for NETINFO.
    pub my_addrs: &'a [IpAddr],
}

/// The handshake finished: the link is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOpened {
    /// The negotiated link protocol version.
    pub version: u16,
    /// The responder's proven identities (initiator side only).
    pub peer: Option<ResponderIdentity>,
    /// The peer's clock minus ours, in seconds, when its NETINFO carried a time.
    pub clock_skew: Option<i64>,
}

/// What a handshake step produced.
#[derive(Debug, Default)]
pub struct HandshakeStep {
    /// Cells to send, in order. A VERSIONS cell is always encoded with 2-byte circuit ids.
    pub send: Vec<ChanCell>,
    /// The version just negotiated: switch the framer before decoding further bytes.
    pub negotiated: Option<u16>,
    /// Set when the link is open.
    pub opened: Option<LinkOpened>,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// No link protocol version in common.
    NoCommonVersion,
    /// A cell that is not allowed at this point of the handshake.
    UnexpectedCell(ChanMsgKind),
    /// The responder's certificates did not verify.
    BadCertificates(CertsError),
    /// The responder proved an identity other than the expected one.
    WrongIdentity,
}

/// The command of a cell, for error reports (avoids keeping the whole cell).
pub type ChanMsgKind = crate::cells::channel::ChanCmd;

impl LinkHandshake {
    /// Start as the initiator: the state and the VERSIONS cell to send.
    pub fn initiator() -> (LinkHandshake, ChanCell) {
        (LinkHandshake::AwaitVersions, versions_cell())
    }

    /// Start as the responder.
    pub fn responder() -> LinkHandshake {
        LinkHandshake::AwaitInitiatorVersions
    }

    /// The negotiated version, once known.
    pub fn version(&self) -> Option<u16> {
        match self {
            LinkHandshake::AwaitVersions | LinkHandshake::AwaitInitiatorVersions => None,
            LinkHandshake::AwaitCerts { version }
            | LinkHandshake::AwaitNetinfo { version, .. }
            | LinkHandshake::AwaitInitiatorNetinfo { version } => Some(*version),
        }
    }

    /// Take one cell received during the handshake.
    pub fn handle_cell(
        &mut self,
        cell: ChanCell,
        ctx: &HandshakeContext<'_>,
    ) -> Result<HandshakeStep, HandshakeError> {
        let mut step = HandshakeStep::default();
        // Padding and AUTHORIZE may come at any point and mean nothing here.
        if matches!(cell.msg, ChanMsg::Vpadding(_) | ChanMsg::Unrecognized(_))
            && cell.msg.cmd() != crate::cells::channel::ChanCmd::VERSIONS
        {
            return Ok(step);
        }
        let unexpected = || HandshakeError::UnexpectedCell(cell.msg.cmd());
        match (&*self, &cell.msg) {
            (LinkHandshake::AwaitVersions, ChanMsg::Versions(v)) => {
                let version = negotiate(v)?;
                step.negotiated = Some(version);
                *self = LinkHandshake::AwaitCerts { version };
            }
            (LinkHandshake::AwaitCerts { version }, ChanMsg::Certs(certs)) => {
                let entries: Vec<(u8, &[u8])> = certs
                    .entries
                    .iter()
                    .map(|e| (e.cert_type.0, e.body.as_slice()))
                    .collect();
                let peer = validate_responder_certs(&entries, &ctx.binding.remote, ctx.unix_now)
                    .map_err(HandshakeError::BadCertificates)?;
                if ctx.expected_peer.is_some_and(|id| id != peer.rsa_id) {
                    return Err(HandshakeError::WrongIdentity);
                }
                *self = LinkHandshake::AwaitNetinfo {
                    version: *version,
                    peer,
                };
            }
            (LinkHandshake::AwaitNetinfo { .. }, ChanMsg::AuthChallenge(_)) => {}
            (LinkHandshake::AwaitNetinfo { version, peer }, ChanMsg::Netinfo(n)) => {
                step.send.push(ChanCell::new(None, our_netinfo(ctx)));
                step.opened = Some(LinkOpened {
                    version: *version,
                    peer: Some(peer.clone()),
                    clock_skew: skew(n, ctx.unix_now),
                });
            }
            (LinkHandshake::AwaitInitiatorVersions, ChanMsg::Versions(v)) => {
                let version = negotiate(v)?;
                step.negotiated = Some(version);
                step.send.push(versions_cell());
                if let Some(certs) = ctx.our_certs {
                    step.send
                        .push(ChanCell::new(None, ChanMsg::Certs(certs.clone())));
                }
                step.send.push(ChanCell::new(
                    None,
                    ChanMsg::AuthChallenge(AuthChallenge {
                        challenge: ctx.challenge,
                        methods: vec![AuthMethod::ED25519_SHA256_RFC5705],
                    }),
                ));
                step.send.push(ChanCell::new(None, our_netinfo(ctx)));
                *self = LinkHandshake::AwaitInitiatorNetinfo { version };
            }
            // An authenticating initiator's CERTS and AUTHENTICATE: accepted, not checked,
            // so the peer counts as unauthenticated (see the module docs).
            (LinkHandshake::AwaitInitiatorNetinfo { .. }, ChanMsg::Certs(_))
            | (LinkHandshake::AwaitInitiatorNetinfo { .. }, ChanMsg::Authenticate(_)) => {}
            (LinkHandshake::AwaitInitiatorNetinfo { version }, ChanMsg::Netinfo(n)) => {
                step.opened = Some(LinkOpened {
                    version: *version,
                    peer: None,
                    clock_skew: skew(n, ctx.unix_now),
                });
            }
            _ => return Err(unexpected()),
        }
        Ok(step)
    }
}

fn versions_cell() -> ChanCell {
    ChanCell::new(
        None,
        ChanMsg::Versions(Versions {
            versions: LINK_VERSIONS.to_vec(),
        }),
    )
}

fn negotiate(v: &Versions) -> Result<u16, HandshakeError> {
    v.best_shared(&LINK_VERSIONS)
        .ok_or(HandshakeError::NoCommonVersion)
}

fn our_netinfo(ctx: &HandshakeContext<'_>) -> ChanMsg {
    ChanMsg::Netinfo(Netinfo {
        // Seconds fit a u32 until 2106; saturate rather than wrap after.
        timestamp: u32::try_from(ctx.unix_now).unwrap_or(u32::MAX),
        other_addr: ctx.peer_addr,
        my_addrs: ctx.my_addrs.to_vec(),
    })
}

fn skew(n: &Netinfo, unix_now: u64) -> Option<i64> {
    (n.timestamp != 0).then(|| i64::from(n.timestamp) - i64::try_from(unix_now).unwrap_or(i64::MAX))
}

/// The CERTS cell a responder sends, from encoded certificates `(type, body)`.
pub fn certs_cell(entries: &[(u8, Vec<u8>)]) -> Certs {
    Certs {
        entries: entries
            .iter()
            .map(|(t, body)| CertEntry {
                cert_type: (*t).into(),
                body: body.clone(),
            })
            .collect(),
    }
}
