#!/usr/bin/env bash
# The real-browser test: a loopback onionpeer network (a bridge and four peers, from the
# `onionpeer` binary) and Debian's headless Chromium loading the bridge's page, whose
# browser peer (the core in wasm) must join through the bridge and keep ORDB circuits.
# Everything runs in a private network namespace (`unshare -n`, lo only) when we are
# root, so nothing leaves loopback.
#
# Installs what it needs when missing: chromium, nodejs/npm (apt, as root), the wasm32
# target and wasm-bindgen-cli (runtimes/wasm/build.sh), playwright-core (npm, here).
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
  cargo build -p onionpeer --locked
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

"$bin" bridge --or-port "127.0.0.1:$base" --ws "127.0.0.1:$((base + 80))" \
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

# Scenario A's file: ~1 MB of random bytes, seeded by the first native peer.
head -c "${SEED_BYTES:-1000000}" /dev/urandom >"$work/seed.bin"
for i in $(seq "$peers"); do
  extra=()
  [ "$i" = 1 ] && extra=(--seed "$work/seed.bin")
  "$bin" peer --or-port "127.0.0.1:$((base + i))" --bridge "$line" "${extra[@]}" >"$work/peer$i.log" 2>&1 &
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
hash=""
for _ in $(seq 300); do
  hash=$(sed -n 's/^hash_name //p' "$work/peer1.log")
  [ -n "$hash" ] && break
  sleep 0.1
done
[ -n "$hash" ] || { cat "$work/peer1.log"; echo "peer 1 did not seed"; exit 1; }
echo "peer 1 seeds $(stat -c %s "$work/seed.bin") bytes as $hash"
sleep 2

# What test.mjs needs for the downloads: scenario A's name and file; for scenario B, how
# to start a native peer that downloads what the browser seeds.
export SEED_HASH="$hash" SEED_FILE="$work/seed.bin" ONIONPEER_BIN="$bin" \
  BRIDGE_LINE="$line" GET_OR_PORT="127.0.0.1:$((base + peers + 1))" WORK="$work"

set +e
node "$here/test.mjs" "http://127.0.0.1:$((base + 80))/" "${TIMEOUT:-90}" | tee "$work/test.log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
  for f in "$work"/*.log; do echo "== $f"; tail -20 "$f"; done
fi
exit "$status"
