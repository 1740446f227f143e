#!/usr/bin/env bash
# The scale-out path side by side: our registry-server on S3 + PostgreSQL
# (`--storage s3 --database-url`) vs CNCF Distribution's `s3` driver, both on one Garage
# bucket (prefixes `ours` and `dist`), with Garage's own plain PUT/GET of an object of the
# same size as the reference, all in the same run.
#
# Usage: benches/compare_s3.sh [--quick] [--rounds N] [--out FILE]
#
#   --quick       64 MiB blobs, 32 MiB chunked, 1 s rate tests, 20 images
#   --rounds N    rounds (default 3, quick 2); figures are medians over rounds
#
# Starts its own Garage (.ci/services/garage.sh) and PostgreSQL (.ci/services/postgres.sh
# with POSTGRES_DURABLE=1: fsync on) in a scratch directory; both servers without auth.
# Database round trips per request on the hot read path are counted from
# pg_stat_database (transactions committed during the GET manifest / HEAD blob tests,
# divided by the requests made).
set -euo pipefail

QUICK=0
ROUNDS=""
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "compare_s3.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
cd "$(dirname "$0")/.."
export LC_ALL=C
if [ "$QUICK" = 1 ]; then
    BLOB=64MiB; BLOB_MIB=64; CHUNKED=32MiB; DURATION=1; IMAGES=20; ROUNDS="${ROUNDS:-2}"
else
    BLOB=1GiB; BLOB_MIB=1024; CHUNKED=256MiB; DURATION=5; IMAGES=200; ROUNDS="${ROUNDS:-3}"
fi
log() { echo "compare_s3: $*" >&2; }

command -v docker-registry >/dev/null || { log "needs Debian's docker-registry (apt-get install docker-registry)"; exit 1; }
DIST_VERSION="$(docker-registry --version 2>&1 | awk '{print $NF}')"

log "building registry-server and the load harness (release)"
cargo build --release --example registry-server >&2
SERVER="$PWD/target/release/examples/registry-server"
HARNESS="$(cargo bench --bench load --no-run 2>&1 | tee /dev/stderr |
    sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"

WORK="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/registry-compare-s3.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    bash .ci/services/garage.sh stop "$WORK/garage" || true
    bash .ci/services/postgres.sh stop "$WORK/pg" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/results" "$WORK/logs"
# postgres.sh runs the cluster as the postgres user, which must reach its state dir.
chmod 755 "$WORK"

GARAGE_ENV="$(bash .ci/services/garage.sh start "$WORK/garage")"
eval "$GARAGE_ENV"
PG_ENV="$(POSTGRES_DURABLE=1 bash .ci/services/postgres.sh start "$WORK/pg")"
eval "$PG_ENV"
S3_ENDPOINT=$REGISTRY_TEST_S3_ENDPOINT
BUCKET=$REGISTRY_TEST_S3_BUCKET
KEY_ID=$REGISTRY_TEST_S3_ACCESS_KEY_ID
SECRET=$REGISTRY_TEST_S3_SECRET_ACCESS_KEY
DB_URL=$REGISTRY_TEST_DATABASE_URL

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p=$((20000 + RANDOM % 30000))
    while port_busy "$p"; do p=$((p + 1)); done
    echo "$p"
}
wait_port() {
    for _ in $(seq 100); do port_busy "$1" && return 0; sleep 0.1; done
    log "nothing listens on port $1; see $WORK/logs"; return 1
}

# Distribution 2.x, s3 driver on the same bucket, prefix /dist. Its own REGISTRY_* reading
# means a clean environment.
DPORT=$(free_port)
cat >"$WORK/dist.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  s3:
    accesskey: $KEY_ID
    secretkey: $SECRET
    region: garage
    regionendpoint: $S3_ENDPOINT
    bucket: $BUCKET
    rootdirectory: /dist
    secure: false
    v4auth: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$DPORT
YML
env -i PATH="$PATH" HOME="$HOME" docker-registry serve "$WORK/dist.yml" >"$WORK/logs/dist.log" 2>&1 &
DPID=$!; PIDS+=("$DPID")
wait_port "$DPORT"

SPORT=$(free_port)
env -i PATH="$PATH" HOME="$HOME" REGISTRY_LOG=warn AWS_ACCESS_KEY_ID="$KEY_ID" \
    AWS_SECRET_ACCESS_KEY="$SECRET" "$SERVER" --listen "127.0.0.1:$SPORT" \
    --data-dir "$WORK/ours-data" --no-auth --storage s3 --s3-endpoint "$S3_ENDPOINT" \
    --s3-region garage --s3-bucket "$BUCKET" --s3-prefix ours --database-url "$DB_URL" \
    --s3-unsigned-payload true >"$WORK/logs/ours.log" 2>&1 &
SPID=$!; PIDS+=("$SPID")
wait_port "$SPORT"
log "Distribution $DIST_VERSION pid $DPID :$DPORT; ours pid $SPID :$SPORT; Garage $S3_ENDPOINT"

