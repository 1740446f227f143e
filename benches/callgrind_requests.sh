#!/usr/bin/env bash
# Instructions per authenticated GET manifest or HEAD blob, counted by callgrind: a figure that
# does not move with the machine's load, so that a small per-request cost (a few percent)
# can be compared between two builds where req/s on this shared 2-core machine cannot
# (benches/ab.sh varies 15-35% between rounds).
#
# Usage: [AUTH=basic|token] [REQUEST=manifest|blob] benches/callgrind_requests.sh SERVER_BINARY [REQUESTS] [OUT_DIR]
#
# AUTH=basic (default) sends the admin's password on every request; AUTH=token gets one registry
# token (pull scope) from /v2/token first and sends it as Bearer. REQUEST=manifest (default)
# is GET manifest by tag, REQUEST=blob HEAD of the config blob.
#
# Starts the server under `valgrind --tool=callgrind` (auth on, durability none, fresh data
# directory), pushes one small image, warms the password (or token) cache with one request, zeroes
# the counters, sends REQUESTS (default 500) requests on one keep-alive connection
# (curl), dumps, and prints the instructions per request. The profile stays in OUT_DIR
# (default: a temp dir) as callgrind.out.*: `callgrind_annotate --inclusive=yes FILE` shows
# where they go. Needs valgrind, curl and sha256sum.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,19p' "$0"; exit 2; }
AUTH="${AUTH:-basic}"; REQUEST="${REQUEST:-manifest}"
case "$AUTH/$REQUEST" in basic/manifest | basic/blob | token/manifest | token/blob) ;;
*) echo "AUTH must be basic or token, REQUEST manifest or blob" >&2; exit 2 ;; esac
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
if [ "$AUTH" = token ]; then
    TOKEN=$(curl -sf -u "admin:$PASSWORD" \
        "http://127.0.0.1:$PORT/v2/token?service=registry&scope=repository:bench/app:pull" |
        sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
    [ -n "$TOKEN" ] || { echo "no token from /v2/token" >&2; exit 1; }
    CRED=(-H "Authorization: Bearer $TOKEN")
else
    CRED=(-u "admin:$PASSWORD")
fi
if [ "$REQUEST" = blob ]; then
    URL="$BASE/blobs/$CDIGEST"; WHAT="HEAD blob"; METHOD=(-I)
else
    URL="$BASE/manifests/latest"; WHAT="GET manifest"; METHOD=()
fi
curl -sf "${CRED[@]}" "${METHOD[@]}" -o /dev/null "$URL"
callgrind_control -z "$VPID" >/dev/null
for _ in $(seq "$N"); do printf 'url = "%s"\n-o /dev/null\n' "$URL"; done |
    curl -sf "${CRED[@]}" "${METHOD[@]}" -K -
callgrind_control -d "$VPID" >/dev/null
sleep 1
TOTAL=$(grep -h '^summary:' "$OUT"/callgrind.out.* | tail -1 | awk '{print $2}')
echo "instructions per $WHAT ($AUTH, $N requests): $((TOTAL / N))  (profile: $(ls "$OUT"/callgrind.out.* | tail -1))"
