#!/usr/bin/env bash
# Instructions per authenticated GET manifest (Basic), counted by callgrind: a figure that
# does not move with the machine's load, so that a small per-request cost (a few percent)
# can be compared between two builds where req/s on this shared 2-core machine cannot
# (benches/ab.sh varies 15-35% between rounds).
#
# Usage: benches/callgrind_requests.sh SERVER_BINARY [REQUESTS] [OUT_DIR]
#
# Starts the server under `valgrind --tool=callgrind` (auth on, durability none, fresh data
# directory), pushes one small image, warms the password cache with one request, zeroes the
# counters, sends REQUESTS (default 500) GET manifest by tag on one keep-alive connection
# (curl), dumps, and prints the instructions per request. The profile stays in OUT_DIR
# (default: a temp dir) as callgrind.out.*: `callgrind_annotate --inclusive=yes FILE` shows
# where they go. Needs valgrind, curl and sha256sum.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,14p' "$0"; exit 2; }
SERVER="$1"; N="${2:-500}"; OUT="${3:-$(mktemp -d /tmp/registry-callgrind.XXXXXX)}"
mkdir -p "$OUT"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=$((20000 + RANDOM % 30000)); while port_busy "$PORT"; do PORT=$((PORT + 1)); done
PASSWORD="bench-$RANDOM$RANDOM"
env -i PATH="$PATH" REGISTRY_LOG="info,sqlx=warn" REGISTRY_ADMIN_PASSWORD="$PASSWORD" \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    "$SERVER" --listen "127.0.0.1:$PORT" --data-dir "$OUT/data" --durability none \
    >"$OUT/server.log" 2>&1 &
VPID=$!
trap 'kill $VPID 2>/dev/null || true' EXIT
for _ in $(seq 600); do port_busy "$PORT" && break; sleep 0.2; done
BASE="http://127.0.0.1:$PORT/v2/bench/app"
CONFIG='{}'
CDIGEST="sha256:$(printf '%s' "$CONFIG" | sha256sum | cut -d' ' -f1)"
curl -sf -u "admin:$PASSWORD" -o /dev/null -X POST --data-binary "$CONFIG" \
    "$BASE/blobs/uploads/?digest=$CDIGEST"
MANIFEST="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$CDIGEST\",\"size\":2},\"layers\":[]}"
curl -sf -u "admin:$PASSWORD" -o /dev/null -X PUT \
    -H "content-type: application/vnd.oci.image.manifest.v1+json" \
    --data-binary "$MANIFEST" "$BASE/manifests/latest"
curl -sf -u "admin:$PASSWORD" -o /dev/null "$BASE/manifests/latest"
callgrind_control -z "$VPID" >/dev/null
for _ in $(seq "$N"); do printf 'url = "%s/manifests/latest"\n-o /dev/null\n' "$BASE"; done |
    curl -sf -u "admin:$PASSWORD" -K -
callgrind_control -d "$VPID" >/dev/null
sleep 1
TOTAL=$(grep -h '^summary:' "$OUT"/callgrind.out.* | tail -1 | awk '{print $2}')
echo "instructions per GET manifest (Basic, $N requests): $((TOTAL / N))  (profile: $(ls "$OUT"/callgrind.out.* | tail -1))"
