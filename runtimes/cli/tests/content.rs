//! Real processes on 127.0.0.1: a bridge, a few peers, `seed` publishes a file and `get`
//! fetches it through the ORDBs byte-exact; a `get` interrupted mid-way resumes; a `seed`
//! restarted from its `--store` alone serves again; `live` publishes a pipe and `stream`
//! writes it out; the same seed and get with every node linked only over WebRTC
//! (`--webrtc`, signalling over HTTP and through the network).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn onionpeer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_onionpeer"))
}

/// Kills its process when dropped (a failing test leaves nothing running).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `args`, and wait for a stdout line starting with `prefix`: the rest of it.
fn start(args: &[&str], prefix: &str) -> (Proc, String) {
    let mut child = onionpeer()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let want = prefix.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if !sent && let Some(rest) = line.strip_prefix(&want) {
                let _ = tx.send(rest.trim().to_string());
                sent = true;
            }
        }
    });
    let got = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no {prefix:?} line from {args:?}"));
    (Proc(child), got)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn get(hash: &str, out: &Path, bridge: &str) -> Child {
    get_with(hash, out, bridge, &[])
}

/// `get` with `extra` flags (how it links).
fn get_with(hash: &str, out: &Path, bridge: &str, extra: &[&str]) -> Child {
    onionpeer()
        .args(["get", hash, "-o"])
        .arg(out)
        .args(["--bridge", bridge, "--timeout", "50"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onionpeer-content-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn seed_and_get_through_the_ordbs_and_resume() {
    let dir = temp_dir();
    let (line, peers) = network(&dir, 3);
    let data = pattern(1_000_000);
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let store = dir.join("seed-store");
    let (_seeder, hash) = start(
        &[
            "seed",
            src.to_str().unwrap(),
            "--bridge",
            &line,
            "--store",
            store.to_str().unwrap(),
        ],
        "hash_name:",
    );
    assert_eq!(hash.len(), 40, "{hash}");

    // A whole download.
    let out = dir.join("out.bin");
    let started = Instant::now();
    let st = get(&hash, &out, &line).wait().unwrap();
    assert!(st.success(), "get failed after {:?}", started.elapsed());
    assert!(std::fs::read(&out).unwrap() == data, "not byte-exact");

    // The resume path: a partial file and its state, as a killed `get` leaves them
    // (the first 700 chunks verified), with garbage after them that must be redone.
    let out2 = dir.join("out2.bin");
    let part = dir.join("out2.bin.part");
    let mut partial = data[..700 * 486].to_vec();
    partial.extend_from_slice(&[0xAA; 1000]);
    std::fs::write(&part, &partial).unwrap();
    std::fs::write(
        dir.join("out2.bin.part.state"),
        "chunk_size 486\nchunks 700\n",
    )
    .unwrap();
    let st = get(&hash, &out2, &line).wait().unwrap();
    assert!(st.success());
    assert!(
        std::fs::read(&out2).unwrap() == data,
        "resumed file not byte-exact"
    );
    assert!(!part.exists() && !dir.join("out2.bin.part.state").exists());

    // A `get` killed mid-way, then run again to completion.
    let out3 = dir.join("out3.bin");
    let mut g = get(&hash, &out3, &line);
    let t = Instant::now();
    let part3 = dir.join("out3.bin.part");
    while t.elapsed() < Duration::from_secs(40)
        && std::fs::metadata(&part3).map_or(0, |m| m.len()) < 100_000
        && !out3.exists()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = g.kill();
    let _ = g.wait();
    let st = get(&hash, &out3, &line).wait().unwrap();
    assert!(st.success());
    assert!(
        std::fs::read(&out3).unwrap() == data,
        "rerun file not byte-exact"
    );
    drop(peers);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bridge and `n` peers: the bridge's relay line and the processes.
fn network(dir: &Path, n: usize) -> (String, Vec<Proc>) {
    network_with(dir, n, &[])
}

/// A bridge and `n` peers, all started with `extra` flags (how they link).
fn network_with(dir: &Path, n: usize, extra: &[&str]) -> (String, Vec<Proc>) {
    let mut args = vec![
        "bridge",
        "--or-port",
        "127.0.0.1:0",
        "--ws",
        "127.0.0.1:0",
        "--site",
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    let (bridge, line) = start(&args, "relay line:");
    let mut procs = vec![bridge];
    for _ in 0..n {
        let mut args = vec!["peer", "--or-port", "127.0.0.1:0", "--bridge", &line];
        args.extend(extra);
        procs.push(start(&args, "relay line:").0);
    }
    (line, procs)
}

/// A directory of its own for one test (the others remove theirs when done).
fn temp_sub(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onionpeer-content-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `seed FILE --store DIR`, killed; `seed --store DIR` (no file) serves it again: a
/// `get` completes byte-exact (no other node held the file).
#[test]
fn a_seed_restarted_from_its_store_serves_again() {
    let dir = temp_sub("restart");
    let (line, peers) = network(&dir, 3);
    let data = pattern(300_000);
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let store = dir.join("store");
    let store_s = store.to_str().unwrap();
    let (seeder, hash) = start(
        &[
            "seed",
            src.to_str().unwrap(),
            "--bridge",
            &line,
            "--store",
            store_s,
        ],
        "hash_name:",
    );
    std::thread::sleep(Duration::from_secs(2));
    drop(seeder);
    std::fs::remove_file(&src).unwrap();
    // The restarted seed finds the file in its store, and serves it once joined.
    let (_seeder, held) = start(&["seed", "--bridge", &line, "--store", store_s], "serving:");
    assert_eq!(held, hash);
    let out = dir.join("out.bin");
    let st = get(&hash, &out, &line).wait().unwrap();
    assert!(st.success(), "get from the restarted seed failed");
    assert!(std::fs::read(&out).unwrap() == data, "not byte-exact");
    drop(peers);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `live` fed a known byte sequence through a pipe (40 segments, then one every
/// 300 ms); `stream` joins late and writes a byte-exact, segment-aligned run of it that
/// starts behind the head, not at the beginning, and reaches past what had been
/// published when it joined.
#[test]
fn live_from_a_pipe_and_stream_to_stdout() {
    use std::io::{Read, Write};
    let dir = temp_sub("live");
    let (line, peers) = network(&dir, 3);
    const SEG: usize = 16 * 486;
    let data = pattern(400 * SEG);
    let mut live = onionpeer()
        .args([
            "live",
            "--bridge",
            &line,
            "--segment-chunks",
            "16",
            "--flush-ms",
            "5000",
        ])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("live.err")).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = live.stdin.take().unwrap();
    let out = live.stdout.take().unwrap();
    let live = Proc(live);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(h) = l.strip_prefix("hash_name:") {
                let _ = tx.send(h.trim().to_string());
            }
        }
    });
    let hash = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("live printed no hash_name");
    // Segments as a live source gives them: 40 at once, then one every 300 ms until the
    // stream is done.
    let published = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feed = {
        let (data, published, stop) = (data.clone(), published.clone(), stop.clone());
        std::thread::spawn(move || {
            for (i, seg) in data.chunks(SEG).enumerate() {
                if stop.load(std::sync::atomic::Ordering::SeqCst) || stdin.write_all(seg).is_err() {
                    return;
                }
                let _ = stdin.flush();
                published.store((i + 1) * SEG, std::sync::atomic::Ordering::SeqCst);
                if i >= 40 {
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let at_join = published.load(std::sync::atomic::Ordering::SeqCst);
    // The join is 2 windows (32 segments of 16 chunks) behind the newest chunk: the
    // first bytes are old ones, the last ones were published after the join.
    let want = 45 * SEG;
    let mut stream = onionpeer()
        .args([
            "stream",
            &hash,
            "--bridge",
            &line,
            "--max-bytes",
            &want.to_string(),
        ])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stream.err")).unwrap())
        .spawn()
        .unwrap();
    let mut so = stream.stdout.take().unwrap();
    let stream = Proc(stream);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let _ = so.read_to_end(&mut got);
        let _ = tx.send(got);
    });
    let Ok(got) = rx.recv_timeout(Duration::from_secs(100)) else {
        panic!("stream did not end (logs in {})", dir.display());
    };
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(got.len(), want, "stream wrote {} bytes", got.len());
    let at = (0..data.len() / SEG)
        .map(|s| s * SEG)
        .find(|&o| data.get(o..o + got.len()) == Some(&got[..]))
        .expect("the stream's bytes are not a segment-aligned run of the input");
    assert!(
        at >= SEG,
        "the stream started at the beginning, not behind the head"
    );
    assert!(
        at + got.len() > at_join,
        "the stream ({at}..{}) did not go past what was published when it joined ({at_join})",
        at + got.len()
    );
    drop((stream, live, peers));
    let _ = feed.join();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bridge, 3 peers, `seed` and `get`, every one with `--webrtc`: all their links are
/// WebRTC data channels; the file arrives byte-exact.
#[test]
fn seed_and_get_over_webrtc_links() {
    let dir = temp_sub("webrtc");
    let rtc = ["--webrtc", "127.0.0.1:0"];
    let (line, peers) = network_with(&dir, 3, &rtc);
    let data = pattern(300_000);
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let mut args = vec!["seed", src.to_str().unwrap(), "--bridge", &line];
    args.extend(rtc);
    let (_seeder, hash) = start(&args, "hash_name:");
    assert_eq!(hash.len(), 40, "{hash}");
    let out = dir.join("out.bin");
    let started = Instant::now();
    let st = get_with(&hash, &out, &line, &rtc).wait().unwrap();
    assert!(st.success(), "get failed after {:?}", started.elapsed());
    assert!(std::fs::read(&out).unwrap() == data, "not byte-exact");
    drop(peers);
    let _ = std::fs::remove_dir_all(&dir);
}
