#!/usr/bin/env bash
# A throwaway single-node Garage (S3-compatible object storage) for the S3 backend's tests.
#
#   eval "$(bash .ci/services/garage.sh start STATE_DIR)"   # then: cargo test ...
#   bash .ci/services/garage.sh stop STATE_DIR
#
# `start` builds Garage 2.5.0 from crates.io into the cargo bin dir when it is missing
# (`cargo install`, ~6 min once per machine; later starts reuse the binary), writes a
# garage.toml in STATE_DIR, runs `garage server --single-node --default-bucket` on free
# ports of 127.0.0.1 with a generated key and bucket, waits until the S3 API answers, and
# prints only `export REGISTRY_TEST_S3_*=…` lines on stdout. Logs: STATE_DIR/garage.log.
# Run again while it runs: prints the same exports.
set -euo pipefail

action=${1:-}
state=${2:-}
if [[ -z $state || ($action != start && $action != stop) ]]; then
    echo "usage: bash .ci/services/garage.sh start|stop STATE_DIR" >&2
    exit 2
fi
mkdir -p "$state"
state=$(cd "$state" && pwd)
version=2.5.0
bin_dir=${CARGO_HOME:-$HOME/.cargo}/bin
garage=$bin_dir/garage

log() { echo "garage.sh: $*" >&2; }

running_pid() {
    local pid
    pid=$(cat "$state/garage.pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

print_exports() {
    echo "export REGISTRY_TEST_S3_ENDPOINT=http://127.0.0.1:$(cat "$state/s3-port")"
    echo "export REGISTRY_TEST_S3_REGION=garage"
    echo "export REGISTRY_TEST_S3_BUCKET=$(cat "$state/bucket")"
    echo "export REGISTRY_TEST_S3_ACCESS_KEY_ID=$(cat "$state/access-key")"
    echo "export REGISTRY_TEST_S3_SECRET_ACCESS_KEY=$(cat "$state/secret-key")"
}

if [[ $action == stop ]]; then
    if pid=$(running_pid); then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        log "stopped garage ($pid)"
    fi
    exit 0
fi

if running_pid >/dev/null && [[ -f $state/s3-port ]]; then
    print_exports
    exit 0
fi

if ! [[ -x $garage ]] || [[ $("$garage" --version 2>/dev/null) != *":$version "* ]]; then
    log "building garage $version into $bin_dir (once per machine)"
    cargo install garage --version "$version" --locked --no-default-features \
        --features bundled-libs,sqlite >&2
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# A fresh instance each start: no object outlives a run.
rm -rf "$state/meta" "$state/data"
mkdir -p "$state/meta" "$state/data"
s3_port=$(free_port)
rpc_port=$(free_port)
while [[ $rpc_port == "$s3_port" ]]; do rpc_port=$(free_port); done
echo "$s3_port" >"$state/s3-port"
echo "registry-test" >"$state/bucket"
echo "GK$(hex 12)" >"$state/access-key"
hex 32 >"$state/secret-key"
cat >"$state/garage.toml" <<TOML
metadata_dir = "$state/meta"
data_dir = "$state/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(hex 32)"

[s3_api]
api_bind_addr = "127.0.0.1:$s3_port"
s3_region = "garage"
root_domain = ".s3.garage.localhost"
TOML

GARAGE_DEFAULT_ACCESS_KEY=$(cat "$state/access-key") \
GARAGE_DEFAULT_SECRET_KEY=$(cat "$state/secret-key") \
GARAGE_DEFAULT_BUCKET=$(cat "$state/bucket") \
    setsid "$garage" -c "$state/garage.toml" server --single-node --default-bucket \
    >"$state/garage.log" 2>&1 </dev/null &
echo $! >"$state/garage.pid"

for _ in $(seq 100); do
    # Any HTTP answer (403 for an unsigned request) means the S3 API is up.
    if curl -s -o /dev/null "http://127.0.0.1:$s3_port/"; then
        log "garage $version up on 127.0.0.1:$s3_port"
        print_exports
        exit 0
    fi
    if ! running_pid >/dev/null; then break; fi
    sleep 0.1
done
log "garage did not start; last log lines:"
tail -20 "$state/garage.log" >&2
exit 1
