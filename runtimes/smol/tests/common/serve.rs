//! A byte source for transfer tests and benches, shared by the smol and WebRTC runtimes'
//! tests (included with `#[path]`).
#![allow(dead_code)] // each user takes what it needs

use std::sync::Arc;
use std::time::Duration;

use smol::io::AsyncWriteExt;
use smol::net::TcpListener;

/// A recognizable byte pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// Send `data` to every client of `l`, then close; optionally slowly (a pause after
/// every 64 KiB).
pub fn serve(l: TcpListener, data: Arc<Vec<u8>>, pace: Option<Duration>) {
    smol::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let data = data.clone();
            smol::spawn(async move {
                for c in data.chunks(64 << 10) {
                    if s.write_all(c).await.is_err() {
                        return;
                    }
                    if let Some(p) = pace {
                        smol::Timer::after(p).await;
                    }
                }
                let _ = s.close().await;
            })
            .detach();
        }
    })
    .detach();
}
