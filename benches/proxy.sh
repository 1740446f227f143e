#!/usr/bin/env bash
# Pull-through cache: the first pull of a large layer through a proxy namespace vs a direct
# pull from the upstream, and a cached pull.
#
# Usage: benches/proxy.sh [--size MIB] [--rounds N] [--link-mbit N] [--out FILE]
#
#   --size MIB      layer size (default 256)
#   --rounds N      rounds (default 3); figures are medians over rounds
#   --link-mbit N   the upstream sits behind a link of N Mbit/s: everything it sends on
#                   loopback is shaped to that rate (Linux `tc` HTB on `lo`, by the
#                   upstream's port; needs root; removed on exit). The direct pull and the
#                   proxy's fetch cross that link, the proxy's answers to its clients do not:
#                   a pull-through cache next to its clients, an upstream across a network.
#   --out FILE      also write the markdown table to FILE
#
# Environment: BENCH_TMPDIR (where data directories go, default /tmp); SERVER (a
# registry-server binary to use instead of building the release one).
#
# What runs: builds registry-server (release) and starts two on loopback ports, each with
# --no-auth --durability none and a fresh data directory:
#   U  the upstream, holding one random layer per round (pushed monolithically with curl)
#   P  the proxy, --proxy up=http://U
# Per round, for a layer the proxy has never seen (so the upstream's copy is in the page
# cache for both): `curl` GET from U directly, then the first GET through P
# (/v2/up/<name>/blobs/<digest>: streamed from U while stored), then the same GET through P
# again (served from its store). Each download is checked against its digest.
#
# A second table gives, per pull, the CPU seconds (user + system) the proxy, the upstream and
# the client (curl and openssl) used, their sum over the cores (the least wall time the pull
# could take with every core busy) and the idle CPU meanwhile: on a small machine the
# stages share the cores, and a pull whose idle is near 0 is bounded by CPU, not by waiting.
set -euo pipefail

SIZE=256
ROUNDS=3
OUT=""
LINK_MBIT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --size) SIZE="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --link-mbit) LINK_MBIT="$2"; shift ;;
    -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "proxy.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.."
export LC_ALL=C
log() { echo "proxy.sh: $*" >&2; }

if [ -z "${SERVER:-}" ]; then
    log "building registry-server (release)"
    cargo build --release --example registry-server >&2
    SERVER="$PWD/target/release/examples/registry-server"
fi

WORK="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/registry-proxy-bench.XXXXXX")"
PIDS=()
cleanup() {
    [ -z "$LINK_MBIT" ] || tc qdisc del dev lo root 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
start() { # start NAME PORT ARGS...: a server on 127.0.0.1:PORT; its pid in STARTED
    local name=$1 port=$2
    shift 2
    mkdir -p "$WORK/$name"
    "$SERVER" --listen "127.0.0.1:$port" --data-dir "$WORK/$name" --no-auth --no-ui \
        --durability none "$@" >"$WORK/$name.log" 2>&1 &
    STARTED=$!
    PIDS+=($!)
    for _ in $(seq 200); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && return 0
        sleep 0.1
    done
    cat "$WORK/$name.log" >&2
    log "$name did not start"
    exit 1
}
UP=$(free_port)
PX=$(free_port)
start upstream "$UP"
UP_PID=$STARTED
start proxy "$PX" --proxy "up=http://127.0.0.1:$UP"
PX_PID=$STARTED

# The link to the upstream: an HTB class at the link's rate for what the upstream's port
# sends, and a default class far above loopback's speed for everything else.
if [ -n "$LINK_MBIT" ]; then
    case "$LINK_MBIT" in '' | *[!0-9]*) log "--link-mbit needs a whole number"; exit 2 ;; esac
    command -v tc >/dev/null || { log "--link-mbit needs tc (iproute2)"; exit 2; }
    if tc qdisc show dev lo | grep -qv 'noqueue'; then
        log "lo already has a queueing discipline; not touching it"
        exit 2
    fi
    tc qdisc add dev lo root handle 1: htb default 10 r2q 1000 &&
        tc class add dev lo parent 1: classid 1:10 htb rate 100gbit &&
        tc class add dev lo parent 1: classid 1:20 htb rate "${LINK_MBIT}mbit" \
            ceil "${LINK_MBIT}mbit" burst 256k &&
        tc filter add dev lo parent 1: protocol ip prio 1 u32 \
            match ip sport "$UP" 0xffff flowid 1:20 ||
        { log "cannot shape lo (tc needs root and the htb and u32 kernel modules)"; exit 2; }
    log "the upstream's answers are shaped to $LINK_MBIT Mbit/s"
fi

# One layer per round, pushed to the upstream.
DIGESTS=()
for round in $(seq "$ROUNDS"); do
    head -c "$((SIZE * 1024 * 1024))" /dev/urandom >"$WORK/layer"
    digest="sha256:$(sha256sum "$WORK/layer" | cut -d' ' -f1)"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$WORK/layer" \
        -H 'Content-Type: application/octet-stream' \
        "http://127.0.0.1:$UP/v2/bench/layer/blobs/uploads/?digest=$digest")
    [ "$code" = 201 ] || { log "push of round $round: HTTP $code"; exit 1; }
    DIGESTS+=("$digest")
