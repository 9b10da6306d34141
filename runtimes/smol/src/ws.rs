//! Browser links over WebSocket, and the small HTTP server that hands browsers the page.
//!
//! A browser cannot open TCP or TLS connections, only WebSockets (and WebRTC). A node
//! with a [`Web`] config accepts, on a plain TCP listener of its own (the bridge's
//! `--ws`/`--http`) or on its OR port (told apart from TLS by the first byte: a TLS
//! ClientHello starts with 0x16, an HTTP request with a letter):
//!
//! - `GET /link?b=<64 hex digits>` with `Upgrade: websocket`: a link. Every binary
//!   message carries a piece of the cell byte stream, in order, in any chunking (as TCP
//!   bytes do); text messages are a protocol error, pings are answered and ignored.
//! - any other `GET`: a file of the site directory, or a document the node generated
//!   (`/node.json`: how to reach and authenticate it).
//! - `POST /offer` (a node that also takes WebRTC links, [`Site::offers`]): the body is a
//!   WebRTC offer SDP, the answer SDP comes back (CORS allowed, so a page served by
//!   another node may signal here). The data channel then opens on the node's UDP socket.
//!
//! Link binding (PROTOCOL.md, "WebSocket links"): a `ws://` link has no certificate, so
//! both ends derive the binding from a 32-byte nonce the initiator puts in the URL:
//! `SHA-256("onionpeer websocket link binding v1\0" || nonce)`. The responder certifies
//! it in its CERTS type-5 certificate; the initiator checks it, which proves the
//! responder's identity over this connection. The prefix keeps the value from ever
//! equalling a TLS certificate digest (a DER certificate starts with 0x30), so a CERTS
//! cell obtained over a WebSocket cannot be replayed on a TLS link.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::protocol::{Message, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Bytes, Error as WsError};
use futures_sink::Sink;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::stream::Stream;

use crate::tls::LinkBinding;

/// The path of WebSocket links.
pub const LINK_PATH: &str = "/link";
/// Domain separation of the WebSocket link binding.
pub const BINDING_PREFIX: &[u8] = b"onionpeer websocket link binding v1\0";
/// Longest HTTP request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Largest WebSocket message accepted (a browser driver sends at most what the core
/// queued, a few cells to a few hundred KiB).
const MAX_MESSAGE: usize = 4 << 20;
/// The GUID of RFC 6455's Sec-WebSocket-Accept.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The binding both ends of a WebSocket link derive from the initiator's nonce.
pub fn ws_binding(nonce: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    Digest::update(&mut h, BINDING_PREFIX);
    Digest::update(&mut h, nonce);
    h.finalize().into()
}

/// What a node serves over HTTP: files from a directory and documents of its own.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// Files served by path (`/` is `/index.html`); `None`: only `docs`.
    pub dir: Option<PathBuf>,
    /// Generated documents by path, with their content type; they win over `dir`.
    pub docs: BTreeMap<String, (String, Vec<u8>)>,
    /// Who answers WebRTC offers POSTed to `/offer`; `None`: no WebRTC links.
    pub offers: Option<OfferHandler>,
}

/// A boxed future of a WebRTC answer SDP.
pub type AnswerFuture = Pin<Box<dyn std::future::Future<Output = io::Result<String>> + Send>>;

/// Answers a WebRTC offer SDP with an answer SDP (the WebRTC runtime's endpoint).
#[derive(Clone)]
pub struct OfferHandler(pub std::sync::Arc<dyn Fn(String) -> AnswerFuture + Send + Sync>);

impl std::fmt::Debug for OfferHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfferHandler")
    }
}

/// The path WebRTC offers are POSTed to.
pub const OFFER_PATH: &str = "/offer";
/// Largest offer SDP accepted.
const MAX_OFFER: usize = 16 * 1024;

