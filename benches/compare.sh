#!/usr/bin/env bash
# Side-by-side load comparison: our registry-server vs CNCF Distribution
# (Debian's `docker-registry`), plus this machine's physical references.
#
# Usage: benches/compare.sh [--quick] [--rounds N] [--out FILE]
#
#   --quick       small blobs (64 MiB / 32 MiB), 1 s rate tests, 20 images: a smoke test
#   --rounds N    rounds per server (default 3, quick 2); figures are medians over rounds
#   --out FILE    also write the markdown report to FILE
#   --webhook     also push with one webhook configured (N server, namespace benchhook, a
#                 receiver in the harness) and report push throughput with it against none
#
# Environment: BENCH_TMPDIR (where data directories and the dd file go, default /tmp),
# CONCURRENCY (default 32), QUIET_LOGS=1 (turn off both servers' per-request access logs;
# by default each server logs as it does out of the box, into a file).
#
# What runs: installs docker-registry when missing; builds our server and the harness
# (benches/load) in release; starts, on loopback ports with fresh data directories,
#   D  Distribution 2.x, filesystem storage, no auth
#   N  ours, --durability none --no-auth       (compared with D)
#   F  ours, default fsync durability, auth on (push compared with dd conv=fdatasync;
#      GET manifest / HEAD blob with auth, as token and as Basic)
# then runs the harness against them alternately, one round each in turn
# (D N F D N F ...), and prints the tables: figures with ratios, CPU use per test,
# physical references, peak RSS.
set -euo pipefail

QUICK=0
WEBHOOK=0
ROUNDS=""
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --webhook) WEBHOOK=1 ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.."
export LC_ALL=C
CONCURRENCY="${CONCURRENCY:-32}"
if [ "$QUICK" = 1 ]; then
    BLOB=64MiB; CHUNKED=32MiB; DURATION=1; IMAGES=20; DD_MIB=256; SSL_SECONDS=1
    ROUNDS="${ROUNDS:-2}"
else
    BLOB=1GiB; CHUNKED=256MiB; DURATION=5; IMAGES=200; DD_MIB=1024; SSL_SECONDS=3
    ROUNDS="${ROUNDS:-3}"
fi

log() { echo "compare: $*" >&2; }

# --- 1. CNCF Distribution -------------------------------------------------------------
if ! command -v docker-registry >/dev/null 2>&1; then
    log "installing docker-registry"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y docker-registry >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y docker-registry >/dev/null; }
fi
DIST_VERSION="$(docker-registry --version 2>&1 | awk '{print $NF}')"

# --- 2. builds --------------------------------------------------------------------------
log "building registry-server and the load harness (release)"
cargo build --release --example registry-server >&2
SERVER="$PWD/target/release/examples/registry-server"
HARNESS="$(cargo bench --bench load --no-run 2>&1 | tee /dev/stderr |
    sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
[ -x "$HARNESS" ] || { echo "compare: harness executable not found" >&2; exit 1; }

# --- 3. scratch space, servers ------------------------------------------------------------
WORK="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/registry-compare.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/results" "$WORK/logs"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p=$((20000 + RANDOM % 30000))
    while port_busy "$p"; do p=$((p + 1)); done
    echo "$p"
}
wait_port() {
    for _ in $(seq 100); do port_busy "$1" && return 0; sleep 0.1; done
    echo "compare: nothing listens on port $1; see $WORK/logs" >&2
    return 1
}

DPORT=$(free_port)
cat >"$WORK/dist.yml" <<EOF
version: 0.1
log:
  level: $([ "${QUIET_LOGS:-0}" = 1 ] && echo warn || echo info)
  accesslog:
    disabled: $([ "${QUIET_LOGS:-0}" = 1 ] && echo true || echo false)
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $WORK/dist-data
http:
  addr: 127.0.0.1:$DPORT
EOF
docker-registry serve "$WORK/dist.yml" >"$WORK/logs/dist.log" 2>&1 &
DPID=$!; PIDS+=("$DPID")
wait_port "$DPORT"

