#!/usr/bin/env bash
# Reference server for validating .ci/interop.sh: CNCF Distribution (Debian package
# `docker-registry`, 2.8.x), with the same command line as our example server:
#
#   bash .ci/interop/distribution.sh --listen 127.0.0.1:PORT --data-dir DIR
#
# Use it as:  REGISTRY_CMD='bash .ci/interop/distribution.sh' INTEROP_REFERRERS=optional bash .ci/interop.sh
# (Distribution 2.8 has no referrers API, hence INTEROP_REFERRERS=optional.)
# With REGISTRY_USER/REGISTRY_PASSWORD set it enables htpasswd (Basic) auth for that user.
set -euo pipefail

listen=127.0.0.1:5000
data=./data
while [[ $# -gt 0 ]]; do
    case "$1" in
        --listen) listen=$2; shift 2 ;;
        --data-dir) data=$2; shift 2 ;;
        *) echo "distribution.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if ! command -v docker-registry >/dev/null 2>&1; then
    echo "distribution.sh: installing docker-registry" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends docker-registry >&2 \
        || { apt-get update >&2 && apt-get install -y --no-install-recommends docker-registry >&2; }
fi

mkdir -p "$data"
data=$(cd "$data" && pwd)
auth=""
if [[ -n "${REGISTRY_USER:-}" && -n "${REGISTRY_PASSWORD:-}" ]]; then
    # bcrypt via libcrypt, as htpasswd -B would write it; cost 4 (16 rounds): Distribution
    # checks the password on every request, and the default cost 12 costs ~0.4 s each.
    python3 - "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$data/htpasswd" <<'EOF'
import sys, warnings
warnings.simplefilter("ignore")
import crypt
print(f"{sys.argv[1]}:{crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}")
EOF
    auth="auth:
  htpasswd:
    realm: interop
    path: $data/htpasswd"
fi

cat >"$data/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $data/store
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $listen
$auth
EOF

# Distribution reads every REGISTRY_* variable as a config override: drop ours.
for var in $(compgen -e); do
    [[ $var != REGISTRY_* ]] || unset "$var"
done
exec docker-registry serve "$data/config.yml"