impl Site {
    /// A site serving the files of `dir`.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Site {
        Site {
            dir: Some(dir.into()),
            docs: BTreeMap::new(),
            offers: None,
        }
    }

    /// The body and content type of `path`, if there is one.
    pub fn get(&self, path: &str) -> Option<(String, Vec<u8>)> {
        let path = if path == "/" { "/index.html" } else { path };
        if let Some(d) = self.docs.get(path) {
            return Some(d.clone());
        }
        let dir = self.dir.as_ref()?;
        let rel = Path::new(path.trim_start_matches('/'));
        // Only plain names below the directory: no `..`, no absolute paths.
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        let body = std::fs::read(dir.join(rel)).ok()?;
        Some((content_type(path).to_owned(), body))
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// WebSocket links and HTTP on a node (see the module docs).
#[derive(Debug, Default)]
pub struct Web {
    /// Plain TCP listeners for WebSocket links and HTTP (the bridge's `--ws`, `--http`).
    pub listeners: Vec<TcpListener>,
    /// Also accept WebSocket links and HTTP on the OR port.
    pub on_or_port: bool,
    /// What HTTP GETs are answered with.
    pub site: Site,
}

/// A parsed HTTP request head (only what we use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method (`GET`).
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (after `?`), possibly empty.
    pub query: String,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Parse a request head (up to and excluding the blank line).
    pub fn parse(head: &str) -> Option<RequestHead> {
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let method = first.next()?.to_owned();
        let target = first.next()?;
        if !first.next()?.starts_with("HTTP/1.") {
            return None;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Some(RequestHead {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
        })
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    fn is_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    }
}

/// A WebSocket link's byte stream: binary messages in, binary messages out.
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
}

impl<S> WsIo<S> {
    /// Wrap an open WebSocket.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsIo {
            ws,
            pending: Bytes::new(),
        }
    }
}

fn ws_err(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if !self.pending.is_empty() {
                let n = buf.len().min(self.pending.len());
                let chunk = self.pending.split_to(n);
                buf[..n].copy_from_slice(&chunk);
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) | Poll::Ready(Some(Ok(Message::Close(_)))) => {
                    return Poll::Ready(Ok(0));
                }
                Poll::Ready(Some(Ok(Message::Binary(b)))) => self.pending = b,
                Poll::Ready(Some(Ok(Message::Text(_)))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message on a link",
                    )));
                }
                // Pings are answered by tungstenite itself.
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(ws_err(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.ws).poll_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(ws_err(e))),
            Poll::Ready(Ok(())) => {}
        }
        let msg = Message::Binary(Bytes::copy_from_slice(buf));
        Poll::Ready(
            Pin::new(&mut self.ws)
                .start_send(msg)
                .map(|()| buf.len())
                .map_err(ws_err),
        )
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_err)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(ws_err)
    }
}

/// What an accepted HTTP connection turned out to be.
pub enum Accepted {
    /// A WebSocket link, with the binding the responder certifies.
    Link(Box<WsIo<TcpStream>>, LinkBinding),
    /// A plain request, answered and closed.
    Served,
}

/// Read the request head, then either serve a file or upgrade to a WebSocket link.
pub async fn accept(mut tcp: TcpStream, site: &Site) -> io::Result<Accepted> {
    let head = read_head(&mut tcp).await?;
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    let req = RequestHead::parse(&head).ok_or_else(|| bad("malformed HTTP request"))?;
    if req.path == OFFER_PATH && (req.method == "POST" || req.method == "OPTIONS") {
        answer_offer(&mut tcp, &req, site.offers.as_ref()).await?;
        return Ok(Accepted::Served);
    }
    if req.method != "GET" {
        respond(
            &mut tcp,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        )
        .await?;
        return Ok(Accepted::Served);
    }
    if !req.is_upgrade() {
        match site.get(&req.path) {
            Some((ctype, body)) => respond(&mut tcp, "200 OK", &ctype, &body).await?,
            None => respond(&mut tcp, "404 Not Found", "text/plain", b"not found\n").await?,
        }
        return Ok(Accepted::Served);
    }
    let nonce = req
        .param("b")
        .and_then(hex32)
        .filter(|_| req.path == LINK_PATH);
    let (Some(nonce), Some(key)) = (nonce, req.header("sec-websocket-key")) else {
        respond(
            &mut tcp,
            "400 Bad Request",
            "text/plain",
            b"a link is GET /link?b=<64 hex digits>\n",
        )
        .await?;
        return Ok(Accepted::Served);
    };
    let accept_key = accept_key(key);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept_key}\r\n\r\n"
    );
    tcp.write_all(response.as_bytes()).await?;
    tcp.flush().await?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = WebSocketStream::from_raw_socket(tcp, Role::Server, Some(config)).await;
    let binding = LinkBinding {
        local: ws_binding(&nonce),
        // The browser presents no certificate (as a Tor client).
        remote: [0; 32],
    };
    Ok(Accepted::Link(Box::new(WsIo::new(ws)), binding))
}

