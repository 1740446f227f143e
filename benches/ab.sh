#!/usr/bin/env bash
# A/B of two builds of our registry-server in one run, rounds alternating, so that a
# change's cost is measured against the same machine state.
#
# Usage: benches/ab.sh OLD_SERVER NEW_SERVER [ROUNDS]
#
#   OLD_SERVER, NEW_SERVER   registry-server binaries (e.g. a release build of an earlier
#                            commit in a git worktree, and target/release/examples/registry-server)
#   ROUNDS                   rounds per binary and auth mode (default 3)
#   AB_ONLY                  the harness tests to run (default `manifest,head-blob`: the
#                            authenticated hot paths; `small-images`: 200 small images pushed
#                            with 4 in flight)
#   AB_AUTH                  the ways to authenticate (default `token basic`)
#
# Both servers run with their defaults (fsync, auth on, access logs to a file) on fresh data
# directories; each round runs `benches/load --only $AB_ONLY` once per way to authenticate,
# 32 connections for 5 s. Prints the RESULT lines prefixed with `old|new token|basic ROUND`,
# then every figure, rounds sorted.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,15p' "$0"; exit 2; }
OLD="$1"; NEW="$2"; ROUNDS="${3:-3}"
ONLY="${AB_ONLY:-manifest,head-blob}"; AUTHS="${AB_AUTH:-token basic}"
cd "$(dirname "$0")/.."
HARNESS="$(cargo bench --bench load --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
[ -x "$HARNESS" ] || { echo "ab: harness executable not found" >&2; exit 1; }

WORK="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/registry-ab.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p=$((20000 + RANDOM % 30000))
    while port_busy "$p"; do p=$((p + 1)); done
    echo "$p"
}
PASSWORD="bench-$RANDOM$RANDOM"
start() { # name binary port
    env -i PATH="$PATH" REGISTRY_LOG="info,sqlx=warn" REGISTRY_ADMIN_PASSWORD="$PASSWORD" \
        "$2" --listen "127.0.0.1:$3" --data-dir "$WORK/$1-data" >"$WORK/$1.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do port_busy "$3" && return 0; sleep 0.1; done
    echo "ab: $1 did not start; its log:" >&2; cat "$WORK/$1.log" >&2; exit 1
}
OPORT=$(free_port); start old "$OLD" "$OPORT"; OPID=${PIDS[-1]}
NPORT=$(free_port); start new "$NEW" "$NPORT"; NPID=${PIDS[-1]}

for round in $(seq "$ROUNDS"); do
    for who in old new; do
        port=$OPORT; pid=$OPID
        [ "$who" = new ] && { port=$NPORT; pid=$NPID; }
        for auth in $AUTHS; do
            "$HARNESS" --url "http://127.0.0.1:$port" --pid "$pid" --rounds 1 --concurrency 32 \
                --duration 5 --user admin --password "$PASSWORD" --auth "$auth" \
                --only "$ONLY" 2>>"$WORK/harness.err" |
                grep '^RESULT ' | sed "s/^/$who $auth $round /" | tee -a "$WORK/results"
        done
    done
done
echo
echo "figures (rounds sorted):"
awk '$5 !~ /rss/ { k = $1 " " $2 " " $5; v[k] = v[k] " " $6 } END { for (k in v) print k ":" v[k] }' \
    "$WORK/results" | sort | while read -r line; do
    key="${line%%:*}"; vals="$(echo "${line#*:}" | tr ' ' '\n' | grep . | sort -g | tr '\n' ' ')"
    echo "$key: $vals"
done
