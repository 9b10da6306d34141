#!/usr/bin/env bash
# The real-browser test: a loopback onionpeer network (a bridge and four peers, from the
# `onionpeer` binary) and Debian's headless Chromium loading the bridge's page, whose
# browser peer (the core in wasm) must join through the bridge and keep ORDB circuits.
# Every native node also takes browser links over WebRTC (`--browser-webrtc`; native
# nodes link to each other over TLS). Scenarios (test.mjs): A native seeds → browser downloads (over
# WebSocket), B browser seeds → native downloads, M a WebM played through MSE, D a
# download resumed over a page reload, C the browser joins and downloads over WebRTC only.
# Everything runs in a private network namespace (`unshare -n`, lo only) when we are
# root, so nothing leaves loopback.
#
# Installs what it needs when missing: chromium, nodejs/npm, ffmpeg (apt, as root), the
# wasm32 target and wasm-bindgen-cli (runtimes/wasm/build.sh), playwright-core (npm, here).
#
#   tests/browser/run.sh            # build, install, run; prints the timings
#   PEERS=6 tests/browser/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

if [ "${1:-}" != "--in-netns" ]; then
  need=()
  command -v chromium >/dev/null || command -v chromium-headless-shell >/dev/null || need+=(chromium)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  command -v ffmpeg >/dev/null || need+=(ffmpeg)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${need[@]}"
    else
      echo "missing ${need[*]}: run as root, or apt-get install ${need[*]}"; exit 1
    fi
  fi
  [ -d "$here/node_modules/playwright-core" ] || (cd "$here" && npm install --no-audit --no-fund --silent)
  site="$root/target/onionpeer-site"
  "$root/runtimes/wasm/build.sh" "$site"
  # tests/run.sh passes ONIONPEER_BIN_FRESH=1 when its test step has just built the CLI
  # (its integration tests run it): reuse that build instead of building it again with
  # another feature set (5 minutes on 2 cores).
  [ "${ONIONPEER_BIN_FRESH:-}" = 1 ] && [ -x "$root/target/debug/onionpeer" ] || cargo build -p onionpeer --locked
  if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    exec unshare -n bash "$0" --in-netns
  fi
  echo "(not root: running on the host's loopback)"
fi

# From here on: (usually) inside the private namespace.
if [ "${1:-}" = "--in-netns" ]; then ip link set lo up; fi
work="$(mktemp -d)"
export TMPDIR="$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bin="$root/target/debug/onionpeer"
peers="${PEERS:-4}"
base="${PORT_BASE:-19000}"
export RUST_LOG="${RUST_LOG:-warn}"

# The logs exist before their writers start: the waits below read them at once.
touch "$work/bridge.log"
"$bin" bridge --or-port "127.0.0.1:$base" --ws "127.0.0.1:$((base + 80))" \
  --browser-webrtc "127.0.0.1:$((base + 90))" \
  --site "$root/target/onionpeer-site" >"$work/bridge.log" 2>&1 &
pids+=($!)
line=""
for _ in $(seq 100); do
  line=$(sed -n 's/^relay line: *//p' "$work/bridge.log")
  [ -n "$line" ] && break
  sleep 0.1
done
[ -n "$line" ] || { cat "$work/bridge.log"; echo "the bridge did not start"; exit 1; }
echo "bridge: $line"

# Scenario A's file: ~1 MB of random bytes, seeded by the first native peer; scenario
# M's video (3 s of VP8 WebM) by the second; scenario D's file (4 MB) by the third.
head -c "${SEED_BYTES:-1000000}" /dev/urandom >"$work/seed.bin"
head -c "${RESUME_BYTES:-4000000}" /dev/urandom >"$work/resume.bin"
video_mime='video/webm; codecs="vp8"'
ffmpeg -loglevel error -f lavfi -i testsrc=duration=3:size=160x120:rate=10 \
  -c:v libvpx -b:v 300k -g 10 -f webm "$work/video.webm"
[ "$peers" -ge 3 ] || { echo "PEERS must be at least 3"; exit 1; }
for i in $(seq "$peers"); do
  # Peers 1-3 are `onionpeer seed` (a peer that publishes a file), the rest plain peers.
  cmd=(peer)
  [ "$i" = 1 ] && cmd=(seed "$work/seed.bin")
  [ "$i" = 2 ] && cmd=(seed "$work/video.webm" --mime "$video_mime")
  [ "$i" = 3 ] && cmd=(seed "$work/resume.bin")
  touch "$work/peer$i.log"
  "$bin" "${cmd[@]}" --or-port "127.0.0.1:$((base + i))" --bridge "$line" \
    --browser-webrtc "127.0.0.1:$((base + 40 + i))" >"$work/peer$i.log" 2>&1 &
  pids+=($!)
done
# Every peer introduced by the bridge to another: the network is joined (the first one
# on its second bootstrap, once the bridge has registered the others).
for _ in $(seq 600); do
  n=$( (grep -l "bridge introduced" "$work"/peer*.log 2>/dev/null || true) | wc -l)
  [ "$n" -ge "$peers" ] && break
  sleep 0.1
done
echo "native peers joined: $n of $peers"
seeded() {
  local h=""
  for _ in $(seq 300); do
    h=$(sed -n 's/^hash_name: //p' "$work/peer$1.log")
    [ -n "$h" ] && break
    sleep 0.1
  done
  [ -n "$h" ] || { cat "$work/peer$1.log" >&2; echo "peer $1 did not seed" >&2; exit 1; }
  echo "$h"
}
hash=$(seeded 1)
echo "peer 1 seeds $(stat -c %s "$work/seed.bin") bytes as $hash"
video=$(seeded 2)
echo "peer 2 seeds a $(stat -c %s "$work/video.webm")-byte WebM ($video_mime) as $video"
resume=$(seeded 3)
echo "peer 3 seeds $(stat -c %s "$work/resume.bin") bytes as $resume"
sleep 2

# What test.mjs needs for the downloads: scenario A's name and file; for scenario B, how
# to start a native peer that downloads what the browser seeds.
export SEED_HASH="$hash" SEED_FILE="$work/seed.bin" ONIONPEER_BIN="$bin" \
  BRIDGE_LINE="$line" GET_OR_PORT="127.0.0.1:$((base + peers + 1))" WORK="$work" \
  VIDEO_HASH="$video" VIDEO_FILE="$work/video.webm" VIDEO_MIME="$video_mime" \
  RESUME_HASH="$resume" RESUME_FILE="$work/resume.bin"

set +e
node "$here/test.mjs" "http://127.0.0.1:$((base + 80))/" "${TIMEOUT:-90}" | tee "$work/test.log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
  for f in "$work"/*.log; do echo "== $f"; tail -20 "$f"; done
fi
exit "$status"
