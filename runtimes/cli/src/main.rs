//! `onionpeer`: an onion proxy with a SOCKS port, a relay, Peersm peers and bridges (with
//! the browser page), and a one-process demo.
//!
//! Every flag can also be set in a TOML file given with `--config FILE`, in a table named
//! after the subcommand (`[proxy]`, `[relay]`, `[peer]`, `[bridge]`, `[demo]`) with the flag's long name in
//! snake case; a flag on the command line wins over the file.

mod config;
mod content;
mod demo;
mod webrtc_peer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use onionpeer_core::dir::{PathConfig, parse_dir_authorities};
use onionpeer_core::node::api::{BootstrapVia, Command, Event};
use onionpeer_core::node::api::{FirstHop, RelayTarget};
use onionpeer_core::node::exit_policy::ExitPolicy;
use onionpeer_smol::dirclient::{DirClient, DirPaths};
use onionpeer_smol::driver::{NodeHandle, spawn_client, spawn_relay};
use onionpeer_smol::proxy::{CircuitPool, FixedPath, PathSource, serve_socks};
use onionpeer_smol::ws::{Site, Web};

use config::{ConfigFile, parse_relay_line, relay_line};

/// onionpeer: an onion-routing network that speaks the Tor protocol.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// A TOML file with values for any flag (`[proxy]`, `[relay]`, `[demo]` tables).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run an onion proxy: a SOCKS5/4a port whose connections go through 3-hop circuits.
    Proxy(ProxyArgs),
    /// Run a relay on an OR port (an exit if given an exit policy that accepts).
    Relay(RelayArgs),
    /// Start a small onionpeer network in this process and fetch a file through it.
    Demo(DemoArgs),
    /// Run a Peersm peer: a relay in the DHT that joins through a bridge and keeps ORDB
    /// circuits; browsers can link to its OR port over WebSocket.
    Peer(PeerArgs),
    /// Run a Peersm bridge: registers newcomers, answers DB_FIND_PEER, relays, and
    /// serves the browser page and browser links over WebSocket.
    Bridge(BridgeArgs),
    /// Join as a Peersm peer, seed a file (prints its hash_name) and serve it until
    /// stopped.
    Seed(content::SeedArgs),
    /// Join as a Peersm peer and download a file by hash_name through the ORDBs
    /// (resumes an interrupted download from FILE.part).
    Get(content::GetArgs),
    /// Join as a Peersm peer and publish stdin as a live stream (prints its hash_name),
    /// serving it until stopped.
    Live(content::LiveArgs),
    /// Join as a Peersm peer and write a live stream to stdout (joined 2 windows behind
    /// its newest chunk).
    Stream(content::StreamArgs),
    /// Run a simulated network scenario (TOML) deterministically and summarize it.
    Sim(onionpeer_sim::SimArgs),
}

/// How the first hop of a circuit is created.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum FirstHopArg {
    /// CREATE2 with ntor.
    Ntor,
    /// CREATE_FAST.
    Fast,
}

impl From<FirstHopArg> for FirstHop {
    fn from(a: FirstHopArg) -> FirstHop {
        match a {
            FirstHopArg::Ntor => FirstHop::Ntor,
            FirstHopArg::Fast => FirstHop::Fast,
        }
    }
}

/// `onionpeer proxy`.
#[derive(Args, Debug, Default)]
struct ProxyArgs {
    /// Address of the SOCKS port [default: 127.0.0.1:9050].
    #[arg(long, value_name = "ADDR")]
    socks: Option<SocketAddr>,
    /// File of torrc `DirAuthority` lines: bootstrap from these authorities.
    #[arg(long, value_name = "FILE")]
    dir_authorities: Option<PathBuf>,
    /// Instead of a directory, always use this path: one `--hop` per relay, first hop
    /// first, each as `onionpeer relay` prints it (ADDR,FINGERPRINT,NTOR_KEY[,ED_ID]).
    #[arg(long = "hop", value_name = "RELAY")]
    hops: Vec<String>,
    /// How to create first hops [default: ntor].
    #[arg(long, value_enum)]
    first_hop: Option<FirstHopArg>,
    /// Allow relays of one /16 in a circuit (needed when every relay is on 127.0.0.1;
    /// on by itself when every authority is on loopback).
    #[arg(long)]
    allow_same_subnet: bool,
    /// Link over WebRTC from a UDP socket on this address: every `--hop` is then a
    /// WebRTC relay, its ADDR the relay's signalling endpoint (as `onionpeer relay
    /// --webrtc` prints it). Streams share one circuit along the hops.
    #[arg(long, value_name = "ADDR")]
    webrtc: Option<SocketAddr>,
}

