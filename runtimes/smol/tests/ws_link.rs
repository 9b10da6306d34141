//! Browser links over WebSocket, natively: a core node (a client, as the browser peer is)
//! links to a bridge over a WebSocket — on the bridge's WebSocket port and on its OR port —
//! checks the nonce binding, and builds a CREATE_FAST circuit; a wrong binding is
//! refused; the bridge serves `/node.json` and the page's files over HTTP.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::protocol::Role as WsRole;
use onionpeer_core::Instant;
use onionpeer_core::node::Node;
use onionpeer_core::node::api::{
    Event, FirstHop, Input, LinkBinding, LinkCloseReason, Output, RelayTarget,
};
use onionpeer_core::node::config::{NodeConfig, Role};
use onionpeer_smol::driver::{NodeHandle, spawn_peer};
use onionpeer_smol::ws::{Site, Web, WsIo, ws_binding};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

async fn bridge(site: Site) -> (NodeHandle, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws = l.local_addr().unwrap();
    let web = Web {
        listeners: vec![l],
        on_or_port: true,
        site,
    };
    let node = spawn_peer("127.0.0.1:0".parse().unwrap(), true, Some(web))
        .await
        .unwrap();
    (node, ws)
}

/// Read an HTTP response head (and, with `body`, the rest until close).
async fn read_response(tcp: &mut TcpStream, body: bool) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if tcp.read(&mut b).await.unwrap() == 0 {
            break;
        }
        out.push(b[0]);
        if !body && out.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_response(&mut tcp, true).await
}

/// Open a WebSocket link to `addr` with `nonce` in its URL.
async fn ws_connect(addr: SocketAddr, nonce: &[u8; 32]) -> WsIo<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /link?b={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        hex::encode(nonce)
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let head = read_response(&mut tcp, false).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    WsIo::new(WebSocketStream::from_raw_socket(tcp, WsRole::Client, None).await)
}

/// A client node linking to `target` over a WebSocket at `dial`, building a one-hop
/// CREATE_FAST circuit; `lie` corrupts the binding it checks. Returns the events seen.
async fn link_and_build(target: RelayTarget, dial: SocketAddr, lie: bool) -> Vec<Event> {
    let start = std::time::Instant::now();
    let now = || Instant::from_nanos(start.elapsed().as_nanos() as u64);
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut node = Node::new(NodeConfig::new([9; 32], Role::CLIENT, unix), now()).unwrap();
    node.build_circuit(now(), vec![target], FirstHop::Fast)
        .unwrap();
    let nonce = [0x5a; 32];
    let mut io = None;
    let mut conn_id = None;
    let mut events = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        loop {
            match node.poll_output() {
                Output::Connect { conn, .. } => {
                    io = Some(ws_connect(dial, &nonce).await);
                    conn_id = Some(conn);
                    let mut remote = ws_binding(&nonce);
                    if lie {
                        remote[0] ^= 1;
                    }
                    node.handle_input(Input::Connected {
                        now: now(),
                        conn,
                        binding: LinkBinding {
                            local: [0; 32],
                            remote,
                        },
                    });
                }
                Output::Transmit(conn) => {
                    let n = node.poll_transmit(conn, &mut buf);
                    let w = io.as_mut().unwrap();
                    w.write_all(&buf[..n]).await.unwrap();
                    w.flush().await.unwrap();
                }
                Output::Close(_) => return events,
                Output::Event(e) => {
                    let done = matches!(e, Event::CircuitBuilt(_) | Event::LinkDown { .. });
                    events.push(e);
                    if done {
                        return events;
                    }
                }
                Output::Timeout(..) => break,
            }
        }
        let Some(r) = io.as_mut() else { continue };
        let read = async { Some(r.read(&mut buf).await) }
            .or(async {
                smol::Timer::after(Duration::from_millis(50)).await;
                None
            })
            .await;
        match read {
            Some(Ok(0)) | Some(Err(_)) => {
                node.handle_input(Input::Closed {
                    now: now(),
                    conn: conn_id.unwrap(),
                    error: false,
                });
            }
            Some(Ok(n)) => node.handle_input(Input::Data {
                now: now(),
                conn: conn_id.unwrap(),
                data: &buf[..n],
            }),
            None => node.handle_input(Input::Timeout(now())),
        }
    }
    events
}

#[test]
fn browser_style_link_over_websocket_builds_a_circuit() {
    smol::block_on(async {
        let (bridge, ws) = bridge(Site::default()).await;
        let target = bridge.relay_target().unwrap().clone();
        // On the WebSocket port, and on the OR port (told apart from TLS by the first byte).
        for dial in [ws, target.addr] {
            let events = link_and_build(target.clone(), dial, false).await;
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::LinkUp { peer: Some(p), .. } if *p == target.id)),
                "{events:?}"
            );
            assert!(
                matches!(events.last(), Some(Event::CircuitBuilt(_))),
                "{events:?}"
            );
        }
    });
}

#[test]
fn websocket_link_with_a_wrong_binding_is_refused() {
    smol::block_on(async {
        let (bridge, ws) = bridge(Site::default()).await;
        let target = bridge.relay_target().unwrap().clone();
        let events = link_and_build(target, ws, true).await;
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::LinkDown {
                    reason: LinkCloseReason::BadCertificates,
                    ..
                }
            )),
            "{events:?}"
        );
        assert!(!events.iter().any(|e| matches!(e, Event::CircuitBuilt(_))));
    });
}

#[test]
fn bridge_serves_node_json_and_the_page() {
    smol::block_on(async {
        let dir = std::env::temp_dir().join(format!("onionpeer-ws-site-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), b"<p>page</p>").unwrap();
        std::fs::write(dir.join("x.wasm"), b"\0asm").unwrap();
        let (bridge, ws) = bridge(Site::from_dir(&dir)).await;
        let id = hex::encode(bridge.relay_target().unwrap().id.0);
        let json = http_get(ws, "/node.json").await;
        assert!(json.starts_with("HTTP/1.1 200"), "{json}");
        assert!(json.contains(&format!("\"id\":\"{id}\"")), "{json}");
        assert!(json.contains("\"bridge\":true"), "{json}");
        let page = http_get(ws, "/").await;
        assert!(page.ends_with("<p>page</p>"), "{page}");
        let wasm = http_get(ws, "/x.wasm").await;
        assert!(wasm.contains("Content-Type: application/wasm"), "{wasm}");
        assert!(http_get(ws, "/nope").await.starts_with("HTTP/1.1 404"));
        // The OR port answers HTTP too.
        let or = bridge.relay_target().unwrap().addr;
        assert!(http_get(or, "/node.json").await.contains(&id));
    });
}
