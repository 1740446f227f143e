#!/usr/bin/env bash
# Where a server's peak RSS comes from: one registry-server binary through the load that
# benches/compare.sh puts on "F" (default fsync, auth on), one phase at a time, with the
# server's VmHWM, VmRSS and thread count after each phase and its smaps totals at the end.
#
# Usage: benches/rss_phases.sh SERVER [VAR=VALUE...]
#
#   SERVER       a registry-server binary (e.g. target/release/examples/registry-server)
#   VAR=VALUE    extra environment for the server, e.g. GLIBC_TUNABLES=... or LD_PRELOAD=...
#   RSS_PHASES   the push phases, in order (default `push-mono push-chunked small-images`);
#                the GET manifest / HEAD blob phases (token, then Basic) always follow
#
# Full-size harness figures (1 GiB blob, 256 MiB chunked, 200 small images, 32 connections
# for 5 s), one round each, on a fresh data directory.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,14p' "$0"; exit 2; }
SERVER="$(realpath "$1")"; shift
cd "$(dirname "$0")/.."
HARNESS="$(cargo bench --bench load --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
[ -x "$HARNESS" ] || { echo "rss_phases: harness executable not found" >&2; exit 1; }

WORK="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/registry-rss.XXXXXX")"
PID=""
cleanup() {
    [ -n "$PID" ] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PASSWORD="rss-$RANDOM$RANDOM"
env -u REGISTRY_CONFIG -u REGISTRY_DURABILITY -u REGISTRY_NO_AUTH "$@" \
    REGISTRY_LOG=info,sqlx=warn REGISTRY_ADMIN_PASSWORD="$PASSWORD" \
    "$SERVER" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" && break
    sleep 0.1
done
status() {
    printf '%-14s %s threads %s\n' "$1" \
        "$(awk '/^(VmHWM|VmRSS)/ { printf "%s %.1f MiB  ", $1, $2 / 1024 }' "/proc/$PID/status")" \
        "$(ls "/proc/$PID/task" | wc -l)"
}
phase() { # label harness-args...
    local label="$1"; shift
    "$HARNESS" --url "http://127.0.0.1:$PORT" --user admin --password "$PASSWORD" --rounds 1 \
        "$@" >"$WORK/$label.out" 2>&1 || { cat "$WORK/$label.out" >&2; exit 1; }
    status "$label"
}
status start
for test in ${RSS_PHASES:-push-mono push-chunked small-images}; do
    phase "$test" --auth token --only "$test"
done
phase get-token --auth token --only manifest,head-blob
phase get-basic --auth basic --only manifest,head-blob
awk '/^(Rss|Anonymous|Pss_File):/ { printf "%s %.1f MiB  ", $1, $2 / 1024 } END { print "" }' \
    "/proc/$PID/smaps_rollup"
