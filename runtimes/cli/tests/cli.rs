//! The `onionpeer` binary end to end: `demo` fetches and verifies a file through its own
//! network, every subcommand has `--help`, and a config file is read.

use std::process::Command;

fn onionpeer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_onionpeer"))
}

#[test]
fn demo_fetches_and_verifies_a_file() {
    let out = onionpeer()
        .args(["demo", "--size-mib", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "link up",
        "circuit",
        "stream",
        "MiB/s",
        "SHA-256 verified",
        "through the ORDBs",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["proxy", "--help"],
        &["relay", "--help"],
        &["demo", "--help"],
        &["peer", "--help"],
        &["bridge", "--help"],
        &["seed", "--help"],
        &["get", "--help"],
        &["live", "--help"],
        &["stream", "--help"],
    ] {
        let out = onionpeer().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

#[test]
fn demo_reads_its_config_file() {
    let dir = std::env::temp_dir().join(format!("onionpeer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("onionpeer.toml");
    std::fs::write(
        &file,
        "[demo]\nsize_mib = 1\nrelays = 3\nfirst_hop = \"fast\"\n",
    )
    .unwrap();
    let out = onionpeer()
        .arg("--config")
        .arg(&file)
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("3 relays"), "{stdout}");
    assert!(stdout.contains("received 1048576 bytes"), "{stdout}");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[demo]\nsize = 1\n").unwrap();
    let out = onionpeer()
        .arg("--config")
        .arg(&bad)
        .arg("demo")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn relay_with_webrtc_serves_its_signalling_endpoint() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = onionpeer()
        .args(["relay", "--webrtc", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split_whitespace()
        .find_map(|w| w.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    assert!(first.contains("WebRTC"), "{first}");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /offer HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // Not an SDP offer: refused, but by the node's signalling endpoint.
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("Access-Control-Allow-Origin: *"), "{reply}");
}
