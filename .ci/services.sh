#!/usr/bin/env bash
# Starts (or stops) the real servers that tests read through REGISTRY_TEST_* variables:
# one script per component under .ci/services/, each installing what it lacks (Debian
# packages, npm packages) into a state directory and printing `export VAR=value` lines.
#
#   eval "$(bash .ci/services.sh start [STATE_DIR])"   # then: cargo test --workspace
#   bash .ci/services.sh stop [STATE_DIR]
#
# STATE_DIR defaults to target/ci-services. A developer runs exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

action=${1:-}
state=${2:-target/ci-services}
case "$action" in
    start | stop) ;;
    *) echo "usage: bash .ci/services.sh start|stop [STATE_DIR]" >&2; exit 2 ;;
esac
mkdir -p "$state"
state=$(cd "$state" && pwd)

shopt -s nullglob
for script in .ci/services/*.sh; do
    name=$(basename "$script" .sh)
    mkdir -p "$state/$name"
    if [[ $action == start ]]; then
        echo "services.sh: starting $name" >&2
        bash "$script" start "$state/$name"
    else
        bash "$script" stop "$state/$name" || echo "services.sh: stopping $name failed" >&2
    fi
done
