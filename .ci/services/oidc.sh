#!/usr/bin/env bash
# A real OpenID Connect provider for the tests: the `oidc-provider` npm package (pinned by
# .ci/services/oidc/package-lock.json) run with Debian's node on 127.0.0.1 over HTTPS, with
# a CA generated here. See .ci/services/oidc/provider.mjs for its clients, users and the
# test-only endpoints that complete the device flow as a user would.
#
#   eval "$(bash .ci/services/oidc.sh start STATE_DIR)"   # prints only `export ...` lines
#   bash .ci/services/oidc.sh stop STATE_DIR
#
# Exports REGISTRY_TEST_OIDC_ISSUER (https://127.0.0.1:PORT), REGISTRY_TEST_OIDC_CA_FILE
# (the CA that signed the issuer's certificate: the registry's --oidc-ca-file) and
# REGISTRY_TEST_OIDC_CLIENT_ID (the audience of its ID tokens: --oidc-client-id).
# Idempotent: a provider already running from STATE_DIR is reused.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
action=${1:-}
state=${2:-}
if [[ -z $state || ! $action =~ ^(start|stop)$ ]]; then
    echo "usage: bash .ci/services/oidc.sh start|stop STATE_DIR" >&2
    exit 2
fi
mkdir -p "$state"
state=$(cd "$state" && pwd)
log() { echo "oidc.sh: $*" >&2; }

running() {
    [[ -f $state/pid ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

if [[ $action == stop ]]; then
    if running; then
        pid=$(cat "$state/pid")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        log "stopped (pid $pid)"
    fi
    rm -f "$state/pid" "$state/issuer"
    exit 0
fi

exports() {
    echo "export REGISTRY_TEST_OIDC_ISSUER=$(cat "$state/issuer")"
    echo "export REGISTRY_TEST_OIDC_CA_FILE=$state/tls/ca.pem"
    echo "export REGISTRY_TEST_OIDC_CLIENT_ID=registry"
}

if running && [[ -s $state/issuer ]] && cmp -s "$HERE/oidc/provider.mjs" "$state/provider.mjs"; then
    log "already running: $(cat "$state/issuer")"
    exports
    exit 0
fi
running && kill "$(cat "$state/pid")" 2>/dev/null && sleep 0.5
rm -f "$state/pid" "$state/issuer"

# 1. node and npm (Debian's), the pinned package tree.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends nodejs npm >&2
fi
if ! cmp -s "$HERE/oidc/package-lock.json" "$state/package-lock.json" \
    || [[ ! -f $state/node_modules/oidc-provider/package.json ]]; then
    log "npm ci (oidc-provider, pinned) into $state"
    cp "$HERE/oidc/package.json" "$HERE/oidc/package-lock.json" "$state/"
    (cd "$state" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
cp "$HERE/oidc/provider.mjs" "$state/provider.mjs"

# 2. A CA and a certificate for 127.0.0.1 (the registry wants an https issuer).
tls=$state/tls
if [[ ! -s $tls/server.pem ]]; then
    log "generating a test CA and a server certificate for 127.0.0.1"
    mkdir -p "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=registry test OIDC CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        >"$tls/ext.cnf"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 3650 -extfile "$tls/ext.cnf" -out "$tls/server.pem" 2>/dev/null
    chmod 600 "$tls"/*.key
fi

# 3. Start it and wait until discovery answers.
(cd "$state" && NODE_EXTRA_CA_CERTS=$tls/ca.pem exec node provider.mjs "$state" \
    >>"$state/provider.log" 2>&1 </dev/null) &
echo $! >"$state/pid"
for _ in $(seq 100); do
    if [[ -s $state/issuer ]]; then
        issuer=$(cat "$state/issuer")
        if curl -fsS --cacert "$tls/ca.pem" "$issuer/.well-known/openid-configuration" >/dev/null 2>&1; then
            log "issuer $issuer (log: $state/provider.log)"
            exports
            exit 0
        fi
    fi
    running || break
    sleep 0.1
done
log "the provider did not come up; its log:"
tail -n 30 "$state/provider.log" >&2 || true
exit 1
