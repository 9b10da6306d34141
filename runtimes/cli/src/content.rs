//! `onionpeer seed` and `onionpeer get`: publish a file through the ORDBs and fetch one,
//! with a progress bar and a resumable partial file.
//!
//! A download in progress lives in `FILE.part` (the bytes, in order) and
//! `FILE.part.state` (how many whole chunks of it are verified). A rerun keeps those
//! chunks, asks the network for the rest only, and renames `FILE.part` to `FILE` when done.

use std::io::{Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use onionpeer_core::node::api::{BootstrapVia, Command, RelayTarget};
use onionpeer_smol::content::{self, CHUNK_SIZE, GetUpdate};
use onionpeer_smol::driver::NodeHandle;
use onionpeer_smol::store::DiskStore;
use smol::future::FutureExt as _;

use crate::config::parse_relay_line;
use crate::{Result, keep_joined, print_node};

/// `onionpeer seed`.
#[derive(Args, Debug)]
pub struct SeedArgs {
    /// The file to publish.
    file: PathBuf,
    /// Its MIME type.
    #[arg(long, default_value = "application/octet-stream")]
    mime: String,
    /// The bridge to join through (as `onionpeer bridge` prints it).
    #[arg(long, value_name = "RELAY")]
    bridge: String,
    /// Address of the OR port [default: 127.0.0.1:0, any free port].
    #[arg(long, value_name = "ADDR")]
    or_port: Option<SocketAddr>,
    /// Keep chunks on disk under DIR (served to others) instead of in memory.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The disk store's budget in MiB.
    #[arg(long, default_value_t = 1024)]
    store_mib: usize,
    /// Link over WebRTC: HTTP signalling endpoint and UDP socket at this address
    /// (127.0.0.1:0: any port); the bridge and the other peers must use WebRTC too.
    #[arg(long, value_name = "ADDR")]
    webrtc: Option<SocketAddr>,
}

/// `onionpeer get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The file's hash_name, in hex (as `onionpeer seed` prints it).
    hash: String,
    /// Where to write the file.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// The bridge to join through (as `onionpeer bridge` prints it).
    #[arg(long, value_name = "RELAY")]
    bridge: String,
    /// Address of the OR port [default: 127.0.0.1:0, any free port].
    #[arg(long, value_name = "ADDR")]
    or_port: Option<SocketAddr>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Keep chunks on disk under DIR (served to others) instead of in memory.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The disk store's budget in MiB.
    #[arg(long, default_value_t = 1024)]
    store_mib: usize,
    /// Link over WebRTC: HTTP signalling endpoint and UDP socket at this address
    /// (127.0.0.1:0: any port); the bridge and the other peers must use WebRTC too.
    #[arg(long, value_name = "ADDR")]
    webrtc: Option<SocketAddr>,
}

/// Use a disk store under `dir` on `node`, when asked for.
async fn use_store(node: &NodeHandle, dir: Option<PathBuf>, mib: usize) -> Result<()> {
    if let Some(dir) = dir {
        let store = DiskStore::new(&dir, mib << 20)
            .map_err(|e| format!("cannot use {}: {e}", dir.display()))?;
        node.with_node_mut(move |n, _| n.set_chunk_store(Box::new(store)))
            .await?;
    }
    Ok(())
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

/// `onionpeer seed FILE`: join, seed, print the name, serve until stopped.
pub async fn seed(a: SeedArgs) -> Result<()> {
    let data =
        std::fs::read(&a.file).map_err(|e| format!("cannot read {}: {e}", a.file.display()))?;
    let bridge = parse_relay_line(&a.bridge)?;
    let or_port = a.or_port.unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
    let node = crate::webrtc_peer::spawn_peer(a.webrtc, or_port, false, None).await?;
    print_node(
        "peer",
        crate::webrtc_peer::target(&node).ok_or("peer has no address")?,
    );
    use_store(&node, a.store, a.store_mib).await?;
    join(&node, &bridge, Duration::from_secs(120)).await?;
    let size = data.len();
    let name = content::seed(&node, data, &a.mime).await?;
    println!("seeding {} ({size} bytes)", a.file.display());
    println!("hash_name: {}", to_hex(&name));
    keep_joined(&node, bridge).await
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
    let bridge = parse_relay_line(&a.bridge)?;
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
    let or_port = a.or_port.unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
    let node = crate::webrtc_peer::spawn_peer(a.webrtc, or_port, false, None).await?;
    use_store(&node, a.store, a.store_mib).await?;
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
