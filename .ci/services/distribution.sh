#!/usr/bin/env bash
# CNCF Distribution (Debian's `docker-registry`, 2.8) for the tests that make it trust this
# registry's tokens (tests/distribution_token_server.rs). Each test starts its own instance:
# its `auth.token` configuration names the test's own registry (realm, token CA), which only
# exists once the test runs. So `start` only installs the package when it is missing, checks
# that the binary runs, and prints where it is:
#
#   eval "$(bash .ci/services/distribution.sh start STATE_DIR)"   # prints only `export ...`
#   bash .ci/services/distribution.sh stop STATE_DIR              # nothing to stop
#
# Exports REGISTRY_TEST_DISTRIBUTION (the docker-registry binary).
set -euo pipefail

action=${1:-}
state=${2:-}
if [[ -z $state || ! $action =~ ^(start|stop)$ ]]; then
    echo "usage: bash .ci/services/distribution.sh start|stop STATE_DIR" >&2
    exit 2
fi
log() { echo "distribution.sh: $*" >&2; }
[[ $action == stop ]] && exit 0

if ! command -v docker-registry >/dev/null 2>&1; then
    log "installing docker-registry (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends docker-registry >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends docker-registry >&2; }
fi
binary=$(command -v docker-registry)
version=$("$binary" --version 2>&1) || { log "$binary does not run: $version"; exit 1; }
log "$version"
echo "export REGISTRY_TEST_DISTRIBUTION=$binary"
