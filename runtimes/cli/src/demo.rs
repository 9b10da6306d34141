//! `onionpeer demo`: a whole onionpeer network in one process on 127.0.0.1 — relays (the
//! last an exit), a small HTTP server, and an onion proxy with a SOCKS port — and a file
//! fetched through a 3-hop circuit over SOCKS5, checked with SHA-256.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use onionpeer_core::node::api::Event;
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_smol::driver::{NodeHandle, spawn_client, spawn_relay};
use onionpeer_smol::proxy::{CircuitPool, FixedPath, serve_socks};
use sha2::{Digest, Sha256};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

use crate::{DemoArgs, FirstHopArg, Result};

/// Deterministic incompressible bytes (xorshift64*).
fn file_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A minimal HTTP/1.0 server: any GET is answered with `body`.
async fn http_server(body: Arc<Vec<u8>>) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    smol::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let body = body.clone();
            smol::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
                let _ = s.close().await;
            })
            .detach();
        }
    })
    .detach();
    Ok(addr)
}

/// Print what `node` reports, prefixed with `name` and the time since `t0`.
fn narrate(name: String, node: &NodeHandle, t0: Instant, client: bool) {
    let events = node.events();
    smol::spawn(async move {
        while let Ok(e) = events.recv().await {
            let ms = t0.elapsed().as_millis();
            let line = match e {
                Event::LinkUp { peer, version, .. } => match peer {
                    Some(p) => format!("link up to {p} (link protocol v{version})"),
                    None => format!("inbound link up (link protocol v{version})"),
                },
                Event::CircuitBuilt(c) if client => format!("circuit {} built (3 hops)", c.0),
                Event::StreamOpened { stream, .. } if client => {
                    format!("stream {} opened to the HTTP server", stream.0)
                }
                Event::StreamClosed { stream, reason } if client => {
                    format!("stream {} closed (END reason {})", stream.0, reason.0)
                }
                _ => continue,
            };
            println!("[{ms:>5} ms] {name:<7} {line}");
        }
    })
    .detach();
}

/// SOCKS5 CONNECT to `target` through `proxy`.
async fn socks5_connect(proxy: SocketAddr, target: SocketAddr) -> Result<TcpStream> {
    let mut s = TcpStream::connect(proxy).await?;
    s.write_all(&[5, 1, 0]).await?;
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await?;
    if r != [5, 0] {
        return Err("SOCKS5 method refused".into());
    }
    let host = target.ip().to_string();
    let mut req = vec![5, 1, 0, 3, u8::try_from(host.len())?];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&target.port().to_be_bytes());
    s.write_all(&req).await?;
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await?;
    if reply[1] != 0 {
        return Err(format!("SOCKS5 CONNECT failed with code {}", reply[1]).into());
    }
    Ok(s)
}

