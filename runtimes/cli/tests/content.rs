//! Real processes on 127.0.0.1: a bridge, a few peers, `seed` publishes a file and `get`
//! fetches it through the ORDBs byte-exact; a `get` interrupted mid-way resumes.

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
    onionpeer()
        .args(["get", hash, "-o"])
        .arg(out)
        .args(["--bridge", bridge, "--timeout", "50"])
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
    let (_bridge, line) = start(
        &[
            "bridge",
            "--or-port",
            "127.0.0.1:0",
            "--ws",
            "127.0.0.1:0",
            "--site",
            dir.to_str().unwrap(),
        ],
        "relay line:",
    );
    let mut peers = Vec::new();
    for _ in 0..3 {
        peers.push(start(
            &["peer", "--or-port", "127.0.0.1:0", "--bridge", &line],
            "relay line:",
        ));
    }
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