/// `onionpeer relay`.
#[derive(Args, Debug, Default)]
struct RelayArgs {
    /// Address of the OR port [default: 127.0.0.1:9001].
    #[arg(long, value_name = "ADDR")]
    or_port: Option<SocketAddr>,
    /// Exit policy, torrc style (`accept *:80,reject *:*`); without it, no exits.
    #[arg(long, value_name = "POLICY")]
    exit_policy: Option<String>,
    /// Take WebRTC links: the HTTP signalling endpoint (POST an offer SDP, get the answer)
    /// listens on this TCP address and the data channels' UDP socket on the same port.
    /// The relay then dials every link it extends over WebRTC (peers' addresses are
    /// their signalling endpoints); with `--or-port` as well it still accepts TLS links.
    #[arg(long, value_name = "ADDR")]
    webrtc: Option<SocketAddr>,
}

/// `onionpeer demo`.
#[derive(Args, Debug, Default)]
struct DemoArgs {
    /// Size of the file fetched, in MiB [default: 8].
    #[arg(long, value_name = "MIB")]
    size_mib: Option<usize>,
    /// Relays started, the last one an exit (at least 3) [default: 4].
    #[arg(long, value_name = "N")]
    relays: Option<usize>,
    /// How to create the first hop [default: ntor].
    #[arg(long, value_enum)]
    first_hop: Option<FirstHopArg>,
}

/// `onionpeer peer`.
#[derive(Args, Debug, Default)]
struct PeerArgs {
    /// Address of the OR port (TLS links, and WebSocket links from browsers)
    /// [default: 127.0.0.1:9001].
    #[arg(long, value_name = "ADDR")]
    or_port: Option<SocketAddr>,
    /// The bridge to join through, as `onionpeer bridge` prints it
    /// (ADDR,FINGERPRINT,NTOR_KEY[,ED_ID]).
    #[arg(long, value_name = "RELAY")]
    bridge: Option<String>,
    /// Advertise as a facilitator (the DB_INFO F flag): a long-running peer ORDBs send
    /// the queries their FIND could not place.
    #[arg(long)]
    facilitator: bool,
    #[command(flatten)]
    links: webrtc_peer::LinkArgs,
}

