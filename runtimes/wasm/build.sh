#!/usr/bin/env bash
# Build the browser page: the core as wasm (release), wasm-bindgen's JS glue, the driver
# and the page, into DIR (default: target/onionpeer-site). Serve it with
# `onionpeer bridge --site DIR`. Installs the wasm32 target and wasm-bindgen-cli (the
# exact version of the wasm-bindgen crate) when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/onionpeer-site}"
cd "$root"

version=$(awk '/^wasm-bindgen = /{gsub(/[^0-9.]/, "", $3); print $3}' Cargo.toml)
if command -v rustup >/dev/null; then
  rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $version\$"; then
  echo "installing wasm-bindgen-cli $version (slow, once)"
  cargo install wasm-bindgen-cli --version "$version"
fi

cargo build -p onionpeer-wasm --target wasm32-unknown-unknown --release --locked
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
  target/wasm32-unknown-unknown/release/onionpeer_wasm.wasm
cp "$here"/www/*.html "$here"/www/*.js "$out"/
echo "page built in $out"
