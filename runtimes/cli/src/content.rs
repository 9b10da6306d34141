//! `onionpeer seed` and `onionpeer get`: publish a file through the ORDBs and fetch one,
//! with a progress bar and a resumable partial file; `onionpeer live` publishes stdin as
//! a live stream and `onionpeer stream` writes one to stdout.
//!
//! A download in progress lives in `FILE.part` (the bytes, in order) and
//! `FILE.part.state` (how many whole chunks of it are verified). A rerun keeps those
//! chunks, asks the network for the rest only, and renames `FILE.part` to `FILE` when done.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use onionpeer_core::node::api::{BootstrapVia, Command, RelayTarget};
use onionpeer_smol::content::{self, CHUNK_SIZE, GetUpdate};
use onionpeer_smol::driver::NodeHandle;
use onionpeer_smol::store::DiskStore;
use onionpeer_smol::ws::Web;
use smol::future::FutureExt as _;

use crate::config::parse_relay_line;
use crate::{Result, keep_joined, print_node};

/// How a content command joins the network (shared by `seed`, `get`, `live`, `stream`).
#[derive(Args, Debug)]
pub struct NetArgs {
    /// The bridge to join through (as `onionpeer bridge` prints it).
    #[arg(long, value_name = "RELAY")]
    bridge: String,
    /// Address of the OR port (TLS links, and WebSocket links from browsers)
    /// [default: 127.0.0.1:0, any free port].
    #[arg(long, value_name = "ADDR")]
    or_port: Option<SocketAddr>,
    /// Keep chunks on disk under DIR (served to others, and found again after a restart)
    /// instead of in memory.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The disk store's budget in MiB.
    #[arg(long, default_value_t = 1024)]
    store_mib: usize,
    /// Advertise as a facilitator (the DB_INFO F flag): ORDBs send this peer the queries
    /// their FIND could not place.
    #[arg(long)]
    facilitator: bool,
    #[command(flatten)]
    links: crate::webrtc_peer::LinkArgs,
}

/// `onionpeer seed`.
#[derive(Args, Debug)]
pub struct SeedArgs {
    /// The file to publish. Without it, serve what `--store` holds from an earlier run.
    file: Option<PathBuf>,
    /// Its MIME type.
    #[arg(long, default_value = "application/octet-stream")]
    mime: String,
    #[command(flatten)]
    net: NetArgs,
}

/// `onionpeer get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The file's hash_name, in hex (as `onionpeer seed` prints it).
    hash: String,
    /// Where to write the file.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    #[command(flatten)]
    net: NetArgs,
}

/// `onionpeer live`.
#[derive(Args, Debug)]
pub struct LiveArgs {
    /// The stream's MIME type.
    #[arg(long, default_value = "application/octet-stream")]
    mime: String,
    /// Chunks (of 486 bytes) per signed segment.
    #[arg(long, default_value_t = content::LIVE_SEGMENT_CHUNKS)]
    segment_chunks: u16,
    /// Publish what stdin gave so far (a short segment) after this many milliseconds
    /// without a whole segment.
    #[arg(long, default_value_t = 1000)]
    flush_ms: u64,
    #[command(flatten)]
    net: NetArgs,
}

/// `onionpeer stream`.
#[derive(Args, Debug)]
pub struct StreamArgs {
    /// The live stream's hash_name, in hex (as `onionpeer live` prints it).
    hash: String,
    /// Stop after writing this many bytes.
    #[arg(long)]
    max_bytes: Option<u64>,
    #[command(flatten)]
    net: NetArgs,
}

/// Start a peer as `net` says (its disk store in place, held content advertised: the
/// names returned) and print its address (on stderr when stdout carries data).
async fn start(net: &NetArgs, stdout_is_data: bool) -> Result<(NodeHandle, Vec<[u8; 20]>)> {
    let or_port = net.or_port.unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
    let web = Web {
        on_or_port: true,
        ..Web::default()
    };
    let node = crate::webrtc_peer::spawn_peer(&net.links, or_port, false, web).await?;
    if net.facilitator {
        node.with_node_mut(|n, _| n.set_facilitator(true)).await?;
    }
    let t = crate::webrtc_peer::target(&net.links, &node).ok_or("peer has no address")?;
    if stdout_is_data {
        eprintln!("peer listening on {}", t.addr);
    } else {
        print_node("peer", t);
    }
    if let Some(dir) = &net.store {
        let store = DiskStore::new(dir, net.store_mib << 20)
            .map_err(|e| format!("cannot use {}: {e}", dir.display()))?;
        let held = node
            .with_node_mut(move |n, _| {
                n.set_chunk_store(Box::new(store));
                n.advertise_held()
            })
            .await?;
        for name in &held {
            if stdout_is_data {
                eprintln!("held: {}", to_hex(name));
            } else {
                println!("held: {}", to_hex(name));
            }
        }
        return Ok((node, held));
    }
    Ok((node, Vec::new()))
}