# Garage itself: one PUT and one GET of a BLOB-sized object (curl, SigV4, unsigned
# payload: no hashing on the client), MiB/s.
head -c "$((BLOB_MIB * 1048576))" /dev/urandom >"$WORK/object"
garage_ref() { # round
    local sig=(--aws-sigv4 "aws:amz:garage:s3" --user "$KEY_ID:$SECRET" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
    local url="$S3_ENDPOINT/$BUCKET/reference/object-$1"
    curl -sf -o /dev/null -w '%{speed_upload}\n' "${sig[@]}" -T "$WORK/object" "$url" |
        awk '{ printf "RESULT garage_put %.0f MiB/s\n", $1 / 1048576 }' >"$WORK/results/ref.$1"
    curl -sf -o /dev/null -w '%{speed_download}\n' "${sig[@]}" "$url" |
        awk '{ printf "RESULT garage_get %.0f MiB/s\n", $1 / 1048576 }' >>"$WORK/results/ref.$1"
}
xacts() {
    psql "$DB_URL" -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
}
harness() { # tag url pid round extra...
    local tag="$1" url="$2" pid="$3" round="$4"; shift 4
    log "round $round: $tag"
    "$HARNESS" --url "$url" --pid "$pid" --rounds 1 --duration "$DURATION" \
        --blob-size "$BLOB" --chunked-size "$CHUNKED" --images "$IMAGES" "$@" \
        >"$WORK/logs/$tag.$round.out" 2>>"$WORK/logs/harness.err" ||
        { cat "$WORK/logs/harness.err" >&2; exit 1; }
    grep '^RESULT ' "$WORK/logs/$tag.$round.out" >"$WORK/results/$tag.$round"
}
for round in $(seq "$ROUNDS"); do
    garage_ref "$round"
    harness D "http://127.0.0.1:$DPORT" "$DPID" "$round"
    harness S "http://127.0.0.1:$SPORT" "$SPID" "$round" --only push-mono,push-chunked,pull,small-images
    before=$(xacts)
    harness Shot "http://127.0.0.1:$SPORT" "$SPID" "$round" --only manifest,head-blob
    after=$(xacts)
    # Requests made: each rate test's req/s times its duration (the setup push of the
    # harness adds a few transactions: counted against the requests, a bound from above).
    awk -v b="$before" -v a="$after" -v d="$DURATION" -v f="$WORK/results/Shot.$round" 'BEGIN {
        while ((getline line < f) > 0) { split(line, x, " ");
            if (x[2] == "manifest_get_rps" || x[2] == "blob_head_rps") n += x[3] * d }
        if (n > 0) printf "RESULT db_xacts_per_request %.4f per\n", (a - b) / n }' >>"$WORK/results/Shot.$round"
done

med() {
    cat "$WORK/results/$1".* 2>/dev/null | awk -v n="$2" '$2 == n { print $3 }' | sort -g |
        awk -v n="$2" '{ v[NR] = $1 } END {
            if (NR == 0) { print "-"; exit }
            if (n ~ /rss/) { printf "%.1f", v[NR]; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            fmt = (m >= 100) ? "%.0f" : "%.4g"; printf fmt, m }'
}
row() { # label unit ref ours target mode
    local ratio
    ratio=$(awk -v r="$3" -v o="$4" -v m="$6" 'BEGIN {
        if (r == "-" || o == "-" || r + 0 == 0 || o + 0 == 0) { print "-"; exit }
        printf "%.2f", (m == "down") ? r / o : o / r }')
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$ratio" "$5"
}
report() {
    echo "### S3 + PostgreSQL ($(date -u +%Y-%m-%d), $([ "$QUICK" = 1 ] && echo quick || echo full) run)"
    echo
    echo "- Command: \`benches/compare_s3.sh$([ "$QUICK" = 1 ] && echo ' --quick') --rounds $ROUNDS\`;" \
        "Garage $(garage --version 2>/dev/null | awk '{print $2}') single node and PostgreSQL (fsync on) on this machine," \
        "$(nproc) cores; blobs $BLOB (chunked $CHUNKED in 8 MiB PATCHes), $IMAGES small images; medians of $ROUNDS rounds."
    echo "- D = CNCF Distribution $DIST_VERSION, \`s3\` driver; S = ours, \`--storage s3 --database-url\`, with \`--s3-unsigned-payload true\` like the curl reference (Garage is on plain HTTP here, where ours signs bodies by default); both without auth."
    echo
    echo "| figure | unit | reference | ours | ratio | target |"
    echo "|---|---|---|---|---|---|"
    row "push $BLOB monolithic: Garage PUT vs S" MiB/s "$(med ref garage_put)" "$(med S push_mono)" "≥ 0.8" up
    row "push $BLOB monolithic: D vs S" MiB/s "$(med D push_mono)" "$(med S push_mono)" "" up
    row "push $CHUNKED chunked: D vs S" MiB/s "$(med D push_chunked)" "$(med S push_chunked)" "" up
    row "pull $BLOB: Garage GET vs S" MiB/s "$(med ref garage_get)" "$(med S pull)" "≥ 0.8" up
    row "pull $BLOB: D vs S" MiB/s "$(med D pull)" "$(med S pull)" "" up
    row "GET manifest by tag: D vs S" req/s "$(med D manifest_get_rps)" "$(med Shot manifest_get_rps)" "≥ 10" up
    row "HEAD blob: D vs S" req/s "$(med D blob_head_rps)" "$(med Shot blob_head_rps)" "" up
    row "push $IMAGES small images (time): D vs S" s "$(med D small_images)" "$(med S small_images)" "" down
    row "peak RSS (VmHWM): D vs S" MiB "$(med D peak_rss)" "$(med Shot peak_rss)" "≤ 1" up
    echo
    echo "Database transactions per GET manifest / HEAD blob request on S (hot path, from" \
        "pg_stat_database): **$(med Shot db_xacts_per_request)** (target: at most 1)."
}
REPORT="$(report)"
echo "$REPORT"
[ -n "$OUT" ] && echo "$REPORT" >"$OUT"
exit 0
