//! The client side of a directory fetch over HTTP/1.0 (dir-spec §6), sans I/O: build
//! the request bytes, then feed the response bytes in as they arrive, in any chunking.
//! The runtime sends them over a DirPort connection or a `BEGIN_DIR` stream.
//!
//! Only uncompressed responses are accepted: the request asks for none (no `.z`
//! suffix, no `Accept-Encoding`), and a response with another `Content-Encoding` is
//! refused rather than inflated.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// The largest response head (status line and headers) accepted.
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// The most headers accepted.
pub const MAX_HEADERS: usize = 64;

/// Builds `GET <path> HTTP/1.0` with a `Host` header.
pub fn build_request(host: &str, path: &str) -> Vec<u8> {
    let mut req = Vec::with_capacity(path.len() + host.len() + 32);
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.0\r\nHost: ");
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(b"\r\n\r\n");
    req
}

/// Why a response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The status line or a header is malformed.
    Malformed(&'static str),
    /// The head exceeds [`MAX_HEAD_LEN`] or [`MAX_HEADERS`].
    HeadTooLarge,
    /// The body exceeds the limit given to [`HttpResponseParser::new`].
    BodyTooLarge,
    /// The body is compressed or chunked (named encoding).
    UnsupportedEncoding(String),
    /// The connection closed before the head, or before `Content-Length` bytes.
    Truncated,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed HTTP response: {why}"),
            HttpError::HeadTooLarge => f.write_str("HTTP response head too large"),
            HttpError::BodyTooLarge => f.write_str("HTTP response body too large"),
            HttpError::UnsupportedEncoding(e) => write!(f, "unsupported HTTP encoding {e:?}"),
            HttpError::Truncated => f.write_str("HTTP response truncated"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HttpError {}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code (200 on success).
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The parsed head, once complete.
#[derive(Debug, Clone)]
struct Head {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    content_length: Option<usize>,
}

/// An incremental response parser: [`push`](Self::push) bytes as they arrive, then
/// [`finish`](Self::finish) at end of stream (or as soon as [`is_complete`](Self::is_complete)).
#[derive(Debug, Clone)]
pub struct HttpResponseParser {
    max_body: usize,
    buf: Vec<u8>,
    head: Option<Head>,
}

fn parse_head(text: &str) -> Result<Head, HttpError> {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(HttpError::Malformed("no status line"))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !(version == "HTTP/1.0" || version == "HTTP/1.1") {
        return Err(HttpError::Malformed("not HTTP/1.x"));
    }
    let code = parts.next().ok_or(HttpError::Malformed("no status code"))?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::Malformed("bad status code"));
    }
    let status = code
        .parse()
        .map_err(|_| HttpError::Malformed("bad status code"))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    let mut content_length = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::HeadTooLarge);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("header without colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("Content-Length") {
            let n = value
                .parse()
                .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::Malformed("conflicting Content-Length"));
            }
            content_length = Some(n);
        } else if (name.eq_ignore_ascii_case("Content-Encoding")
            || name.eq_ignore_ascii_case("Transfer-Encoding"))
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(HttpError::UnsupportedEncoding(value.to_string()));
        }
        headers.push((name.to_string(), value.to_string()));
    }
    Ok(Head {
        status,
        reason,
        headers,
        content_length,
    })
}

