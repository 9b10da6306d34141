//! Signalling: how an offer reaches the peer and its answer comes back.
//!
//! A link's initiator makes the SDP offer (one data channel, its host candidate, no
//! trickle) and hands it to a [`Signaller`] with the peer's address; the answer comes
//! back whole. [`HttpSignaller`] does it with one HTTP POST to the peer's signalling
//! endpoint, which [`serve_signalling`] runs:
//!
//! ```text
//! POST /offer HTTP/1.1            HTTP/1.1 200 OK
//! Content-Type: application/sdp   Content-Type: application/sdp
//! Content-Length: N           ─▶  Content-Length: M
//!                                 Access-Control-Allow-Origin: *
//! <offer SDP>                     <answer SDP>
//! ```
//!
//! The same endpoint serves browsers (CORS allowed; `OPTIONS` answered). A node's WebRTC
//! address is the TCP address of this endpoint; its UDP socket uses the same port.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use smol::future::FutureExt as _;

pub use onionpeer_smol::driver::DialTarget;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

/// Largest SDP accepted (an offer with one data channel is about 600 bytes).
pub const MAX_SDP: usize = 16 * 1024;
/// How long one exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// A boxed future of an SDP answer.
pub type AnswerFuture = Pin<Box<dyn Future<Output = io::Result<String>> + Send>>;

/// Carries an offer to the peer being dialled and returns its answer.
pub trait Signaller: Send + Sync {
    /// Send `offer` (SDP) to `to`'s node (at `to.addr`, proving `to.peer`, introduced by
    /// `to.introducer`); resolve to its answer (SDP).
    fn exchange(&self, to: &DialTarget, offer: String) -> AnswerFuture;

    /// Links to `addr` are WebRTC through this signaller whatever the dial policy says
    /// (a peer introduced through the network).
    fn routes(&self, _addr: &SocketAddr) -> bool {
        false
    }

    /// The node this signaller works for, once it runs (signalling through the network
    /// needs it).
    fn attach(&self, _node: onionpeer_smol::driver::WeakNodeHandle) {}
}

/// Signalling by one HTTP POST to the peer's signalling endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpSignaller;

impl Signaller for HttpSignaller {
    fn exchange(&self, to: &DialTarget, offer: String) -> AnswerFuture {
        Box::pin(post_offer(to.addr, offer))
    }
}

/// POST `offer` to `http://addr/offer`; the answer SDP.
pub async fn post_offer(addr: SocketAddr, offer: String) -> io::Result<String> {
    async {
        let mut s = TcpStream::connect(addr).await?;
        let req = format!(
            "POST /offer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            offer.len()
        );
        s.write_all(req.as_bytes()).await?;
        s.write_all(offer.as_bytes()).await?;
        s.flush().await?;
        let (head, body) = read_message(&mut s, false).await?;
        let status = head.lines().next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(io::Error::other(format!("signalling refused: {status}")));
        }
        String::from_utf8(body).map_err(|_| io::Error::other("answer is not UTF-8"))
    }
    .or(async {
        smol::Timer::after(EXCHANGE_TIMEOUT).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "signalling timed out",
        ))
    })
    .await
}

/// Read one HTTP message: the head (request or status line and headers) and the body
/// (by Content-Length; without one, a request has none and a response runs to the end).
async fn read_message(s: &mut TcpStream, request: bool) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_SDP {
            return Err(io::Error::other("HTTP head too large"));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf.split_off(head_end + 4);
    let len = head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    match len {
        Some(n) if n > MAX_SDP => return Err(io::Error::other("HTTP body too large")),
        Some(n) => {
            while body.len() < n {
                let r = s.read(&mut chunk).await?;
                if r == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                body.extend_from_slice(&chunk[..r]);
            }
            body.truncate(n);
        }
        None if request => body.clear(),
        None => loop {
            let r = s.read(&mut chunk).await?;
            if r == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..r]);
            if body.len() > MAX_SDP {
                return Err(io::Error::other("HTTP body too large"));
            }
        },
    }
    Ok((head, body))
}

/// Something that answers offers: a running node ([`crate::NodeHandle`]) or a test stub.
pub trait Answerer: Clone + Send + Sync + 'static {
    /// Answer `offer` (SDP) with an answer (SDP), creating the peer connection.
    fn answer(&self, offer: String) -> impl Future<Output = io::Result<String>> + Send;
}

/// Serve the signalling endpoint on `listener`: every `POST` carries an offer and gets
/// the answer from `answerer`; `OPTIONS` gets the CORS preflight reply.
pub async fn serve_signalling<A: Answerer>(listener: TcpListener, answerer: A) {
    loop {
        let (mut s, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "signalling accept failed");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let answerer = answerer.clone();
        smol::spawn(async move {
            let served = async {
                let (head, body) = read_message(&mut s, true).await?;
                let method = head.split_whitespace().next().unwrap_or_default();
                let (status, body) = match method {
                    "POST" => match String::from_utf8(body) {
                        Ok(offer) => match answerer.answer(offer).await {
                            Ok(answer) => ("200 OK", answer),
                            Err(e) => {
                                tracing::info!(%peer, error = %e, "offer refused");
                                ("400 Bad Request", format!("{e}\n"))
                            }
                        },
                        Err(_) => ("400 Bad Request", "offer is not UTF-8\n".into()),
                    },
                    "OPTIONS" => ("204 No Content", String::new()),
                    _ => ("405 Method Not Allowed", String::new()),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/sdp\r\n\
                     Content-Length: {}\r\nAccess-Control-Allow-Origin: *\r\n\
                     Access-Control-Allow-Methods: POST, OPTIONS\r\n\
                     Access-Control-Allow-Headers: Content-Type\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await?;
                s.flush().await?;
                io::Result::Ok(())
            }
            .or(async {
                smol::Timer::after(EXCHANGE_TIMEOUT).await;
                Err(io::ErrorKind::TimedOut.into())
            })
            .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "signalling request failed");
            }
        })
        .detach();
    }
}
