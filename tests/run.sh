#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need when missing, then
# runs every test of the workspace with one shared build.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

log "toolchain"
rustc --version
cargo --version
command -v rustup >/dev/null && { rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy; }

log "system packages"
# A real `tor` is the reference for the interop suites.
need_apt=()
command -v tor >/dev/null || need_apt+=(tor)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  else
    echo "missing ${need_apt[*]}: run as root, or install them (apt-get install ${need_apt[*]})"; exit 1
  fi
fi
# Debian starts a system tor on install; the tests start their own, on loopback only.
if command -v systemctl >/dev/null; then systemctl stop tor >/dev/null 2>&1 || true; fi
pkill -x tor >/dev/null 2>&1 || true
tor --version | head -1

log "core purity (no clocks, sockets, OS randomness, threads, random-hash maps or unsafe in core/)"
if grep -rnE 'std::net|Instant::now|SystemTime::now|thread_rng|OsRng|std::thread|unsafe |std::collections::(HashMap|HashSet)' core/src \
    | grep -vE ':[0-9]+:\s*(//|\*)'; then
  echo "core/ must stay pure (see DESIGN.md)"; exit 1
fi

log "format"
cargo fmt --all -- --check

log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "core builds without std, and for the browser (wasm32)"
cargo build -p onionpeer-core --no-default-features --locked
if command -v rustup >/dev/null; then
  rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  cargo build -p onionpeer-core --no-default-features --target wasm32-unknown-unknown --locked
fi

log "tests"
out=$(mktemp)
stamp="$out.stamp"
touch "$stamp"
trap 'rm -f "$out" "$stamp"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# The CLI binary the tests just built (for its integration tests) serves the browser test.
if [ target/debug/onionpeer -nt "$stamp" ]; then export ONIONPEER_BIN_FRESH=1; fi

log "real browser: the core in wasm, in Debian's headless Chromium, joins a loopback network"
# Installs chromium, nodejs/npm, ffmpeg, wasm-bindgen-cli and playwright-core when missing; runs in
# a private network namespace when root (tests/browser/run.sh).
set +e
tests/browser/run.sh
browser=$?
set -e
[ "$browser" = 0 ] && echo "browser: passed" || echo "browser: FAILED"
[ "$status" = 0 ] && status=$browser
log "summary"
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$out"
exit "$status"
