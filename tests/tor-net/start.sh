#!/usr/bin/env bash
# Start a private Tor test network on 127.0.0.1: 3 directory authorities and 3 relays
# (one an exit), all real `tor` processes, in a fresh temp dir.
#
# Usage: tests/tor-net/start.sh [--capture DIR] [--keep-running]
#   Waits until an authority serves a microdesc consensus listing every relay (Exit and
#   Guard flags included) and every tor holds a consensus listing them all, then prints
#   "TORNET_DIR=<dir>" and
#   "TORNET_DIRAUTH=<file of torrc DirAuthority lines>".
#   --capture DIR   also fetch the microdesc consensus, the authority certificates and
#                   every microdescriptor into DIR (the core's dir/ fixtures), then exit.
#   --keep-running  keep the network up until this script is killed (for interop suites);
#                   without it the script exits (and stops tor) once the consensus is up.
# Environment: TORNET_BASE_PORT (default 17100): ORPorts base+0.., DirPorts base+50..
#              TORNET_TIMEOUT   (default 300 s) to wait for the consensus.
#              TORNET_LOG       (default notice): the tors' log level (info, debug).
#              TORNET_KEEP_DIR=1 keeps the temp dir (torrcs, logs) after the script ends.
# Every tor started here is stopped on exit (pids recorded, trap on EXIT).
set -euo pipefail

CAPTURE=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --capture) CAPTURE="$2"; shift 2 ;;
    --keep-running) KEEP=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

command -v tor >/dev/null && command -v tor-gencert >/dev/null || {
  echo "tor and tor-gencert are required (Debian package: tor)" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 2; }

BASE=${TORNET_BASE_PORT:-17100}
TIMEOUT=${TORNET_TIMEOUT:-300}
NET=$(mktemp -d "${TMPDIR:-/tmp}/tornet.XXXXXX")
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ "${TORNET_KEEP_DIR:-0}" != 1 ] && [ -z "${KEEP_DIR_ON_EXIT:-}" ]; then rm -rf "$NET"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

AUTHS=(auth0 auth1 auth2)
RELAYS=(relay0 relay1 exit0)
DIRAUTH="$NET/dirauth.torrc"
: >"$DIRAUTH"

common_torrc() { # name orport dirport
  cat <<EOT
TestingTorNetwork 1
DataDirectory $NET/$1
RunAsDaemon 0
Nickname $1
ContactInfo $1@tornet.invalid
Address 127.0.0.1
OutboundBindAddress 127.0.0.1
SocksPort 0
ControlPort 0
ORPort 127.0.0.1:$2
DirPort 127.0.0.1:$3
AssumeReachable 1
PublishServerDescriptor 1
ShutdownWaitLength 0
# Never reach the public network: only the DirAuthority lines below, no fallbacks.
UseDefaultFallbackDirs 0
SafeLogging 0
Log ${TORNET_LOG:-notice} file $NET/$1/notice.log
%include $DIRAUTH
EOT
}

# Authorities: v3 keys (tor-gencert), then the RSA identity fingerprint.
i=0
for a in "${AUTHS[@]}"; do
  or=$((BASE + i)); dir=$((BASE + 50 + i))
  mkdir -p "$NET/$a/keys"; chmod 700 "$NET/$a"
  (cd "$NET/$a/keys" && echo "" | tor-gencert --create-identity-key --passphrase-fd 0 -m 12 \
     -a "127.0.0.1:$dir" -i authority_identity_key -s authority_signing_key \
     -c authority_certificate >/dev/null 2>&1)
  v3=$(awk '/^fingerprint /{print $2}' "$NET/$a/keys/authority_certificate")
  fp=$(tor --list-fingerprint --DataDirectory "$NET/$a" --ORPort 1 --Nickname "$a" \
         --quiet 2>/dev/null | awk '{ $1=""; gsub(/ /,""); print }' | tail -1)
  echo "DirAuthority $a orport=$or no-v2 v3ident=$v3 127.0.0.1:$dir $fp" >>"$DIRAUTH"
  i=$((i + 1))
done