/// Run the demo.
pub async fn run(a: DemoArgs) -> Result<()> {
    let size = a.size_mib.unwrap_or(8) << 20;
    let n = a.relays.unwrap_or(4);
    if n < 3 {
        return Err("a 3-hop circuit needs at least 3 relays".into());
    }
    let first_hop = a.first_hop.unwrap_or(FirstHopArg::Ntor);
    let t0 = Instant::now();
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();

    println!("onionpeer demo: {n} relays, an HTTP server and a SOCKS proxy on 127.0.0.1");
    let mut relays = Vec::new();
    for i in 0..n {
        let exit = i == n - 1;
        let policy = exit.then(|| "accept 127.0.0.1:*".parse::<ExitPolicy>());
        let policy = policy.transpose().map_err(|e| e.to_string())?;
        let relay = spawn_relay(any, policy).await?;
        let name = if exit {
            "exit".to_string()
        } else {
            format!("relay{i}")
        };
        let t = relay.relay_target().ok_or("relay without address")?;
        println!(
            "[{:>5} ms] {name:<7} listening on {} (fingerprint {})",
            t0.elapsed().as_millis(),
            t.addr,
            t.id
        );
        narrate(name, &relay, t0, false);
        relays.push(relay);
    }

    let body = Arc::new(file_bytes(size));
    let want = Sha256::digest(&body[..]);
    let server = http_server(body).await?;
    println!(
        "[{:>5} ms] http    serving a {} MiB file on {server}",
        t0.elapsed().as_millis(),
        size >> 20
    );

    // Guard, a middle, the exit.
    let mut path = vec![relays[0].relay_target().cloned().ok_or("no address")?];
    path.push(relays[n / 2].relay_target().cloned().ok_or("no address")?);
    path.push(relays[n - 1].relay_target().cloned().ok_or("no address")?);
    let client = spawn_client()?;
    narrate("proxy".into(), &client, t0, true);
    let pool = Arc::new(CircuitPool::new(
        client,
        Arc::new(FixedPath(path)),
        first_hop.into(),
    ));
    let l = TcpListener::bind(any).await?;
    let socks = l.local_addr()?;
    smol::spawn(serve_socks(l, pool)).detach();
    println!(
        "[{:>5} ms] proxy   SOCKS5 port on {socks}; fetching http://{server}/file through relay0 -> relay{} -> exit",
        t0.elapsed().as_millis(),
        n / 2
    );

    let started = Instant::now();
    let mut s = socks5_connect(socks, server).await?;
    s.write_all(format!("GET /file HTTP/1.0\r\nHost: {server}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::with_capacity(size + 256);
    s.read_to_end(&mut response).await?;
    let secs = started.elapsed().as_secs_f64();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header in the response")?;
    let got = &response[split + 4..];
    let ok = got.len() == size && Sha256::digest(got) == want;
    println!(
        "[{:>5} ms] client  received {} bytes in {secs:.2} s: {:.1} MiB/s through 3 hops",
        t0.elapsed().as_millis(),
        got.len(),
        got.len() as f64 / secs / f64::from(1 << 20)
    );
    if !ok {
        return Err("the file arrived damaged (SHA-256 mismatch)".into());
    }
    println!(
        "[{:>5} ms] client  SHA-256 verified: {}",
        t0.elapsed().as_millis(),
        want.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    ordb_part(t0).await
}

/// The Peersm part: a bridge and peers join, one seeds a file, another fetches it
/// through the ORDBs (two-hop circuits; neither learns the other's address).
async fn ordb_part(t0: Instant) -> Result<()> {
    use onionpeer_smol::content::{self, GetUpdate};
    use onionpeer_smol::driver::spawn_peer;
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let ms = || t0.elapsed().as_millis();
    let bridge = spawn_peer(any, true, None).await?;
    let line = bridge.relay_target().cloned().ok_or("no address")?;
    println!("[{:>5} ms] bridge  Peersm bridge on {}", ms(), line.addr);
    // All peers start their bootstrap first: a peer's ORDB circuits need other peers
    // the bridge can introduce it to.
    let mut peers = Vec::new();
    for _ in 0..5 {
        let p = spawn_peer(any, false, None).await?;
        p.command(onionpeer_core::node::api::Command::Bootstrap {
            via: onionpeer_core::node::api::BootstrapVia::Bridge(line.clone()),
        })
        .await?;
        peers.push(p);
    }
    for (i, p) in peers.iter().enumerate() {
        crate::content::join(p, &line, std::time::Duration::from_secs(60)).await?;
        let circuits = p.inspect(|n| n.ordb_circuits()).await?;
        println!(
            "[{:>5} ms] peer{i}   joined through the bridge: {circuits} ORDB circuits",
            ms()
        );
    }
    let data = file_bytes(256 << 10);
    let want = Sha256::digest(&data);
    let name = content::seed(&peers[0], data.clone(), "application/octet-stream").await?;
    println!(
        "[{:>5} ms] peer0   seeds 256 KiB as hash_name {}",
        ms(),
        name.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    smol::Timer::after(std::time::Duration::from_secs(1)).await;
    let started = Instant::now();
    let updates = content::get(&peers[4], name, Vec::new()).await?;
    let mut got = vec![0u8; data.len()];
    let mut n = 0usize;
    loop {
        match updates.recv().await? {
            GetUpdate::Data { offset, bytes } => {
                let at = usize::try_from(offset)?;
                got.get_mut(at..at + bytes.len())
                    .ok_or("data past the end")?
                    .copy_from_slice(&bytes);
                n += bytes.len();
            }
            GetUpdate::Done(r) => {
                r?;
                break;
            }
            _ => {}
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if n != data.len() || Sha256::digest(&got) != want {
        return Err("the ORDB download arrived damaged".into());
    }
    println!(
        "[{:>5} ms] peer4   fetched it through the ORDBs in {secs:.2} s, SHA-256 verified",
        ms()
    );
    Ok(())
}
