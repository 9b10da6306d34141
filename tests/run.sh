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

log "core purity (no clocks, sockets, OS randomness, threads, random-hash maps or unsafe in core/)"
if grep -rnE 'std::net|Instant::now|SystemTime::now|thread_rng|OsRng|std::thread|unsafe |std::collections::(HashMap|HashSet)' core/src \
    | grep -vE ':[0-9]+:\s*(//|\*)'; then
  echo "core/ must stay pure (see DESIGN.md)"; exit 1
fi

log "format"
cargo fmt --all -- --check

log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "core builds without std"
cargo build -p onionpeer-core --no-default-features --locked

log "tests"
cargo test --workspace --locked