i=0
for a in "${AUTHS[@]}"; do
  or=$((BASE + i)); dir=$((BASE + 50 + i))
  { common_torrc "$a" "$or" "$dir"; cat <<EOT
AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
ExitPolicy reject *:*
V3AuthVotingInterval 10
V3AuthVoteDelay 2
V3AuthDistDelay 2
V3AuthNIntervalsValid 2
TestingV3AuthInitialVotingInterval 10
TestingV3AuthInitialVoteDelay 2
TestingV3AuthInitialDistDelay 2
TestingV3AuthVotingStartOffset 0
TestingDirAuthVoteExit *
TestingDirAuthVoteGuard *
TestingDirAuthVoteHSDir *
TestingMinExitFlagThreshold 0
AuthDirMaxServersPerAddr 0
EOT
  } >"$NET/$a/torrc"
  i=$((i + 1))
done

i=3
for r in "${RELAYS[@]}"; do
  or=$((BASE + i)); dir=$((BASE + 50 + i))
  mkdir -p "$NET/$r"; chmod 700 "$NET/$r"
  { common_torrc "$r" "$or" "$dir"
    if [ "$r" = exit0 ]; then cat <<EOT
ExitRelay 1
ExitPolicyRejectPrivate 0
ExitPolicy accept 127.0.0.1:*
ExitPolicy accept *:80
ExitPolicy accept *:443
ExitPolicy reject *:*
EOT
    else echo "ExitRelay 0"; echo "ExitPolicy reject *:*"; fi
  } >"$NET/$r/torrc"
  i=$((i + 1))
done

for n in "${AUTHS[@]}" "${RELAYS[@]}"; do
  tor -f "$NET/$n/torrc" --quiet >"$NET/$n/stdout.log" 2>&1 &
  PIDS+=($!)
  echo "$!" >"$NET/$n/pid"
done

# Wait for a microdesc consensus with all 6 routers and an Exit.
URL="http://127.0.0.1:$((BASE + 50))"
deadline=$((SECONDS + TIMEOUT))
while :; do
  if curl -sf --max-time 5 "$URL/tor/status-vote/current/consensus-microdesc" -o "$NET/consensus-microdesc" 2>/dev/null \
     && [ "$(grep -c '^r ' "$NET/consensus-microdesc")" -ge 6 ] \
     && grep -q '^s .*Exit' "$NET/consensus-microdesc"; then
    break
  fi
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a tor process died; logs in $NET" >&2; KEEP_DIR_ON_EXIT=1; exit 1; }; done
  if [ $SECONDS -ge $deadline ]; then echo "no consensus after ${TIMEOUT}s; logs in $NET" >&2; KEEP_DIR_ON_EXIT=1; exit 1; fi
  sleep 3
done

# ...and until every tor holds a consensus listing all 6: a relay without one refuses
# streams from relays it does not know yet ("open a stream from unknown relay"), and a
# relay whose first fetches got 404 (before the first vote) backs off for a while.
knows_all() { # data dir
  local f
  for f in "$1/cached-microdesc-consensus" "$1/cached-consensus"; do
    [ -f "$f" ] && [ "$(grep -c '^r ' "$f")" -ge 6 ] && return 0
  done
  return 1
}
while :; do
  missing=()
  for n in "${AUTHS[@]}" "${RELAYS[@]}"; do knows_all "$NET/$n" || missing+=("$n"); done
  [ ${#missing[@]} = 0 ] && break
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a tor process died; logs in $NET" >&2; KEEP_DIR_ON_EXIT=1; exit 1; }; done
  if [ $SECONDS -ge $deadline ]; then echo "no consensus at ${missing[*]} after ${TIMEOUT}s; logs in $NET" >&2; KEEP_DIR_ON_EXIT=1; exit 1; fi
  sleep 1
done

echo "TORNET_DIR=$NET"
echo "TORNET_DIRAUTH=$DIRAUTH"

if [ -n "$CAPTURE" ]; then
  mkdir -p "$CAPTURE"
  cp "$DIRAUTH" "$CAPTURE/dirauth.torrc"
  # The consensus just fetched and the certificates of its signers.
  cp "$NET/consensus-microdesc" "$CAPTURE/consensus-microdesc"
  curl -sf "$URL/tor/keys/all" -o "$CAPTURE/authority-certs"
  digests=$(awk '/^m /{print $2}' "$CAPTURE/consensus-microdesc" | paste -sd- -)
  curl -sf "$URL/tor/micro/d/$digests" -o "$CAPTURE/microdescs"
  echo "captured into $CAPTURE"
fi

if [ "$KEEP" = 1 ]; then
  echo "network up; stop with kill $$"
  while :; do sleep 3600; done
fi