done
rm -f "$WORK/layer"

# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# Idle CPU seconds of the whole machine so far (every core).
idle_now() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($5 + $6) / hz}' /proc/stat; }

# get URL DIGEST: one line "wall proxy_cpu upstream_cpu client_cpu idle" for the whole body,
# checked against the digest (hashed from the pipe as it arrives, so the check adds no disk
# write). OpenSSL, not coreutils' sha256sum: sha256sum has no SHA extensions here
# (~140 MiB/s) and would bound every figure. The client's CPU is curl's and openssl's
# together; idle is what every core left unused meanwhile (0 = the pull was CPU-bound).
get() {
    local sum out got p0 u0 i0 cpu
    p0=$(cpu_of "$PX_PID")
    u0=$(cpu_of "$UP_PID")
    i0=$(idle_now)
    { TIMEFORMAT='%U %S' && time {
        curl -s -w '%{stderr}%{http_code} %{time_total}' "$1" 2>"$WORK/w" |
            openssl dgst -sha256 -r | cut -d' ' -f1 >"$WORK/sum"
    }; } 2>"$WORK/t"
    cpu=$(awk '{printf "%.2f", $1 + $2}' "$WORK/t")
    sum=$(cat "$WORK/sum")
    out=$(cat "$WORK/w")
    [ "${out%% *}" = 200 ] || { log "GET $1: HTTP ${out%% *}"; exit 1; }
    got="sha256:$sum"
    [ "$got" = "$2" ] || { log "GET $1: digest $got"; exit 1; }
    awk -v w="${out#* }" -v p0="$p0" -v p1="$(cpu_of "$PX_PID")" -v u0="$u0" \
        -v u1="$(cpu_of "$UP_PID")" -v c="$cpu" -v i0="$i0" -v i1="$(idle_now)" \
        'BEGIN {printf "%s %.2f %.2f %.2f %.2f\n", w, p1 - p0, u1 - u0, c, i1 - i0}'
}

# median COLUMN <FILE: the median of one column.
median() {
    awk -v c="$1" '{print $c}' | sort -n |
        awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}

: >"$WORK/direct"
: >"$WORK/first"
: >"$WORK/cached"
for digest in "${DIGESTS[@]}"; do
    get "http://127.0.0.1:$UP/v2/bench/layer/blobs/$digest" "$digest" >>"$WORK/direct"
    get "http://127.0.0.1:$PX/v2/up/bench/layer/blobs/$digest" "$digest" >>"$WORK/first"
    get "http://127.0.0.1:$PX/v2/up/bench/layer/blobs/$digest" "$digest" >>"$WORK/cached"
done
direct=$(median 1 <"$WORK/direct")
first=$(median 1 <"$WORK/first")
cached=$(median 1 <"$WORK/cached")
rate() { awk -v s="$1" -v m="$SIZE" 'BEGIN {printf "%.0f", m / s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
CORES=$(nproc)
# cpu_row LABEL FILE: the medians of each CPU column, their sum, and that sum over the cores:
# the least wall time the pull could take with every core busy.
cpu_row() {
    local p u c i
    p=$(median 2 <"$2")
    u=$(median 3 <"$2")
    c=$(median 4 <"$2")
    i=$(median 5 <"$2")
    awk -v l="$1" -v w="$(median 1 <"$2")" -v p="$p" -v u="$u" -v c="$c" -v i="$i" -v n="$CORES" \
        'BEGIN {printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", l, w, p, u, c, p + u + c, (p + u + c) / n, i}'
}

# What a proxy that downloads first and serves afterwards would take: the download (the
# direct pull's time, over the same link) and then a cached pull.
dts=$(awk -v a="$direct" -v b="$cached" 'BEGIN {printf "%.6f", a + b}')
link="loopback, unshaped"
[ -z "$LINK_MBIT" ] || link="the upstream behind $LINK_MBIT Mbit/s"
report=$(
    cat <<EOF
| pull of a $SIZE MiB layer (median of $ROUNDS; $link) | seconds | MiB/s | time vs direct |
|---|---|---|---|
| direct from the upstream | $direct | $(rate "$direct") | 1.00 |
| first pull through the proxy (miss: streamed while stored) | $first | $(rate "$first") | $(ratio "$first" "$direct") |
| cached pull through the proxy (hit) | $cached | $(rate "$cached") | $(ratio "$cached" "$direct") |
| (for comparison: download, then serve = direct + cached) | $dts | $(rate "$dts") | $(ratio "$dts" "$direct") |

CPU seconds per pull (medians of $ROUNDS; $CORES cores; the client is curl and openssl):

| pull | wall | proxy CPU | upstream CPU | client CPU | all CPU | all CPU / $CORES cores | idle CPU |
|---|---|---|---|---|---|---|---|
$(cpu_row "direct from the upstream" "$WORK/direct")
$(cpu_row "first pull through the proxy (miss)" "$WORK/first")
$(cpu_row "cached pull through the proxy (hit)" "$WORK/cached")
EOF
)
echo "$report"
[ -z "$OUT" ] || echo "$report" >"$OUT"