OUR_LOG="info,sqlx=warn"
[ "${QUIET_LOGS:-0}" = 1 ] && OUR_LOG="warn"
start_ours() { # name port admin-password extra-args...
    local name="$1" port="$2" password="$3"; shift 3
    local vars=(REGISTRY_LOG="$OUR_LOG")
    [ -n "$password" ] && vars+=(REGISTRY_ADMIN_PASSWORD="$password")
    env -u REGISTRY_CONFIG -u REGISTRY_DURABILITY -u REGISTRY_NO_AUTH -u REGISTRY_PUBLIC_URL \
        -u REGISTRY_ADMIN_PASSWORD "${vars[@]}" "$SERVER" --listen "127.0.0.1:$port" \
        --data-dir "$WORK/$name-data" "$@" >"$WORK/logs/$name.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$port"
}
NPORT=$(free_port)
start_ours none "$NPORT" "" --durability none --no-auth --webhook-allow-private
NPID=${PIDS[-1]}
FPORT=$(free_port)
PASSWORD="bench-$RANDOM$RANDOM"
start_ours fsync "$FPORT" "$PASSWORD"
FPID=${PIDS[-1]}
log "Distribution $DIST_VERSION pid $DPID :$DPORT; ours none pid $NPID :$NPORT; ours fsync+auth pid $FPID :$FPORT"

# --- 4. physical references ---------------------------------------------------------------
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
log "physical references: openssl speed, dd"
SHA_MIBS=$(openssl speed -evp sha256 -seconds "$SSL_SECONDS" -bytes 16384 2>/dev/null |
    awk '/^sha256/ { v = $NF; sub("k", "", v); printf "%.0f", v * 1000 / 1048576 }')
dd_rate() { awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i - 1); printf "%.0f", $1 / s / 1048576 }'; }
# dd write with fdatasync, then page-cache read (second read of the same file). The
# virtual disk's speed drifts a lot over minutes here, so this runs once per round and
# the report takes medians, like the harness figures.
disk_refs() { # round
    dd if=/dev/zero of="$WORK/ddfile" bs=1M count="$DD_MIB" conv=fdatasync 2>&1 | dd_rate |
        awk '{ print "RESULT dd_write", $1, "MiB/s" }' >"$WORK/results/ref.$1"
    dd if="$WORK/ddfile" of=/dev/null bs=1M 2>/dev/null
    dd if="$WORK/ddfile" of=/dev/null bs=1M 2>&1 | dd_rate |
        awk '{ print "RESULT page_read", $1, "MiB/s" }' >>"$WORK/results/ref.$1"
    rm -f "$WORK/ddfile"
}

# --- 5. rounds, alternating -------------------------------------------------------------
harness() { # tag url pid extra-args...
    local tag="$1" url="$2" pid="$3" round="$4"; shift 4
    # The previous server's writes still in the page cache (Distribution and
    # --durability none never sync) are written back now, not during the
    # next server's fsyncs.
    sync
    log "round $round: $tag"
    "$HARNESS" --url "$url" --pid "$pid" --rounds 1 --concurrency "$CONCURRENCY" \
        --duration "$DURATION" --blob-size "$BLOB" --chunked-size "$CHUNKED" \
        --images "$IMAGES" "$@" >"$WORK/logs/$tag.$round.out" 2>>"$WORK/logs/harness.err" ||
        { cat "$WORK/logs/harness.err" >&2; exit 1; }
    grep '^RESULT ' "$WORK/logs/$tag.$round.out" >"$WORK/results/$tag.$round"
}
CREDS=(--user admin --password "$PASSWORD")
for round in $(seq "$ROUNDS"); do
    disk_refs "$round"
    harness D "http://127.0.0.1:$DPORT" "$DPID" "$round"
    harness N "http://127.0.0.1:$NPORT" "$NPID" "$round"
    if [ "${WEBHOOK:-0}" = 1 ]; then
        harness Nhook "http://127.0.0.1:$NPORT" "$NPID" "$round" --webhook \
            --namespace benchhook --only push-mono,small-images
    fi
    harness Fpush "http://127.0.0.1:$FPORT" "$FPID" "$round" "${CREDS[@]}" --auth token \
        --only push-mono,push-chunked,small-images
    harness Ftoken "http://127.0.0.1:$FPORT" "$FPID" "$round" "${CREDS[@]}" --auth token \
        --only manifest,head-blob
    harness Fbasic "http://127.0.0.1:$FPORT" "$FPID" "$round" "${CREDS[@]}" --auth basic \
        --only manifest,head-blob
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- 6. report --------------------------------------------------------------------------
# med TAG NAME: median over rounds (max for RSS: VmHWM only grows).
med() {
    cat "$WORK/results/$1".* 2>/dev/null | awk -v n="$2" '$2 == n { print $3 }' | sort -g |
        awk -v n="$2" '{ v[NR] = $1 } END {
            if (NR == 0) { print "-"; exit }
            if (n ~ /rss/) { printf "%.1f", v[NR]; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            fmt = (m >= 100) ? "%.0f" : "%.2f"; printf fmt, m }'
}
dd_list() {
    cat "$WORK/results/ref".* | awk '$2 == "dd_write" { w = w sep $3; sep = ", " } END { printf "dd write %s MiB/s", w }'
}
maxof() { printf '%s\n' "$@" | grep -v '^-$' | sort -g | tail -1; }
# per_round TAG NAME: the figure of each round, in round order.
per_round() {
    local r v out="" sep=""
    for r in $(seq "$ROUNDS"); do
        v=$(awk -v n="$2" '$2 == n { printf (($3 >= 100) ? "%.0f" : "%.2f"), $3 }' \
            "$WORK/results/$1.$r" 2>/dev/null)
        out="$out$sep${v:--}"
        sep=", "
    done
    echo "$out"
}
# row LABEL UNIT REF OURS TARGET MODE: MODE "up" = ours/ref, "down" = ref/ours (times)
row() {
    local ratio
    ratio=$(awk -v r="$3" -v o="$4" -v m="$6" 'BEGIN {
        if (r == "-" || o == "-" || r + 0 == 0 || o + 0 == 0) { print "-"; exit }
        printf "%.2f", (m == "down") ? r / o : o / r }')
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$ratio" "$5"
}

