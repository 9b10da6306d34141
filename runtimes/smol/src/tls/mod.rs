//! Tor links over TLS (tor-spec "Connections"): an initiator and a responder.
//!
//! Both ends speak TLS 1.2 and 1.3 and accept any peer certificate (see [`verify`]); what
//! they hand to the link handshake is a [`LinkBinding`]: the SHA-256 of each end's TLS
//! certificate, which the CERTS and AUTHENTICATE cells must match.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use onionpeer_smol::tls::{LinkCert, TlsConnector, TlsListener, TlsResponder};
//! let listener = TlsListener::bind(
//!     "127.0.0.1:0".parse().unwrap(),
//!     TlsResponder::new(LinkCert::generate()?)?,
//! )
//! .await?;
//! let addr = listener.local_addr()?;
//! let (_stream, binding) = TlsConnector::new()?.connect(addr).await?;
//! assert_eq!(binding.remote, listener.responder().cert_digest());
//! # Ok(())
//! # }
//! ```

mod cert;
mod verify;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_rustls::{TlsAcceptor, TlsConnector as RustlsConnector};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, CommonState, ServerConfig};
use sha2::{Digest, Sha256};
use smol::net::{TcpListener, TcpStream};

pub use cert::LinkCert;
use verify::AnyCertVerifier;

/// A TLS link over TCP, from either end.
pub type TlsStream = futures_rustls::TlsStream<TcpStream>;

/// The TLS certificates of a link, by digest: SHA-256 of each end's certificate DER, or
/// all zeros for an end that presented none (a client). The core's type, so a binding
/// goes straight into `Input::Connected` or `Node::accept_link`.
pub use onionpeer_core::node::api::LinkBinding;

/// SHA-256 of a DER-encoded certificate.
pub fn cert_digest(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// The TLS versions of a Tor link: tor relays speak 1.3 and still accept 1.2.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The opening side of a link: connects to a relay's ORPort and completes TLS.
#[derive(Clone)]
pub struct TlsConnector {
    connector: RustlsConnector,
    local: [u8; 32],
}

impl TlsConnector {
    /// An initiator without a client certificate, as a tor client connects.
    pub fn new() -> io::Result<Self> {
        Self::build(None)
    }

    /// An initiator presenting `cert`, as a relay connecting to another relay does (its
    /// AUTHENTICATE cell then covers the certificate's digest).
    pub fn with_client_cert(cert: &LinkCert) -> io::Result<Self> {
        Self::build(Some(cert))
    }

    fn build(cert: Option<&LinkCert>) -> io::Result<Self> {
        let provider = provider();
        let verifier = AnyCertVerifier::new(provider.signature_verification_algorithms);
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let (config, local) = match cert {
            Some(cert) => {
                let (chain, key) = cert.rustls_parts();
                let config = builder
                    .with_client_auth_cert(chain, key)
                    .map_err(io::Error::other)?;
                (config, cert.digest())
            }
            None => (builder.with_no_client_auth(), [0; 32]),
        };
        Ok(TlsConnector {
            connector: RustlsConnector::from(Arc::new(config)),
            local,
        })
    }

    /// Connect to `addr` and complete the TLS handshake.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<(TlsStream, LinkBinding)> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        self.handshake(tcp).await
    }

    /// Complete the TLS handshake on an open TCP connection.
    ///
    /// The server name sent is a random `www.<random>.com`, as tor sends: relays have no
    /// real name, and a fixed one would mark the connection.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<(TlsStream, LinkBinding)> {
        let name = ServerName::try_from(random_hostname(".com")?).map_err(io::Error::other)?;
        let stream = self.connector.connect(name, tcp).await?;
        let remote = peer_digest(stream.get_ref().1)?;
        tracing::debug!(remote = %short(&remote), "tls link open (initiator)");
        let binding = LinkBinding {
            local: self.local,
            remote,
        };
        Ok((TlsStream::Client(stream), binding))
    }
}

/// The accepting side of a link: completes TLS on accepted connections with our
/// certificate. Cheap to clone, so each connection's handshake can run in its own task.
#[derive(Clone)]
pub struct TlsResponder {
    acceptor: TlsAcceptor,
    local: [u8; 32],
}

impl TlsResponder {
    /// A responder presenting `cert`. It asks for, but does not require, a client
    /// certificate, as tor relays do.
    pub fn new(cert: LinkCert) -> io::Result<Self> {
        let provider = provider();
        let verifier = AnyCertVerifier::new(provider.signature_verification_algorithms);
        let (chain, key) = cert.rustls_parts();
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)
            .map_err(io::Error::other)?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(chain, key)
            .map_err(io::Error::other)?;
        Ok(TlsResponder {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            local: cert.digest(),
        })
    }

    /// SHA-256 of our certificate: the `local` half of every binding we produce.
    pub fn cert_digest(&self) -> [u8; 32] {
        self.local
    }

    /// Complete the TLS handshake on an accepted TCP connection. `remote` is the
    /// client's certificate digest, or zeros if it sent none.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<(TlsStream, LinkBinding)> {
        let stream = self.acceptor.accept(tcp).await?;
        let remote = peer_digest(stream.get_ref().1).unwrap_or([0; 32]);
        tracing::debug!(remote = %short(&remote), "tls link open (responder)");
        let binding = LinkBinding {
            local: self.local,
            remote,
        };
        Ok((TlsStream::Server(stream), binding))
    }
}

/// A TCP listener whose connections are completed by a [`TlsResponder`].
pub struct TlsListener {
    tcp: TcpListener,
    responder: TlsResponder,
}

impl TlsListener {
    /// Listen on `addr` (port 0 picks a free port; see [`TlsListener::local_addr`]).
    pub async fn bind(addr: SocketAddr, responder: TlsResponder) -> io::Result<Self> {
        Ok(TlsListener {
            tcp: TcpListener::bind(addr).await?,
            responder,
        })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The responder completing connections.
    pub fn responder(&self) -> &TlsResponder {
        &self.responder
    }

    /// Accept the next TCP connection, without TLS yet: finish it with
    /// [`TlsResponder::accept`], in a separate task so a slow client does not hold up
    /// the listener.
    pub async fn accept_tcp(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (tcp, peer) = self.tcp.accept().await?;
        tcp.set_nodelay(true)?;
        Ok((tcp, peer))
    }

    /// Accept the next connection and complete its TLS handshake, one at a time.
    pub async fn accept(&self) -> io::Result<(TlsStream, SocketAddr, LinkBinding)> {
        let (tcp, peer) = self.accept_tcp().await?;
        let (stream, binding) = self.responder.accept(tcp).await?;
        Ok((stream, peer, binding))
    }
}

/// SHA-256 of the peer's end-entity certificate; an error if it sent none.
fn peer_digest(conn: &CommonState) -> io::Result<[u8; 32]> {
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c: &CertificateDer<'_>| cert_digest(c))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "peer sent no certificate"))
}

/// `www.` + 4 to 25 random base32 letters + `suffix`: the shape of tor's fake names
/// (server names and certificate names).
fn random_hostname(suffix: &str) -> io::Result<String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 26];
    provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| io::Error::other("no system randomness"))?;
    let [len_byte, letters @ ..] = bytes;
    let len = 4 + usize::from(len_byte) % 22;
    let middle: String = letters
        .iter()
        .take(len)
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    Ok(format!("www.{middle}{suffix}"))
}

/// The first bytes of a digest, for logs.
fn short(d: &[u8; 32]) -> String {
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