impl HttpResponseParser {
    /// A parser accepting bodies up to `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        HttpResponseParser {
            max_body,
            buf: Vec::new(),
            head: None,
        }
    }

    /// Feeds received bytes. Errors as soon as the response is known to be bad.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        self.buf.extend_from_slice(bytes);
        if self.head.is_none() {
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if self.buf.len() > MAX_HEAD_LEN {
                    return Err(HttpError::HeadTooLarge);
                }
                return Ok(());
            };
            if end > MAX_HEAD_LEN {
                return Err(HttpError::HeadTooLarge);
            }
            let text = core::str::from_utf8(self.buf.get(..end).unwrap_or_default())
                .map_err(|_| HttpError::Malformed("head not UTF-8"))?;
            let head = parse_head(text)?;
            if head.content_length.is_some_and(|n| n > self.max_body) {
                return Err(HttpError::BodyTooLarge);
            }
            self.buf.drain(..end + 4);
            self.head = Some(head);
        }
        let limit = self
            .head
            .as_ref()
            .and_then(|h| h.content_length)
            .unwrap_or(self.max_body);
        if self.buf.len() > limit {
            return Err(if limit == self.max_body {
                HttpError::BodyTooLarge
            } else {
                HttpError::Malformed("body longer than Content-Length")
            });
        }
        Ok(())
    }

    /// Whether the whole response is in: head parsed and `Content-Length` bytes
    /// received. Without a `Content-Length` the body ends only at end of stream.
    pub fn is_complete(&self) -> bool {
        self.head
            .as_ref()
            .and_then(|h| h.content_length)
            .is_some_and(|n| self.buf.len() == n)
    }

    /// The response, at end of stream (or once [`is_complete`](Self::is_complete)).
    pub fn finish(self) -> Result<HttpResponse, HttpError> {
        let head = self.head.ok_or(HttpError::Truncated)?;
        if head.content_length.is_some_and(|n| n != self.buf.len()) {
            return Err(HttpError::Truncated);
        }
        Ok(HttpResponse {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body: self.buf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        assert_eq!(
            build_request("127.0.0.1:7000", "/tor/keys/all"),
            b"GET /tor/keys/all HTTP/1.0\r\nHost: 127.0.0.1:7000\r\n\r\n"
        );
    }

    #[test]
    fn request_snapshot() {
        let req = build_request(
            "127.0.0.1:17150",
            "/tor/status-vote/current/consensus-microdesc",
        );
        insta::assert_snapshot!(hex::encode(req));
    }

    #[test]
    fn parses_in_any_chunking() {
        let resp = b"HTTP/1.0 200 OK\r\nDate: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
        for split in 0..resp.len() {
            let mut p = HttpResponseParser::new(100);
            p.push(&resp[..split]).unwrap();
            p.push(&resp[split..]).unwrap();
            assert!(p.is_complete());
            let r = p.finish().unwrap();
            assert_eq!(
                (r.status, r.reason.as_str(), &r.body[..]),
                (200, "OK", &b"hello"[..])
            );
            assert_eq!(r.header("content-type"), Some("text/plain"));
        }
    }

    #[test]
    fn body_until_close() {
        let mut p = HttpResponseParser::new(100);
        p.push(b"HTTP/1.0 404 Not found\r\n\r\npartial").unwrap();
        assert!(!p.is_complete());
        let r = p.finish().unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"partial"[..]));
    }

    #[test]
    fn refuses_bad_responses() {
        let err = |bytes: &[u8], max| {
            let mut p = HttpResponseParser::new(max);
            p.push(bytes)
                .and_then(|()| p.finish().map(|_| ()))
                .unwrap_err()
        };
        assert_eq!(
            err(b"HTTP/1.0 200 OK\r\nContent-Encoding: deflate\r\n\r\n", 10),
            HttpError::UnsupportedEncoding("deflate".into())
        );
        assert_eq!(
            err(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 10),
            HttpError::UnsupportedEncoding("chunked".into())
        );
        assert_eq!(
            err(b"HTTP/1.0 200 OK\r\n\r\n0123456789A", 10),
            HttpError::BodyTooLarge
        );
        assert_eq!(
            err(b"HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n", 10),
            HttpError::BodyTooLarge
        );
        assert_eq!(
            err(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nabc", 10),
            HttpError::Truncated
        );
        assert_eq!(err(b"HTTP/1.0 200 OK\r\n", 10), HttpError::Truncated);
        assert!(matches!(
            err(b"SPDY/1 200 OK\r\n\r\n", 10),
            HttpError::Malformed(_)
        ));
        assert!(matches!(
            err(b"HTTP/1.0 2000 OK\r\n\r\n", 10),
            HttpError::Malformed(_)
        ));
    }

    #[test]
    fn never_panics() {
        bolero::check!().for_each(|input: &[u8]| {
            let mut p = HttpResponseParser::new(1024);
            let (a, b) = input.split_at(input.len() / 2);
            if p.push(a).is_ok() && p.push(b).is_ok() {
                let _ = p.finish();
            }
        });
    }
}