report() {
    local d n f
    DD_WRITE=$(med ref dd_write)
    PAGE_READ=$(med ref page_read)
    echo "### Side by side ($(date -u +%Y-%m-%d), $([ "$QUICK" = 1 ] && echo quick || echo full) run)"
    echo
    echo "- Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
        "$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)," \
        "kernel $(uname -r), $(df -T "$WORK" | awk 'NR == 2 { print $2 }') on $(df "$WORK" | awk 'NR == 2 { print $1 }');" \
        "load average $LOAD_BEFORE before, $LOAD_AFTER after."
    echo "- Command: \`benches/compare.sh$([ "$QUICK" = 1 ] && echo ' --quick')$([ "$WEBHOOK" = 1 ] && echo ' --webhook') --rounds $ROUNDS\`;" \
        "blobs $BLOB (chunked $CHUNKED in 8MiB PATCHes), $CONCURRENCY connections for ${DURATION}s," \
        "$IMAGES small images (4 in flight), $ROUNDS rounds, medians; logs: $([ "${QUIET_LOGS:-0}" = 1 ] && echo 'access logs off' || echo 'each server as shipped (access logs on, to a file)')."
    echo "- Servers: D = CNCF Distribution $DIST_VERSION (Debian docker-registry, filesystem, no auth);" \
        "N = ours \`--durability none --no-auth\`; F = ours, default fsync, auth on (admin, Basic or token)."
    echo
    echo "| figure | unit | reference | ours | ratio | target |"
    echo "|---|---|---|---|---|---|"
    row "push $BLOB monolithic: D vs N" MiB/s "$(med D push_mono)" "$(med N push_mono)" "≥ 3" up
    row "push $CHUNKED chunked: D vs N" MiB/s "$(med D push_chunked)" "$(med N push_chunked)" "≥ 3" up
    row "push $BLOB monolithic, fsync: dd fdatasync vs F" MiB/s "$DD_WRITE" "$(med Fpush push_mono)" "≥ 0.9" up
    row "push $CHUNKED chunked, fsync: dd fdatasync vs F" MiB/s "$DD_WRITE" "$(med Fpush push_chunked)" "≥ 0.9" up
    row "pull $BLOB (warm page cache): D vs N" MiB/s "$(med D pull)" "$(med N pull)" "≥ 2" up
    row "pull $BLOB: page-cache read (dd) vs N" MiB/s "$PAGE_READ" "$(med N pull)" "≥ 0.4" up
    for fig in manifest_get:"GET manifest by tag" blob_head:"HEAD blob"; do
        local key="${fig%%:*}" label="${fig#*:}"
        row "$label, no auth: D vs N" req/s "$(med D "${key}_rps")" "$(med N "${key}_rps")" "≥ 10" up
        row "$label, token auth: D (no auth) vs F" req/s "$(med D "${key}_rps")" "$(med Ftoken "${key}_rps")" "≥ 10" up
        row "$label, Basic auth: D (no auth) vs F" req/s "$(med D "${key}_rps")" "$(med Fbasic "${key}_rps")" "≥ 10" up
        row "$label p50, no auth: D vs N" ms "$(med D "${key}_p50")" "$(med N "${key}_p50")" "" down
        row "$label p99, no auth: D vs N" ms "$(med D "${key}_p99")" "$(med N "${key}_p99")" "ours < 10 ms" down
        row "$label p99, token: D vs F" ms "$(med D "${key}_p99")" "$(med Ftoken "${key}_p99")" "ours < 10 ms" down
        row "$label p99, Basic: D vs F" ms "$(med D "${key}_p99")" "$(med Fbasic "${key}_p99")" "ours < 10 ms" down
    done
    row "push $IMAGES small images (time): D vs N" s "$(med D small_images)" "$(med N small_images)" "" down
    row "push $IMAGES small images (time), fsync + auth: D vs F" s "$(med D small_images)" "$(med Fpush small_images)" "≥ 5 (speed-up)" down
    if [ "${WEBHOOK:-0}" = 1 ]; then
        row "push $IMAGES small images (time): N vs N with one webhook" s "$(med N small_images)" "$(med Nhook small_images)" "≥ 0.9" down
        row "push $BLOB monolithic: N vs N with one webhook" MiB/s "$(med N push_mono)" "$(med Nhook push_mono)" "≥ 0.9" up
        row "webhook deliveries received (of $IMAGES + setup per round)" count "-" "$(med Nhook webhook_deliveries)" "" up
    fi
    d=$(med D peak_rss)
    n=$(med N peak_rss)
    f=$(maxof "$(med Fpush peak_rss)" "$(med Ftoken peak_rss)" "$(med Fbasic peak_rss)")
    row "peak RSS over the run (VmHWM): D vs N" MiB "$d" "$n" "≤ 1 (ours/D)" up
    row "peak RSS over the run (VmHWM): D vs F" MiB "$d" "$f" "≤ 1 (ours/D)" up
    echo
    echo "Ratios are ours/reference (for times and latencies reference/ours, so > 1 means ours is better)."
    echo
    echo "Physical references, same run: SHA-256 one core (\`openssl speed -evp sha256 -bytes 16384\`)" \
        "**$SHA_MIBS MiB/s**; page-cache read (dd of a cached ${DD_MIB} MiB file, second read)" \
        "**$PAGE_READ MiB/s**; \`dd bs=1M count=$DD_MIB conv=fdatasync\` write **$DD_WRITE MiB/s**" \
        "(disk figures: medians of one measurement per round: $(dd_list))."
    echo
    echo "Per round (1 to $ROUNDS): small images D $(per_round D small_images) s, N $(per_round N small_images) s," \
        "F $(per_round Fpush small_images) s; pull D $(per_round D pull), N $(per_round N pull) MiB/s;" \
        "push monolithic D $(per_round D push_mono), N $(per_round N push_mono), F $(per_round Fpush push_mono) MiB/s."
    echo
    echo "CPU use during each test (percent of one core, 200 = both cores; server / harness):"
    echo
    echo "| test | D | N | F (token) | F (Basic) |"
    echo "|---|---|---|---|---|"
    for t in push_mono push_chunked pull manifest_get blob_head small_images; do
        local ft=Ftoken
        case $t in push_* | small_images) ft=Fpush ;; esac
        printf '| %s |' "$t"
        for tag in D N "$ft" Fbasic; do
            printf ' %s / %s |' "$(med "$tag" "${t}_srv_cpu")" "$(med "$tag" "${t}_cli_cpu")"
        done
        echo
    done
}

REPORT="$(report)"
echo "$REPORT"
[ -n "$OUT" ] && echo "$REPORT" >"$OUT"
exit 0
