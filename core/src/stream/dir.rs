//! The node's own directory function behind BEGIN_DIR: a minimal HTTP/1.0 server over a
//! stream, answering GETs for the documents in the node's config.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Largest request accepted (tor's directory requests are a few hundred bytes).
pub const MAX_REQUEST: usize = 8 * 1024;

/// An HTTP request being received on a directory stream.
#[derive(Debug, Default)]
pub struct DirRequest {
    buf: Vec<u8>,
    answered: bool,
}

/// What a directory stream should do after more request bytes arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum DirStep {
    /// Wait for more bytes.
    NeedMore,
    /// Send this response, then close the stream.
    Respond(Vec<u8>),
    /// The request is malformed or too large: close the stream.
    Reject,
}

impl DirRequest {
    /// Take request bytes; answer once the header is complete.
    pub fn push(&mut self, bytes: &[u8], documents: &BTreeMap<String, Vec<u8>>) -> DirStep {
        if self.answered {
            // Bytes after the request (a pipelined second request) are ignored: HTTP/1.0
            // closes after one response.
            return DirStep::NeedMore;
        }
        if self.buf.len() + bytes.len() > MAX_REQUEST {
            return DirStep::Reject;
        }
        self.buf.extend_from_slice(bytes);
        let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return DirStep::NeedMore;
        };
        self.answered = true;
        let head = &self.buf[..end];
        let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        let mut parts = line.split(|&b| b == b' ');
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            return DirStep::Reject;
        };
        if method != b"GET" {
            return DirStep::Respond(response(405, "Method Not Allowed", b""));
        }
        let path = core::str::from_utf8(path).unwrap_or("");
        // Tor clients may ask for a compressed variant by suffix; we serve only identity.
        match documents.get(path) {
            Some(doc) => DirStep::Respond(response(200, "OK", doc)),
            None => DirStep::Respond(response(404, "Not found", b"")),
        }
    }
}

fn response(code: u16, reason: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 96);
    out.extend_from_slice(
        alloc::format!(
            "HTTP/1.0 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_known_documents() {
        let mut docs = BTreeMap::new();
        docs.insert(String::from("/tor/doc"), b"hello".to_vec());
        let mut r = DirRequest::default();
        assert_eq!(
            r.push(b"GET /tor/doc HTTP/1.0\r\n", &docs),
            DirStep::NeedMore
        );
        let DirStep::Respond(resp) = r.push(b"Host: x\r\n\r\n", &docs) else {
            panic!()
        };
        assert!(resp.starts_with(b"HTTP/1.0 200 OK\r\n"));
        assert!(resp.ends_with(b"\r\n\r\nhello"));
        let mut r = DirRequest::default();
        let DirStep::Respond(resp) = r.push(b"GET /nope HTTP/1.0\r\n\r\n", &docs) else {
            panic!()
        };
        assert!(resp.starts_with(b"HTTP/1.0 404"));
    }

    #[test]
    fn oversized_requests_are_rejected() {
        let docs = BTreeMap::new();
        let mut r = DirRequest::default();
        assert_eq!(r.push(&[b'a'; MAX_REQUEST + 1], &docs), DirStep::Reject);
    }
}