/// `onionpeer bridge`.
#[derive(Args, Debug, Default)]
struct BridgeArgs {
    /// Address of the OR port [default: 127.0.0.1:9001].
    #[arg(long, value_name = "ADDR")]
    or_port: Option<SocketAddr>,
    /// Address for browser links over WebSocket (and the page, without --http)
    /// [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    ws: Option<SocketAddr>,
    /// Serve the page on this address too.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Directory of the page (built by runtimes/wasm/build.sh)
    /// [default: target/onionpeer-site].
    #[arg(long, value_name = "DIR")]
    site: Option<PathBuf>,
    #[command(flatten)]
    links: webrtc_peer::LinkArgs,
    /// A fellow bridge (its relay line): every peer that registers here is passed on to
    /// it, so the bridges hand out peers of one DHT, not one each. Repeatable; for
    /// two-way sharing, name each bridge at the other (start the second with the first's
    /// line, then restart the first with the second's).
    #[arg(long, value_name = "RELAY")]
    fellow: Vec<String>,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Cmd::Sim(args) = cli.command {
        // The simulator runs on virtual time: no runtime, no config file. It prints its
        // own errors (with the seed to reproduce them).
        std::process::exit(
            if onionpeer_sim::cli::main(args) == std::process::ExitCode::SUCCESS {
                0
            } else {
                1
            },
        );
    }
    let file = match cli.config.as_deref().map(ConfigFile::load).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => {
            eprintln!("onionpeer: {e}");
            std::process::exit(2);
        }
    };
    let result = smol::block_on(async {
        match cli.command {
            Cmd::Proxy(a) => proxy(a.merge(file.proxy)).await,
            Cmd::Relay(a) => relay(a.merge(file.relay)).await,
            Cmd::Demo(a) => demo::run(a.merge(file.demo)).await,
            Cmd::Peer(a) => peer(a.merge(file.peer)).await,
            Cmd::Bridge(a) => bridge(a.merge(file.bridge)).await,
            Cmd::Seed(a) => content::seed(a).await,
            Cmd::Get(a) => content::get(a).await,
            Cmd::Live(a) => content::live(a).await,
            Cmd::Stream(a) => content::stream(a).await,
            Cmd::Sim(_) => Ok(()),
        }
    });
    if let Err(e) = result {
        eprintln!("onionpeer: {e}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

async fn proxy(a: ProxyArgs) -> Result<()> {
    let socks = a.socks.unwrap_or_else(|| ([127, 0, 0, 1], 9050).into());
    let first_hop = a.first_hop.unwrap_or(FirstHopArg::Ntor).into();
    if let Some(udp) = a.webrtc {
        if a.hops.is_empty() {
            return Err("--webrtc needs the path as --hop lines".into());
        }
        let path = a
            .hops
            .iter()
            .map(|h| parse_relay_line(h))
            .collect::<std::result::Result<Vec<RelayTarget>, String>>()?;
        let client = onionpeer_webrtc::driver::spawn_client(udp)?;
        let circuits = Arc::new(onionpeer_smol::proxy::CircuitPool::new(
            client.smol_handle().clone(),
            Arc::new(onionpeer_smol::proxy::FixedPath(path)),
            first_hop,
        ));
        let listener = smol::net::TcpListener::bind(socks).await?;
        println!(
            "SOCKS port listening on {} (WebRTC links)",
            listener.local_addr()?
        );
        onionpeer_smol::proxy::serve_socks(listener, circuits).await?;
        return Ok(());
    }
    let paths: Arc<dyn PathSource> = if !a.hops.is_empty() {
        let path = a
            .hops
            .iter()
            .map(|h| parse_relay_line(h))
            .collect::<std::result::Result<Vec<RelayTarget>, String>>()?;
        Arc::new(FixedPath(path))
    } else {
        let file = a
            .dir_authorities
            .ok_or("give --dir-authorities FILE (or --hop for a fixed path)")?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let authorities = parse_dir_authorities(&text).map_err(|e| format!("{e:?}"))?;
        let loopback = authorities.iter().all(|x| x.dir_addr.ip().is_loopback());
        let config = PathConfig {
            enforce_distinct_subnets: !(a.allow_same_subnet || loopback),
            ..PathConfig::default()
        };
        println!(
            "bootstrapping from {} directory authorities",
            authorities.len()
        );
        let dir = DirPaths::bootstrap(DirClient::new(authorities), config).await?;
        println!(
            "directory ready: {} usable relays",
            dir.netdir().relays().len()
        );
        dir
    };
    let client = spawn_client()?;
    let pool = Arc::new(CircuitPool::new(client, paths, first_hop));
    let listener = smol::net::TcpListener::bind(socks).await?;
    println!("SOCKS port listening on {}", listener.local_addr()?);
    serve_socks(listener, pool).await?;
    Ok(())
}

async fn relay(a: RelayArgs) -> Result<()> {
    let policy = a
        .exit_policy
        .map(|p| p.parse::<ExitPolicy>())
        .transpose()
        .map_err(|e| e.to_string())?;
    let exit = policy.is_some();
    let kind = if exit { "exit relay" } else { "relay" };
    if let Some(webrtc) = a.webrtc {
        let relay = webrtc_relay(webrtc, a.or_port, policy).await?;
        if let Some(t) = relay.relay_target() {
            println!("{kind} listening for TLS links on {}", t.addr);
        }
        let t = relay.webrtc_target().ok_or("relay has no address")?;
        println!(
            "{kind} listening for WebRTC links on {} (POST /offer)",
            t.addr
        );
        print_relay(t, true);
        smol::future::pending::<()>().await;
        return Ok(());
    }
    let or_port = a.or_port.unwrap_or_else(|| ([127, 0, 0, 1], 9001).into());
    let relay = spawn_relay(or_port, policy).await?;
    let t = relay.relay_target().ok_or("relay has no address")?;
    println!("{kind} listening on {}", t.addr);
    print_relay(t, false);
    smol::future::pending::<()>().await;
    Ok(())
}

/// A relay on the WebRTC runtime: signalling and UDP at `webrtc`, TLS links too at
/// `or_port` if given.
async fn webrtc_relay(
    webrtc: SocketAddr,
    or_port: Option<SocketAddr>,
    policy: Option<ExitPolicy>,
) -> Result<onionpeer_webrtc::NodeHandle> {
    use onionpeer_core::node::config::{NodeConfig, Role};
    let role = if policy.is_some() {
        Role::EXIT
    } else {
        Role::RELAY
    };
    let mut node = NodeConfig::new(onionpeer_webrtc::driver::os_seed()?, role, 0);
    if let Some(p) = policy {
        node.exit_policy = p;
    }
    let listener = match or_port {
        Some(addr) => {
            let cert = onionpeer_smol::tls::LinkCert::generate()?;
            let responder = onionpeer_smol::tls::TlsResponder::new(cert)?;
            Some(onionpeer_smol::tls::TlsListener::bind(addr, responder).await?)
        }
        None => None,
    };
    let (signalling, endpoint) = onionpeer_webrtc::driver::bind_webrtc(webrtc).await?;
    let handle = onionpeer_webrtc::spawn_node(onionpeer_webrtc::DriverConfig {
        node,
        listener,
        endpoint,
        signalling: Some(signalling),
        signaller: Arc::new(onionpeer_webrtc::signal::HttpSignaller),
        dial: onionpeer_webrtc::DialPolicy::AllWebRtc,
        sign_fingerprint: None,
    })
    .map_err(|e| e.to_string())?;
    Ok(handle)
}

fn print_relay(t: &RelayTarget, webrtc: bool) {
    println!("fingerprint: {}", t.id);
    println!(
        "ntor key:    {}",
        onionpeer_core::dir::base64_encode_unpadded(&t.ntor_key)
    );
    if let Some(ed) = t.ed_id {
        println!(
            "ed25519 id:  {}",
            onionpeer_core::dir::base64_encode_unpadded(&ed)
        );
    }
    let via = if webrtc { "--webrtc 127.0.0.1:0 " } else { "" };
    println!(
        "use it as a hop: onionpeer proxy {via}--hop {}",
        relay_line(t)
    );
}

/// Print how to reach and use a node.
fn print_node(what: &str, t: &RelayTarget) {
    println!("{what} listening on {}", t.addr);
    println!("fingerprint: {}", t.id);
    println!("relay line:  {}", relay_line(t));
}

async fn peer(a: PeerArgs) -> Result<()> {
    let or_port = a.or_port.unwrap_or_else(|| ([127, 0, 0, 1], 9001).into());
    let bridge = parse_relay_line(
        &a.bridge
            .ok_or("give --bridge RELAY (as `onionpeer bridge` prints it)")?,
    )?;
    let web = Web {
        on_or_port: true,
        ..Web::default()
    };
    let node = webrtc_peer::spawn_peer(&a.links, or_port, false, web).await?;
    if a.facilitator {
        node.with_node_mut(|n, _| n.set_facilitator(true)).await?;
    }
    print_node(
        "peer",
        webrtc_peer::target(&a.links, &node).ok_or("peer has no address")?,
    );
    keep_joined(&node, bridge).await
}

/// Bootstrap through `bridge`, again soon while no ORDB circuit is up (the bridge may
/// know nobody yet), then every ten minutes to refresh our place in the DHT.
async fn keep_joined(node: &NodeHandle, bridge: RelayTarget) -> Result<()> {
    let events = node.events();
    smol::spawn(async move {
        while let Ok(e) = events.recv().await {
            match e {
                Event::PeerFound(p) => println!("bridge introduced peer {}", p.id),
                Event::OrdbCircuitsReady(n) => println!("bootstrap done: {n} ORDB circuits"),
                _ => {}
            }
        }
    })
    .detach();
    let mut delay = std::time::Duration::from_secs(2);
    let mut reported = 0;
    loop {
        node.command(Command::Bootstrap {
            via: BootstrapVia::Bridge(bridge.clone()),
        })
        .await?;
        smol::Timer::after(delay).await;
        let up = node.inspect(|n| n.ordb_circuits()).await?;
        if up != reported {
            println!("ORDB circuits up: {up}");
            reported = up;
        }
        delay = if up > 0 {
            std::time::Duration::from_secs(600)
        } else {
            (delay * 2).min(std::time::Duration::from_secs(30))
        };
    }
}

async fn bridge(a: BridgeArgs) -> Result<()> {
    let or_port = a.or_port.unwrap_or_else(|| ([127, 0, 0, 1], 9001).into());
    let ws = a.ws.unwrap_or_else(|| ([127, 0, 0, 1], 8080).into());
    let site = a
        .site
        .unwrap_or_else(|| PathBuf::from("target/onionpeer-site"));
    if !site.join("index.html").is_file() {
        eprintln!(
            "onionpeer: warning: no page in {} (build it with runtimes/wasm/build.sh)",
            site.display()
        );
    }
    let mut listeners = vec![smol::net::TcpListener::bind(ws).await?];
    if let Some(http) = a.http {
        listeners.push(smol::net::TcpListener::bind(http).await?);
    }
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<std::io::Result<_>>()?;
    let web = Web {
        listeners,
        on_or_port: true,
        site: Site::from_dir(site),
    };
    let node = webrtc_peer::spawn_peer(&a.links, or_port, true, web).await?;
    print_node(
        "bridge",
        webrtc_peer::target(&a.links, &node).ok_or("bridge has no address")?,
    );
    println!("websocket links on ws://{}/link", addrs[0]);
    for addr in &addrs {
        println!("page on http://{addr}/");
    }
    for line in &a.fellow {
        let fellow = parse_relay_line(line)?;
        node.command(Command::Bootstrap {
            via: BootstrapVia::Bridge(fellow.clone()),
        })
        .await
        .map_err(|e| format!("fellow bridge {}: {e:?}", fellow.addr))?;
        println!("fellow bridge {}", fellow.addr);
    }
    smol::future::pending::<()>().await;
    Ok(())
}