/// `POST /offer`: read the offer SDP, answer it; `OPTIONS`: the CORS preflight.
async fn answer_offer(
    tcp: &mut TcpStream,
    req: &RequestHead,
    offers: Option<&OfferHandler>,
) -> io::Result<()> {
    const CORS: &str = "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: POST, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type\r\n";
    let reply = async |tcp: &mut TcpStream, status: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\n{CORS}Connection: close\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body).await?;
        tcp.flush().await?;
        let _ = tcp.shutdown(std::net::Shutdown::Write);
        io::Result::Ok(())
    };
    if req.method == "OPTIONS" {
        return reply(tcp, "204 No Content", b"").await;
    }
    let Some(offers) = offers else {
        return reply(tcp, "404 Not Found", b"no WebRTC links here\n").await;
    };
    let len = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n <= MAX_OFFER);
    let Some(len) = len else {
        return reply(
            tcp,
            "400 Bad Request",
            b"an offer needs a Content-Length of at most 16 KiB\n",
        )
        .await;
    };
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await?;
    let Ok(offer) = String::from_utf8(body) else {
        return reply(tcp, "400 Bad Request", b"offer is not UTF-8\n").await;
    };
    match (offers.0)(offer).await {
        Ok(answer) => reply(tcp, "200 OK", answer.as_bytes()).await,
        Err(e) => {
            tracing::info!(error = %e, "WebRTC offer refused");
            reply(tcp, "400 Bad Request", format!("{e}\n").as_bytes()).await
        }
    }
}

/// RFC 6455's Sec-WebSocket-Accept for a Sec-WebSocket-Key.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    Digest::update(&mut h, key.trim().as_bytes());
    Digest::update(&mut h, WS_GUID.as_bytes());
    let mut s = onionpeer_core::dir::base64_encode_unpadded(&h.finalize());
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    s
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Read up to the blank line that ends a request head. A client must wait for our answer
/// before sending more, so nothing past the head is lost.
async fn read_head(tcp: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    loop {
        // Peek, then consume only up to the end of the head.
        let n = tcp.peek(&mut byte).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let start = head.len();
        head.extend_from_slice(&byte[..n]);
        if let Some(end) = find_end(&head) {
            head.truncate(end);
            let mut sink = vec![0u8; end + 4 - start];
            tcp.read_exact(&mut sink).await?;
            return String::from_utf8(head)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "non-UTF-8 head"));
        }
        let mut sink = vec![0u8; n];
        tcp.read_exact(&mut sink).await?;
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

async fn respond(tcp: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body).await?;
    tcp.flush().await?;
    // Let the client read the response before the socket goes away.
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// The first byte of a connection on an OR port: `true` for an HTTP request (a letter),
/// `false` for anything else (a TLS ClientHello starts with 0x16).
pub async fn looks_like_http(tcp: &TcpStream) -> io::Result<bool> {
    let mut b = [0u8; 1];
    let n = tcp.peek(&mut b).await?;
    Ok(n == 1 && b[0].is_ascii_uppercase())
}

/// A connection accepted on one of [`Web::listeners`].
pub async fn accept_tcp(l: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (tcp, peer) = l.accept().await?;
    tcp.set_nodelay(true)?;
    Ok((tcp, peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc6455() {
        // RFC 6455 §1.3's example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn request_head_parses() {
        let r = RequestHead::parse(
            "GET /link?b=00&x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key: k",
        )
        .unwrap();
        assert_eq!(r.path, "/link");
        assert_eq!(r.param("b"), Some("00"));
        assert_eq!(r.header("sec-websocket-key"), Some("k"));
        assert!(r.is_upgrade());
        assert!(RequestHead::parse("GET\r\n").is_none());
    }

    /// The same known answer as onionpeer-wasm's tests: both ends must agree.
    #[test]
    fn binding_known_answer() {
        assert_eq!(
            hex::encode(ws_binding(&[0; 32])),
            "8fefdd252a600332ea557de065a87898e598a7430622f8d941445ea763d4ee37"
        );
    }

    #[test]
    fn binding_is_domain_separated() {
        let b = ws_binding(&[7; 32]);
        assert_ne!(b, ws_binding(&[8; 32]));
        let mut h = Sha256::new();
        Digest::update(&mut h, [7u8; 32]);
        assert_ne!(b, <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn site_refuses_paths_outside_its_dir() {
        let dir = std::env::temp_dir().join(format!("onionpeer-site-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), b"hi").unwrap();
        let site = Site::from_dir(&dir);
        assert_eq!(site.get("/").unwrap().1, b"hi");
        assert!(site.get("/../etc/passwd").is_none());
        assert!(site.get("/nope.js").is_none());
    }
}