/// Join through `bridge` and wait (up to `limit`) for a first ORDB circuit.
pub async fn join(node: &NodeHandle, bridge: &RelayTarget, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        node.command(Command::Bootstrap {
            via: BootstrapVia::Bridge(bridge.clone()),
        })
        .await?;
        for _ in 0..10 {
            smol::Timer::after(Duration::from_millis(300)).await;
            if node.inspect(|n| n.ordb_circuits()).await? > 0 {
                return Ok(());
            }
        }
        if start.elapsed() > limit {
            return Err("could not join the network (no ORDB circuit)".into());
        }
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<[u8; 20]> {
    let s = s.trim();
    if s.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `onionpeer seed [FILE]`: join, seed, print the name, serve until stopped. Without
/// FILE, serve what the disk store holds.
pub async fn seed(a: SeedArgs) -> Result<()> {
    let data = match &a.file {
        Some(f) => Some(std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?),
        None if a.net.store.is_some() => None,
        None => return Err("give FILE, or --store DIR to serve what DIR holds".into()),
    };
    let bridge = parse_relay_line(&a.net.bridge)?;
    let (node, held) = start(&a.net, false).await?;
    join(&node, &bridge, Duration::from_secs(120)).await?;
    // Joined: what the store held is advertised on the ORDB circuits now.
    for name in held {
        println!("serving: {}", to_hex(&name));
    }
    if let (Some(data), Some(file)) = (data, &a.file) {
        let size = data.len();
        let name = content::seed(&node, data, &a.mime).await?;
        println!("seeding {} ({size} bytes)", file.display());
        println!("hash_name: {}", to_hex(&name));
    }
    keep_joined(&node, bridge).await
}

/// `onionpeer live`: join, start a live stream, print its name, publish stdin as it
/// comes (a segment when one is whole, or what there is after `--flush-ms`), serve
/// until stopped (also after stdin ends).
pub async fn live(a: LiveArgs) -> Result<()> {
    let bridge = parse_relay_line(&a.net.bridge)?;
    let (node, _) = start(&a.net, false).await?;
    join(&node, &bridge, Duration::from_secs(120)).await?;
    let segment_chunks = a.segment_chunks.clamp(1, 225);
    let name = content::live(&node, &a.mime, segment_chunks).await?;
    println!("live stream ({segment_chunks} chunks a segment)");
    println!("hash_name: {}", to_hex(&name));
    // Stdin blocks: a thread reads it.
    let (tx, rx) = smol::channel::bounded::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send_blocking(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let pusher = node.clone();
    let flush = Duration::from_millis(a.flush_ms.max(1));
    smol::spawn(async move {
        let seg = usize::from(segment_chunks) * CHUNK_SIZE as usize;
        let mut pending: Vec<u8> = Vec::new();
        let (mut total, mut segments) = (0u64, 0u64);
        // A short segment goes out `flush` after the last push, even if input trickles.
        let mut since = Instant::now();
        loop {
            let got = async { Some(rx.recv().await.ok()) }
                .or(async {
                    smol::Timer::at(since + flush).await;
                    None
                })
                .await;
            let ended = matches!(got, Some(None));
            let timed_out = got.is_none();
            if let Some(Some(d)) = got {
                pending.extend_from_slice(&d);
            }
            let cut = if ended || timed_out {
                pending.len()
            } else {
                pending.len() - pending.len() % seg
            };
            for part in pending[..cut].chunks(seg) {
                if let Err(e) = content::live_push(&pusher, name, part).await {
                    eprintln!("onionpeer: live: {e}");
                    return;
                }
                total += part.len() as u64;
                segments += 1;
            }
            pending.drain(..cut);
            if cut > 0 || pending.is_empty() {
                since = Instant::now();
            }
            if ended {
                eprintln!("end of input: {total} bytes in {segments} segments; still serving");
                return;
            }
        }
    })
    .detach();
    keep_joined(&node, bridge).await
}

/// `onionpeer stream HASH`: join, follow the live stream, write it to stdout.
pub async fn stream(a: StreamArgs) -> Result<()> {
    let name = from_hex(&a.hash).ok_or("HASH must be 40 hex digits")?;
    let bridge = parse_relay_line(&a.net.bridge)?;
    let (node, _) = start(&a.net, true).await?;
    join(&node, &bridge, Duration::from_secs(120)).await?;
    let updates = content::stream(&node, name).await?;
    let mut out = std::io::stdout().lock();
    let mut written = 0u64;
    let mut said = Instant::now();
    // Where the stream's next bytes should start: a live window that moved past chunks we
    // had not received yet leaves a gap, which is said, not hidden.
    let mut next: Option<u64> = None;
    let mut skipped = 0u64;
    loop {
        match updates.recv().await.map_err(|_| "the download stopped")? {
            GetUpdate::Info { mime, .. } => eprintln!("live stream, {mime}"),
            GetUpdate::Progress { .. } => {}
            GetUpdate::Data { offset, bytes } => {
                if let Some(gap) = next.and_then(|n| offset.checked_sub(n)).filter(|g| *g > 0) {
                    skipped += gap;
                    eprintln!(
                        "warning: {gap} bytes of the stream were lost (the live window moved \
                         past them before they arrived; {skipped} in all)"
                    );
                }
                next = Some(offset + bytes.len() as u64);
                if written == 0 || said.elapsed() > Duration::from_secs(2) {
                    eprintln!("streamed {written} bytes");
                    said = Instant::now();
                }
                let take = a.max_bytes.map_or(bytes.len(), |m| {
                    (m - written).min(bytes.len() as u64) as usize
                });
                out.write_all(&bytes[..take])?;
                out.flush()?;
                written += take as u64;
                if a.max_bytes.is_some_and(|m| written >= m) {
                    node.shutdown();
                    return Ok(());
                }
            }
            GetUpdate::Done(r) => {
                node.shutdown();
                return r.map_err(Into::into);
            }
        }
    }
}

/// The resume state: whole verified chunks at the start of `FILE.part`.
fn read_state(state: &Path) -> u64 {
    std::fs::read_to_string(state)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("chunks ")
                    .and_then(|n| n.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn write_state(state: &Path, chunks: u64) -> std::io::Result<()> {
    let tmp = state.with_extension("state.tmp");
    std::fs::write(&tmp, format!("chunk_size {CHUNK_SIZE}\nchunks {chunks}\n"))?;
    std::fs::rename(tmp, state)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `onionpeer get HASH -o FILE`: join, download (resuming `FILE.part`), write FILE.
pub async fn get(a: GetArgs) -> Result<()> {
    let name = from_hex(&a.hash).ok_or("HASH must be 40 hex digits")?;
    let bridge = parse_relay_line(&a.net.bridge)?;
    let part = with_suffix(&a.output, ".part");
    let state = with_suffix(&a.output, ".part.state");
    let mut held_chunks = if part.exists() { read_state(&state) } else { 0 };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&part)
        .map_err(|e| format!("cannot open {}: {e}", part.display()))?;
    // Only whole verified chunks count: anything after them is fetched again.
    let part_len = file.metadata()?.len();
    held_chunks = held_chunks.min(part_len / CHUNK_SIZE);
    file.set_len(held_chunks * CHUNK_SIZE)?;
    write_state(&state, held_chunks)?;
    if held_chunks > 0 {
        eprintln!("resuming: {held_chunks} chunks already held");
    }
    let (node, _) = start(&a.net, false).await?;
    join(&node, &bridge, Duration::from_secs(120)).await?;
    let held = if held_chunks > 0 {
        vec![(0, held_chunks)]
    } else {
        Vec::new()
    };
    let updates = content::get(&node, name, held).await?;
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let mut bar = Bar::new(held_chunks * CHUNK_SIZE);
    let mut size = None;
    let mut written = held_chunks * CHUNK_SIZE;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let u = async { updates.recv().await.ok() }
            .or(async {
                smol::Timer::after(left).await;
                None
            })
            .await;
        let Some(u) = u else {
            break Err("timed out".to_string());
        };
        match u {
            GetUpdate::Info { size: s, mime } => {
                eprintln!("{s} bytes, {mime}");
                size = Some(s);
                bar.total = s;
            }
            GetUpdate::Progress { .. } => {}
            GetUpdate::Data { offset, bytes } => {
                file.seek(SeekFrom::Start(offset))?;
                file.write_all(&bytes)?;
                written = offset + bytes.len() as u64;
                let whole = if Some(written) == size {
                    written.div_ceil(CHUNK_SIZE)
                } else {
                    written / CHUNK_SIZE
                };
                write_state(&state, whole)?;
                bar.show(written, false);
            }
            GetUpdate::Done(r) => break r,
        }
    };
    bar.show(written, true);
    eprintln!();
    node.shutdown();
    result?;
    file.flush()?;
    drop(file);
    std::fs::rename(&part, &a.output)?;
    let _ = std::fs::remove_file(&state);
    println!("wrote {} ({written} bytes)", a.output.display());
    Ok(())
}

/// A one-line progress bar on stderr: share, rate and ETA.
struct Bar {
    start: Instant,
    start_bytes: u64,
    total: u64,
    last: Option<Instant>,
}

impl Bar {
    fn new(start_bytes: u64) -> Bar {
        Bar {
            start: Instant::now(),
            start_bytes,
            total: 0,
            last: None,
        }
    }

    fn show(&mut self, done: u64, force: bool) {
        let now = Instant::now();
        if !force
            && self
                .last
                .is_some_and(|t| now - t < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(now);
        let secs = (now - self.start).as_secs_f64().max(1e-3);
        let rate = done.saturating_sub(self.start_bytes) as f64 / secs;
        let share = if self.total > 0 {
            done as f64 / self.total as f64
        } else {
            0.0
        };
        let filled = (share * 30.0) as usize;
        let eta = if rate > 0.0 && self.total > done {
            format!("{:.0}s", (self.total - done) as f64 / rate)
        } else {
            "-".into()
        };
        eprint!(
            "\r[{}{}] {:5.1}% {:>8.1} KiB/s ETA {eta:<6}",
            "#".repeat(filled.min(30)),
            "-".repeat(30 - filled.min(30)),
            share * 100.0,
            rate / 1024.0,
        );
        let _ = std::io::stderr().flush();
    }
}
