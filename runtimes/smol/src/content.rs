//! Files and live streams over the ORDBs on a running node: [`seed`] publishes bytes,
//! [`get`] downloads a file as a stream of [`GetUpdate`]s; [`live`] starts a live stream,
//! [`live_push`] adds to it, [`stream`] follows one. The protocol (verification,
//! scheduling, serving) is the core's; this only turns its events and
//! `Node::read_content` into a channel.

use std::time::Duration;

use onionpeer_core::cells::relay::HashName;
use onionpeer_core::node::api::{Command, CommandOk, DownloadHandle, Event};
use smol::channel::{Receiver, bounded};
use smol::future::FutureExt as _;

use crate::driver::NodeHandle;

/// Bytes per chunk of the files the core seeds (the resume state counts chunks).
pub const CHUNK_SIZE: u64 = onionpeer_core::ordb::CHUNK_SIZE as u64;

/// Seed `data` on `node` (signed with a fresh key): its 20-byte hash_name.
pub async fn seed(node: &NodeHandle, data: Vec<u8>, mime: &str) -> Result<[u8; 20], String> {
    let cmd = Command::Seed {
        data,
        mime_type: mime.into(),
        key: None,
    };
    match node.command(cmd).await.map_err(|e| e.to_string())? {
        CommandOk::Content(name) => Ok(name),
        o => Err(format!("unexpected answer {o:?}")),
    }
}

/// Chunks per signed segment of the live streams [`live`] starts (PROTOCOL.md 6.5).
pub const LIVE_SEGMENT_CHUNKS: u16 = 64;

/// Start a live stream on `node` (a fresh key), `segment_chunks` chunks a segment: its
/// hash_name. Add to it with [`live_push`].
pub async fn live(node: &NodeHandle, mime: &str, segment_chunks: u16) -> Result<[u8; 20], String> {
    let cmd = Command::Live {
        mime_type: mime.into(),
        key: None,
        segment_chunks,
    };
    match node.command(cmd).await.map_err(|e| e.to_string())? {
        CommandOk::Content(name) => Ok(name),
        o => Err(format!("unexpected answer {o:?}")),
    }
}

/// Publish `data` (at most `segment_chunks` × [`CHUNK_SIZE`] bytes) as the next signed
/// segment of live stream `name`, cut into chunks of [`CHUNK_SIZE`] bytes (the last
/// one may be shorter). Viewers waiting for it are served at once.
pub async fn live_push(node: &NodeHandle, name: [u8; 20], data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    let chunks = data
        .chunks(CHUNK_SIZE as usize)
        .map(<[u8]>::to_vec)
        .collect();
    let cmd = Command::LivePush {
        hash_name: name,
        chunks,
    };
    match node.command(cmd).await.map_err(|e| e.to_string())? {
        CommandOk::Done => Ok(()),
        o => Err(format!("unexpected answer {o:?}")),
    }
}

/// What a download reports, in order: `Info` once, then `Progress` and `Data` as they
/// come, then `Done` last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetUpdate {
    /// The verified manifest.
    Info {
        /// File size in bytes.
        size: u64,
        /// MIME type.
        mime: String,
    },
    /// Verified chunks so far, of the total.
    Progress {
        /// Verified chunks.
        verified: u64,
        /// All chunks.
        total: u64,
    },
    /// Verified bytes at `offset` of the file (in order, skipping held ranges).
    Data {
        /// File offset.
        offset: u64,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// The download ended: `Err` says why it failed.
    Done(Result<(), String>),
}

/// Download `hash_name` on `node`; `held` lists chunk ranges (`start..end`) already held
/// from an earlier run (never fetched again). The receiver yields [`GetUpdate`]s; drop
/// it to stop reading (the download is then cancelled).
pub async fn get(
    node: &NodeHandle,
    hash_name: [u8; 20],
    held: Vec<(u64, u64)>,
) -> Result<Receiver<GetUpdate>, String> {
    let hash_name = HashName::new(&hash_name).map_err(|e| format!("{e:?}"))?;
    follow(node, Command::Get { hash_name, held }).await
}

/// Join live stream `hash_name` on `node` (the ORDB starts it 2 windows behind the
/// newest chunk). The receiver yields `Info` (size 0), then `Data` in stream order
/// (offsets count the bytes read; chunks the window moved past are skipped); it ends
/// only if the download fails. Drop it to leave the stream.
pub async fn stream(node: &NodeHandle, hash_name: [u8; 20]) -> Result<Receiver<GetUpdate>, String> {
    let hash_name = HashName::new(&hash_name).map_err(|e| format!("{e:?}"))?;
    follow(node, Command::GetLive { hash_name }).await
}

/// Start download command `cmd` and turn its events and reads into [`GetUpdate`]s.
async fn follow(node: &NodeHandle, cmd: Command) -> Result<Receiver<GetUpdate>, String> {
    let events = node.events();
    let h = match node.command(cmd).await.map_err(|e| e.to_string())? {
        CommandOk::Download(h) => h,
        o => return Err(format!("unexpected answer {o:?}")),
    };
    // Bounded: a slow consumer slows the reads, and the core's window then the ORDBs.
    let (tx, rx) = bounded(64);
    let node = node.clone();
    smol::spawn(async move {
        loop {
            let ev = async { events.recv().await.ok().map(Some) }
                .or(async {
                    smol::Timer::after(Duration::from_millis(300)).await;
                    Some(None)
                })
                .await;
            let Some(ev) = ev else {
                // The node stopped.
                let _ = tx.send(GetUpdate::Done(Err("node stopped".into()))).await;
                return;
            };
            let mut done = None;
            match ev {
                Some(Event::ContentInfo { handle, size, mime }) if handle == h => {
                    let sent = tx.send(GetUpdate::Info { size, mime }).await;
                    if sent.is_err() {
                        break;
                    }
                }
                Some(Event::ContentProgress {
                    handle,
                    verified_chunks,
                    total_chunks,
                }) if handle == h => {
                    let p = GetUpdate::Progress {
                        verified: verified_chunks,
                        total: total_chunks,
                    };
                    if tx.send(p).await.is_err() {
                        break;
                    }
                }
                Some(Event::ContentDone { handle, result }) if handle == h => {
                    done = Some(result.map_err(|e| format!("{e:?}")));
                }
                _ => {}
            }
            // Read whatever is ready (on any wake-up: a missed Readable costs a tick).
            loop {
                let r = node.with_node_mut(move |n, _| read_some(n, h)).await;
                match r {
                    Ok(Some((offset, bytes))) => {
                        if tx.send(GetUpdate::Data { offset, bytes }).await.is_err() {
                            let _ = node.command(Command::CancelGet(h)).await;
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        let _ = tx.send(GetUpdate::Done(Err("node stopped".into()))).await;
                        return;
                    }
                }
            }
            if let Some(result) = done {
                let _ = tx.send(GetUpdate::Done(result)).await;
                return;
            }
        }
        let _ = node.command(Command::CancelGet(h)).await;
    })
    .detach();
    Ok(rx)
}

fn read_some(node: &mut onionpeer_core::node::Node, h: DownloadHandle) -> Option<(u64, Vec<u8>)> {
    let mut buf = vec![0u8; 1 << 16];
    let (off, n) = node.read_content(h, &mut buf)?;
    buf.truncate(n);
    Some((off, buf))
}
