#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the `postgres` backend's tests.
#
#   eval "$(bash .ci/services/postgres.sh start STATE_DIR)"   # then: cargo test ...
#   bash .ci/services/postgres.sh stop STATE_DIR
#
# `start` installs Debian's postgresql when `initdb` is missing (the system cluster it
# creates is never used), creates a cluster in STATE_DIR/data owned by the `postgres` user
# (initdb refuses to run as root), runs it on 127.0.0.1 on a free port with its socket in
# STATE_DIR, creates the database `registry`, and prints only
# `export REGISTRY_TEST_DATABASE_URL=postgres://…` on stdout, and
# `export REGISTRY_TEST_DATABASE_CA_FILE=…`: the server also accepts TLS, with a
# certificate for 127.0.0.1 from a test CA generated here. Tests create a database of
# their own per test through that URL (the role is a superuser). fsync and synchronous
# commit are off: the cluster is for tests, never for figures about durability, unless
# POSTGRES_DURABLE=1 (benches/compare_s3.sh) keeps PostgreSQL's durable defaults.
# Logs: STATE_DIR/postgres.log. Run again while it runs: prints the same export.
set -euo pipefail

action=${1:-}
state=${2:-}
if [[ -z $state || ($action != start && $action != stop) ]]; then
    echo "usage: bash .ci/services/postgres.sh start|stop STATE_DIR" >&2
    exit 2
fi
mkdir -p "$state"
state=$(cd "$state" && pwd)
data=$state/data
role=registry

log() { echo "postgres.sh: $*" >&2; }

# The cluster's tools run as `postgres` when this script runs as root.
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

find_bin() {
    local name=$1 dir
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x $dir/$name ]]; then
            echo "$dir/$name"
            return 0
        fi
    done
    return 1
}

print_exports() {
    echo "export REGISTRY_TEST_DATABASE_URL=postgres://$role@127.0.0.1:$(cat "$state/port")/registry"
    echo "export REGISTRY_TEST_DATABASE_CA_FILE=$state/ca.pem"
}

running() {
    [[ -f $data/postmaster.pid && -f $state/port ]] || return 1
    as_owner "$pg_ctl" -D "$data" status >/dev/null 2>&1
}

if ! find_bin initdb >/dev/null || ! find_bin pg_ctl >/dev/null || ! command -v psql >/dev/null ||
    ! command -v openssl >/dev/null; then
    log "installing postgresql and openssl"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postgresql openssl >&2
fi
initdb=$(find_bin initdb)
pg_ctl=$(find_bin pg_ctl)

if [[ $action == stop ]]; then
    if running; then
        as_owner "$pg_ctl" -D "$data" -m fast -w stop >&2
        log "stopped the cluster in $data"
    fi
    exit 0
fi

if running; then
    print_exports
    exit 0
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A fresh cluster each start: tests make their own databases, nothing else is kept.
rm -rf "$data"
if [[ $(id -u) == 0 ]]; then
    # `postgres` needs to reach the directory (and its socket) through the path.
    chown postgres: "$state"
    chmod 0755 "$state"
    if ! runuser -u postgres -- test -w "$state"; then
        log "the postgres user cannot reach $state (a directory on its path is private);"
        log "give a state directory it can reach, such as one under /tmp"
        exit 1
    fi
fi
log "creating a cluster in $data"
as_owner "$initdb" -D "$data" -U "$role" --auth=trust -E UTF8 --no-locale >"$state/initdb.log" 2>&1 ||
    { tail -n 30 "$state/initdb.log" >&2; exit 1; }

if [[ ! -f $state/server.pem ]]; then
    log "generating a test CA and a server certificate for 127.0.0.1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=registry test PostgreSQL CA" -keyout "$state/ca.key" -out "$state/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$state/server.key" -out "$state/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$state/server.ext"
    openssl x509 -req -in "$state/server.csr" -CA "$state/ca.pem" -CAkey "$state/ca.key" \
        -CAcreateserial -days 3650 -extfile "$state/server.ext" -out "$state/server.pem" 2>/dev/null
fi
# PostgreSQL refuses a key others can read, and reads it as the cluster's owner.
chmod 600 "$state/ca.key" "$state/server.key"
if [[ $(id -u) == 0 ]]; then
    chown postgres: "$state/server.key" "$state/server.pem"
fi

port=$(free_port)
echo "$port" >"$state/port"
durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[[ ${POSTGRES_DURABLE:-0} == 1 ]] && durability=""
# Only loopback TCP and a socket inside STATE_DIR: nothing of the system's cluster.
as_owner "$pg_ctl" -D "$data" -l "$state/postgres.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $state $durability -c max_connections=300 -c ssl=on -c ssl_cert_file=$state/server.pem -c ssl_key_file=$state/server.key" \
    start >&2 || { tail -n 30 "$state/postgres.log" >&2; exit 1; }
psql -h 127.0.0.1 -p "$port" -U "$role" -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE DATABASE registry" >&2
log "PostgreSQL answers on 127.0.0.1:$port (log: $state/postgres.log)"
print_exports
