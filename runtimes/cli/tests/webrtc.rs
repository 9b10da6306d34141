//! Real processes on 127.0.0.1 linked only over WebRTC: `bridge --webrtc`, peers with
//! `peer --webrtc`, `seed --webrtc` publishes a file and `get --webrtc` fetches it
//! through the ORDBs byte-exact.

use std::io::{BufRead, BufReader};
use std::path::Path;
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
    let child = Proc(child);
    let got = rx
        .recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("no {prefix:?} line from {args:?}"));
    (child, got)
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
        .args([
            "--bridge",
            bridge,
            "--timeout",
            "90",
            "--webrtc",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn seed_and_get_over_webrtc_links() {
    let dir = std::env::temp_dir().join(format!("onionpeer-webrtc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rtc = ["--webrtc", "127.0.0.1:0", "--or-port", "127.0.0.1:0"];
    let mut args = vec![
        "bridge",
        "--ws",
        "127.0.0.1:0",
        "--site",
        dir.to_str().unwrap(),
    ];
    args.extend(rtc);
    let (_bridge, line) = start(&args, "relay line:");
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut args = vec!["peer", "--bridge", &line];
        args.extend(rtc);
        peers.push(start(&args, "relay line:"));
    }
    let data = pattern(300_000);
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let mut args = vec!["seed", src.to_str().unwrap(), "--bridge", &line];
    args.extend(rtc);
    let (_seeder, hash) = start(&args, "hash_name:");
    assert_eq!(hash.len(), 40, "{hash}");
    let out = dir.join("out.bin");
    let started = Instant::now();
    let st = get(&hash, &out, &line).wait().unwrap();
    assert!(st.success(), "get failed after {:?}", started.elapsed());
    assert!(std::fs::read(&out).unwrap() == data, "not byte-exact");
    drop(peers);
    let _ = std::fs::remove_dir_all(&dir);
}
