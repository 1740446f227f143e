#!/usr/bin/env bash
# Client interoperability test: real OCI clients against the registry example server.
#
#   bash .ci/interop.sh
#
# What it does
#   1. installs what it needs, skipping what is present: skopeo, podman, buildah, jq, curl
#      (Debian packages) and oras-py (PyPI `oras`, pinned, in a venv under the cache dir).
#      The ORAS Go CLI is not packaged anywhere this machine can reach (Debian has only the
#      Go library source, PyPI only the Python SDK), so the ORAS steps drive oras-py's
#      client API through .ci/interop/oras_client.py (push / pull / attach).
#   2. builds the server (`cargo build --release --example registry-server`) unless
#      REGISTRY_CMD is set, starts it on a free 127.0.0.1 port with a fresh temp data dir
#      as `CMD --listen 127.0.0.1:PORT --data-dir DIR`, waits for GET /v2/ to answer 200/401.
#   3. runs the client steps (all offline, plain http, images built locally) and prints
#      `interop: N passed, N failed, N skipped`; exit status non-zero if anything failed.
#
# Environment
#   REGISTRY_CMD        server command, word-split by bash, given `--listen ADDR --data-dir DIR`
#                       (default: the freshly built target/release/examples/registry-server).
#                       e.g. REGISTRY_CMD='bash .ci/interop/distribution.sh' (CNCF Distribution)
#   REGISTRY_PORT       port to listen on (default: a free one)
#   REGISTRY_USER, REGISTRY_PASSWORD
#                       when both are set, log in with podman/skopeo/buildah (temp auth file),
#                       oras-py (Basic or Bearer, from the server's challenge) and curl (Basic);
#                       the server is started with REGISTRY_ADMIN_PASSWORD=$REGISTRY_PASSWORD.
#                       For our server they default to `admin` and a random password (the
#                       server bootstraps `admin` from REGISTRY_ADMIN_PASSWORD on first start).
#   INTEROP_AUTH        admin (default) | none: `none` starts our server with --no-auth and
#                       runs the clients anonymously (only when REGISTRY_CMD is unset).
#   INTEROP_REFERRERS   required (default) | optional: `optional` turns a missing referrers
#                       API (404 on /v2/<name>/referrers/<digest>) into a skip, not a failure.
#   INTEROP_PROFILE     release (default) | debug: cargo profile for the server build.
#   INTEROP_FAIL_FAST   1: stop at the first failed step (default: run all steps).
#   INTEROP_KEEP        1: keep the temp dir (server log, stores, step logs) for debugging.
#   INTEROP_START_TIMEOUT  seconds to wait for /v2/ (default 120).
#   REGISTRY_TEST_OIDC_ISSUER, REGISTRY_TEST_OIDC_CA_FILE, REGISTRY_TEST_OIDC_CLIENT_ID
#                       a real OIDC provider (bash .ci/services/oidc.sh start DIR prints them):
#                       our server trusts it and the OIDC step logs podman and skopeo in with
#                       its ID tokens; unset, that step is skipped.
#
# Nothing global is modified: containers storage, registries.conf, containers.conf and the
# auth file all live in a temp dir (CONTAINERS_REGISTRIES_CONF, CONTAINERS_CONF,
# CONTAINERS_STORAGE_CONF, REGISTRY_AUTH_FILE, --root/--runroot/--storage-driver vfs).
# Only skopeo, run as root, still records its blob-location cache under
# /var/lib/containers/cache (it has no option to move it); entries are keyed by host:port.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
T_START=$SECONDS

say() { printf 'interop: %s\n' "$*"; }
die() { printf 'interop: FATAL: %s\n' "$*" >&2; exit 1; }

ORAS_PY_VERSION=0.2.43
CACHE_DIR=${INTEROP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/registry-interop}
VENV=$CACHE_DIR/venv-oras-$ORAS_PY_VERSION
REFERRERS_MODE=${INTEROP_REFERRERS:-required}
case "$REFERRERS_MODE" in required|optional) ;; *) die "INTEROP_REFERRERS must be required or optional" ;; esac

# ---------------------------------------------------------------------------------------
# 1. tools
# ---------------------------------------------------------------------------------------
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 && SUDO=(sudo -n)
    say "warning: not root; podman/buildah steps assume root (vfs storage, no user namespaces)"
fi

APT_UPDATED=0
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt-get update"
        "${SUDO[@]}" apt-get update -q >/dev/null || "${SUDO[@]}" apt-get update -q
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@" >/dev/null \
        || "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@"
}

install_tools() {
    local missing=() cmd
    # --no-install-recommends: podman's hard dependencies (conmon, crun, containers-common)
    # are enough to pull; its recommends (slirp4netns, fuse-overlayfs, ...) are for running.
    for cmd in skopeo podman buildah jq curl; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_install "${missing[@]}"
    else
        say "skopeo, podman, buildah, jq, curl already installed"
    fi
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv

    if "$VENV/bin/python" -c 'import oras.provider' >/dev/null 2>&1; then
        say "oras-py $ORAS_PY_VERSION already in $VENV"
    else
        say "installing oras-py $ORAS_PY_VERSION into $VENV"
        mkdir -p "$CACHE_DIR"
        rm -rf "$VENV"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "oras==$ORAS_PY_VERSION" \
            || "$VENV/bin/python" -m pip install -q --disable-pip-version-check "oras==$ORAS_PY_VERSION"
        "$VENV/bin/python" -c 'import oras.provider'
    fi
}

# Until examples/registry-server exists, there is nothing of ours to test: say so and skip
# (INTEROP_REQUIRE_SERVER=1 makes that a failure instead).
if [[ -z "${REGISTRY_CMD:-}" ]]; then
    meta=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 2>/dev/null) || meta=unknown
    if [[ $meta != unknown ]] && ! grep -F '"name":"registry-server"' <<<"$meta" >/dev/null; then
        if [[ "${INTEROP_REQUIRE_SERVER:-0}" == 1 ]]; then
            die "no example target registry-server in the workspace"
        fi
        say "SKIPPED: the workspace has no example target registry-server yet"
        echo "interop: 0 passed, 0 failed, 1 skipped"
        exit 0
    fi
fi

say "== installing tools"
install_tools
say "tools ready after $((SECONDS - T_START))s"

# ---------------------------------------------------------------------------------------
# 2. sandbox: every client config and store in a temp dir
# ---------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/interop.XXXXXX")
ST=$WORK/state                      # values shared between steps (steps run in subshells)
mkdir -p "$ST" "$WORK/ctx" "$WORK/podman/tmp" "$WORK/logs"
SERVER_PID=""
SERVER_LOG=$WORK/server.log

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        say "stopping server (pid $SERVER_PID)"
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
server_log_tail() {
    if [[ -f "$SERVER_LOG" ]]; then
        echo "----- server log (last ${1:-60} lines of $SERVER_LOG) -----"
        tail -n "${1:-60}" "$SERVER_LOG"
        echo "----- end of server log -----"
    fi
}
cleanup() {
    local rc=$?
    stop_server
    if [[ "${INTEROP_KEEP:-0}" == 1 ]]; then
        say "kept $WORK"
    else
        # vfs layers may be read-only copies; make them removable first.
        chmod -R u+w "$WORK" 2>/dev/null || true
        rm -rf "$WORK" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT=${REGISTRY_PORT:-$(free_port)}
R=127.0.0.1:$PORT                   # registry host as clients name it
BASE=http://$R

cat >"$WORK/registries.conf" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"

[[registry]]
location = "$R"
insecure = true
EOF
cat >"$WORK/containers.conf" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/podman/events.log"
tmp_dir = "$WORK/podman/tmp"
EOF
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$WORK/default/run"
graphroot = "$WORK/default/root"
EOF
export CONTAINERS_REGISTRIES_CONF=$WORK/registries.conf
export CONTAINERS_CONF=$WORK/containers.conf
export CONTAINERS_STORAGE_CONF=$WORK/storage.conf
export TMPDIR=$WORK/tmp BUILDAH_ISOLATION=chroot
mkdir -p "$TMPDIR"
# Separate stores for the builder and the puller, so a pull really fetches every blob.
BUILDAH=(buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" --storage-driver vfs)
PODMAN=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver vfs
        --cgroup-manager=cgroupfs --events-backend=file)
ORAS=("$VENV/bin/python" "$HERE/interop/oras_client.py")

# ---------------------------------------------------------------------------------------
# 3. server
# ---------------------------------------------------------------------------------------
DATA=$WORK/data
mkdir -p "$DATA"
SERVER_ARGS=(--listen "$R" --data-dir "$DATA")
SERVER_ENV=(NO_COLOR=1)
OURS=0                              # 1: our server with auth (REGISTRY_CMD unset)
DIST_SERVICE=interop-distribution   # the service of the Distribution that trusts our tokens
if [[ -z "${REGISTRY_CMD:-}" ]]; then
    # Our server requires authentication and bootstraps the user `admin` with the password in
    # REGISTRY_ADMIN_PASSWORD on first start: use that unless credentials were given.
    # INTEROP_AUTH=none runs it with --no-auth instead (anonymous clients).
    case "${INTEROP_AUTH:-admin}" in
        admin)
            if [[ -z "${REGISTRY_USER:-}" || -z "${REGISTRY_PASSWORD:-}" ]]; then
                REGISTRY_USER=admin
                REGISTRY_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '._')
            fi
            # t_distribution_token_server: a Distribution that uses our tokens.
            OURS=1
            # t_proxy: namespace `mirror` is a pull-through cache of a Distribution that
            # the step starts on this port (nothing listens there until then).
            PROXY_UPSTREAM=127.0.0.1:$(free_port)
            SERVER_ARGS+=(--proxy "mirror=http://$PROXY_UPSTREAM")
            SERVER_ENV+=("REGISTRY_TOKEN_ACCEPTED_SERVICES=$DIST_SERVICE") ;;
        none) SERVER_ARGS+=(--no-auth); unset REGISTRY_USER REGISTRY_PASSWORD ;;
        *) die "INTEROP_AUTH must be admin or none" ;;
    esac
fi
# A real OpenID Connect provider (.ci/services/oidc.sh, started by .ci/run): our server trusts
# it, and t_oidc logs podman and skopeo in with its ID tokens.
OIDC=0
if [[ -z "${REGISTRY_CMD:-}" && ${INTEROP_AUTH:-admin} == admin && -n "${REGISTRY_TEST_OIDC_ISSUER:-}" ]]; then
    OIDC=1
    SERVER_ARGS+=(--oidc-issuer-url "$REGISTRY_TEST_OIDC_ISSUER"
                  --oidc-client-id "${REGISTRY_TEST_OIDC_CLIENT_ID:-registry}"
                  --oidc-ca-file "$REGISTRY_TEST_OIDC_CA_FILE")
fi
if [[ -n "${REGISTRY_USER:-}" && -n "${REGISTRY_PASSWORD:-}" ]]; then
    export REGISTRY_USER REGISTRY_PASSWORD          # oras_client.py reads them
    SERVER_ENV+=("REGISTRY_ADMIN_PASSWORD=$REGISTRY_PASSWORD")
fi
CURL_CFG=$WORK/curl.cfg
: >"$CURL_CFG"
if [[ -n "${REGISTRY_USER:-}" && -n "${REGISTRY_PASSWORD:-}" ]]; then
    AUTH=1
    printf 'user = "%s:%s"\n' "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$CURL_CFG"
else
    AUTH=0
fi
chmod 600 "$CURL_CFG"
CURL=(curl -sS --max-time 30 -K "$CURL_CFG")
if [[ -z "${REGISTRY_CMD:-}" ]]; then
    profile=${INTEROP_PROFILE:-release}
    say "== building the server and registryctl: cargo build --$profile --example registry-server --example registryctl"
    t0=$SECONDS
    if [[ $profile == release ]]; then
        (cd "$ROOT" && cargo build --release --example registry-server --example registryctl)
    else
        (cd "$ROOT" && cargo build --example registry-server --example registryctl)
    fi
    [[ $profile == release ]] || profile=debug
    REGISTRY_CMD=${CARGO_TARGET_DIR:-$ROOT/target}/$profile/examples/registry-server
    REGISTRYCTL=${CARGO_TARGET_DIR:-$ROOT/target}/$profile/examples/registryctl
    [[ -x "$REGISTRY_CMD" ]] || die "no server binary at $REGISTRY_CMD"
    say "built in $((SECONDS - t0))s"
    REGISTRY_CMD=$(printf '%q' "$REGISTRY_CMD")
fi

say "== starting: $REGISTRY_CMD ${SERVER_ARGS[*]}${REGISTRY_USER:+ (clients log in as $REGISTRY_USER)}"
# Own process group (setsid), so stop_server ends the server and anything it spawned.
(cd "$ROOT" && exec env "${SERVER_ENV[@]}" setsid bash -c "exec $REGISTRY_CMD \"\$@\"" registry-server \
    "${SERVER_ARGS[@]}") </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

timeout_s=${INTEROP_START_TIMEOUT:-120}
t0=$SECONDS
while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/v2/" || true)
    [[ $code == 200 || $code == 401 ]] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        server_log_tail 100
        die "server exited before answering GET /v2/"
    fi
    if (( SECONDS - t0 > timeout_s )); then
        server_log_tail 100
        die "GET $BASE/v2/ did not answer 200/401 within ${timeout_s}s (last: $code)"
    fi
    sleep 0.25
done
# Client-side only (CNCF Distribution, for one, reads REGISTRY_* variables as its config).
export REGISTRY_AUTH_FILE=$WORK/auth.json
echo '{"auths":{}}' >"$REGISTRY_AUTH_FILE"    # buildah insists that the file exists
say "server up at $BASE (GET /v2/ -> $code) after $((SECONDS - t0))s"

# ---------------------------------------------------------------------------------------
# 4. step machinery
# ---------------------------------------------------------------------------------------
PASSED=0 FAILED=0 SKIPPED=0 STEPNO=0
FAILED_STEPS=()
T_CLIENTS=$SECONDS

# step "what it does" function: runs the function in a subshell with errexit and xtrace;
# exit 0 = pass, exit 77 = skip, anything else = fail.
step() {
    local desc=$1 fn=$2 rc t0=$SECONDS
    STEPNO=$((STEPNO + 1))
    printf '\n=== [%02d] %s\n' "$STEPNO" "$desc"
    set +e
    ( set -euo pipefail; PS4='+ '; set -x; "$fn" ) 2>&1 | tee "$WORK/logs/$STEPNO.log" | sed -u 's/^/    /'
    rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc -eq 0 ]]; then
        PASSED=$((PASSED + 1)); printf '=== [%02d] ok (%ss)\n' "$STEPNO" $((SECONDS - t0))
    elif [[ $rc -eq 77 ]]; then
        SKIPPED=$((SKIPPED + 1)); printf '=== [%02d] SKIPPED\n' "$STEPNO"
    else
        FAILED=$((FAILED + 1)); FAILED_STEPS+=("[$STEPNO] $desc")
        printf '=== [%02d] FAILED (exit %s): %s\n' "$STEPNO" "$rc" "$desc"
        server_log_tail 40
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            say "the server is no longer running: stopping here"
            SERVER_PID=""
            summary
        fi
        if [[ "${INTEROP_FAIL_FAST:-0}" == 1 ]]; then
            summary
        fi
    fi
}

summary() {
    echo
    if [[ $FAILED -gt 0 ]]; then
        say "failed steps:"
        printf '  %s\n' "${FAILED_STEPS[@]}"
    fi
    say "clients took $((SECONDS - T_CLIENTS))s, whole script $((SECONDS - T_START))s"
    echo "interop: $PASSED passed, $FAILED failed, $SKIPPED skipped"
    [[ $FAILED -eq 0 ]] || exit 1
    exit 0
}

# Helpers for use inside steps (their own commands are kept out of the trace).
quiet() { XT=$-; set +x; } 2>/dev/null
loud() { [[ $XT != *x* ]] || set -x; } 2>/dev/null
put() { quiet; printf '%s' "$2" >"$ST/$1"; loud; }
get() {
    quiet
    [[ -s "$ST/$1" ]] || { echo "missing state $1 (an earlier step failed?)" >&2; return 1; }
    cat "$ST/$1"; loud
}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_eq() { # expect_eq ACTUAL EXPECTED WHAT
    quiet
    if [[ "$1" != "$2" ]]; then fail "$3: got '$1', expected '$2'"; fi
    echo "ok: $3 = $1"; loud
}
raw_manifest() { skopeo inspect --tls-verify=false --raw "docker://$1"; }
raw_digest() { # sha256 of the manifest bytes as served
    local d; d=$(raw_manifest "$1" | sha256sum | cut -d' ' -f1); echo "sha256:$d"
}
media_type() { raw_manifest "$1" | jq -r .mediaType; }
check_digest() { # check_digest REF EXPECTED: raw bytes, skopeo's own digest, and HEAD agree
    local ref=$1 want=$2 got
    got=$(raw_digest "$ref"); expect_eq "$got" "$want" "sha256(raw manifest of $ref)"
    got=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ref")
    expect_eq "$got" "$want" "skopeo inspect digest of $ref"
}
head_digest() { # Docker-Content-Digest of HEAD /v2/NAME/manifests/REF
    "${CURL[@]}" -f -I -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json" \
        "$BASE/v2/$1/manifests/$2" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

# ---------------------------------------------------------------------------------------
# 5. steps
# ---------------------------------------------------------------------------------------
t_versions() {
    skopeo --version; podman --version; buildah --version
    "${ORAS[0]}" -c 'import oras.version; print("oras-py", oras.version.__version__)'
    "${CURL[@]}" -i "$BASE/v2/" | tr -d '\r' | head -n 20; echo
}

t_login() {
    [[ $AUTH == 1 ]] || skip "REGISTRY_USER/REGISTRY_PASSWORD not set: anonymous"
    set +x   # keep the password out of the trace
    echo "+ podman/skopeo/buildah login --tls-verify=false -u $REGISTRY_USER $R"
    printf '%s' "$REGISTRY_PASSWORD" | "${PODMAN[@]}" login --tls-verify=false -u "$REGISTRY_USER" --password-stdin "$R"
    printf '%s' "$REGISTRY_PASSWORD" | skopeo login --tls-verify=false -u "$REGISTRY_USER" --password-stdin "$R"
    printf '%s' "$REGISTRY_PASSWORD" | "${BUILDAH[@]}" login --tls-verify=false -u "$REGISTRY_USER" --password-stdin "$R"
    set -x
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$BASE/v2/")
    expect_eq "$code" 200 "GET /v2/ with credentials"
}

t_build_oci_image() {
    cd "$WORK/ctx"
    printf 'hello from interop %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$RANDOM$RANDOM" >hello.txt
    head -c 300000 /dev/urandom >random.bin           # ~300 KB incompressible layer
    put hello "$(cat hello.txt)"
    ctr=$("${BUILDAH[@]}" from scratch)
    "${BUILDAH[@]}" copy "$ctr" hello.txt /hello.txt
    "${BUILDAH[@]}" config --os linux --arch amd64 --env INTEROP=1 --cmd /hello \
        --label org.opencontainers.image.title=interop-app --created-by 'interop.sh layer 1' "$ctr"
    "${BUILDAH[@]}" commit --format oci --rm "$ctr" localhost/interop-base:latest
    ctr=$("${BUILDAH[@]}" from localhost/interop-base:latest)           # second layer
    "${BUILDAH[@]}" copy "$ctr" random.bin /data/random.bin
    "${BUILDAH[@]}" config --created-by 'interop.sh layer 2' "$ctr"
    "${BUILDAH[@]}" commit --format oci --rm "$ctr" localhost/interop-app:latest
    "${BUILDAH[@]}" images
}

t_push_oci() {
    "${BUILDAH[@]}" push --tls-verify=false --format oci --digestfile "$ST/app.digest" \
        localhost/interop-app:latest "docker://$R/interop/app:v1"
    d=$(get app.digest)
    check_digest "$R/interop/app:v1" "$d"
    expect_eq "$(media_type "$R/interop/app:v1")" application/vnd.oci.image.manifest.v1+json "mediaType"
    expect_eq "$(raw_manifest "$R/interop/app:v1" | jq '.layers | length')" 2 "layer count"
    expect_eq "$(head_digest interop/app v1)" "$d" "HEAD Docker-Content-Digest"
    skopeo inspect --tls-verify=false --raw "docker://$R/interop/app@$d" >/dev/null
    put app.size "$(raw_manifest "$R/interop/app:v1" | wc -c)"
}

t_push_docker() {
    "${BUILDAH[@]}" push --tls-verify=false --format docker --digestfile "$ST/docker.digest" \
        localhost/interop-app:latest "docker://$R/interop/docker:v1"
    d=$(get docker.digest)
    check_digest "$R/interop/docker:v1" "$d"
    expect_eq "$(media_type "$R/interop/docker:v1")" application/vnd.docker.distribution.manifest.v2+json "mediaType"
    # and a conversion by skopeo from the OCI image already in the registry
    skopeo copy --src-tls-verify=false --dest-tls-verify=false --format v2s2 \
        "docker://$R/interop/app:v1" "docker://$R/interop/docker:v1-skopeo"
    expect_eq "$(media_type "$R/interop/docker:v1-skopeo")" application/vnd.docker.distribution.manifest.v2+json "mediaType (skopeo --format v2s2)"
}

t_multiarch() {
    cd "$WORK/ctx"
    for arch in amd64 arm64; do
        printf 'interop %s image %s\n' "$arch" "$RANDOM$RANDOM" >"arch-$arch.txt"
        ctr=$("${BUILDAH[@]}" from scratch)
        "${BUILDAH[@]}" copy "$ctr" "arch-$arch.txt" /arch.txt
        "${BUILDAH[@]}" config --os linux --arch "$arch" "$ctr"
        [[ $arch == arm64 ]] && "${BUILDAH[@]}" config --variant v8 "$ctr"
        "${BUILDAH[@]}" commit --format oci --rm "$ctr" "localhost/interop-multi:$arch"
    done
    "${BUILDAH[@]}" manifest create localhost/interop-multi:list
    for arch in amd64 arm64; do
        "${BUILDAH[@]}" manifest add localhost/interop-multi:list "containers-storage:localhost/interop-multi:$arch"
    done
    "${BUILDAH[@]}" manifest inspect localhost/interop-multi:list
    "${BUILDAH[@]}" manifest push --all --tls-verify=false --format oci --digestfile "$ST/multi.digest" \
        localhost/interop-multi:list "docker://$R/interop/multi:v1"
    d=$(get multi.digest)
    check_digest "$R/interop/multi:v1" "$d"
    raw=$(raw_manifest "$R/interop/multi:v1")
    expect_eq "$(jq -r .mediaType <<<"$raw")" application/vnd.oci.image.index.v1+json "index mediaType"
    expect_eq "$(jq -r '[.manifests[].platform.architecture] | sort | join(",")' <<<"$raw")" amd64,arm64 "platforms"
    for child in $(jq -r '.manifests[].digest' <<<"$raw"); do
        expect_eq "$(raw_digest "$R/interop/multi@$child")" "$child" "child manifest by digest"
    done
    put multi.arm64 "$(jq -r '.manifests[] | select(.platform.architecture=="arm64") | .digest' <<<"$raw")"
    expect_eq "$(skopeo --override-arch arm64 --override-os linux inspect --tls-verify=false \
        --format '{{.Architecture}}' "docker://$R/interop/multi:v1")" arm64 "platform resolution (arm64)"
    # the same list as a Docker manifest list
    "${BUILDAH[@]}" manifest push --all --tls-verify=false --format v2s2 \
        localhost/interop-multi:list "docker://$R/interop/multi:v1-docker"
    expect_eq "$(media_type "$R/interop/multi:v1-docker")" application/vnd.docker.distribution.manifest.list.v2+json "manifest list mediaType"
}

t_copy_between_repos() {
    skopeo copy --src-tls-verify=false --dest-tls-verify=false \
        "docker://$R/interop/app:v1" "docker://$R/interop/artifact:base"
    check_digest "$R/interop/artifact:base" "$(get app.digest)"
    skopeo copy --src-tls-verify=false --dest-tls-verify=false \
        "docker://$R/interop/app:v1" "docker://$R/interop/app:v2"          # same repo, new tag
    check_digest "$R/interop/app:v2" "$(get app.digest)"
    skopeo copy --all --src-tls-verify=false --dest-tls-verify=false \
        "docker://$R/interop/multi:v1" "docker://$R/interop/multi-copy:v1"
    check_digest "$R/interop/multi-copy:v1" "$(get multi.digest)"
}

t_oci_layout() {
    # A hand-made OCI image layout (no builder involved), pushed with skopeo.
    L=$WORK/layout; mkdir -p "$L/blobs/sha256" "$WORK/layer-src"
    printf 'made by hand %s\n' "$RANDOM$RANDOM" >"$WORK/layer-src/handmade.txt"
    put handmade "$(cat "$WORK/layer-src/handmade.txt")"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$WORK/layer-src" -cf "$WORK/layer.tar" handmade.txt
    diffid=sha256:$(sha256sum <"$WORK/layer.tar" | cut -d' ' -f1)
    gzip -n -c "$WORK/layer.tar" >"$WORK/layer.tar.gz"
    ldig=$(sha256sum <"$WORK/layer.tar.gz" | cut -d' ' -f1); lsize=$(stat -c %s "$WORK/layer.tar.gz")
    cp "$WORK/layer.tar.gz" "$L/blobs/sha256/$ldig"
    printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/handmade.txt"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diffid" >"$WORK/config.json"
    cdig=$(sha256sum <"$WORK/config.json" | cut -d' ' -f1); csize=$(stat -c %s "$WORK/config.json")
    cp "$WORK/config.json" "$L/blobs/sha256/$cdig"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
        "$cdig" "$csize" "$ldig" "$lsize" >"$WORK/manifest.json"
    mdig=$(sha256sum <"$WORK/manifest.json" | cut -d' ' -f1); msize=$(stat -c %s "$WORK/manifest.json")
    cp "$WORK/manifest.json" "$L/blobs/sha256/$mdig"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
        "$mdig" "$msize" >"$L/index.json"
    put layout.digest "sha256:$mdig"
    skopeo copy --dest-tls-verify=false "oci:$L:v1" "docker://$R/interop/layout:v1"
    check_digest "$R/interop/layout:v1" "sha256:$mdig"
    # and back into a fresh layout: same manifest bytes, same layer content
    skopeo copy --src-tls-verify=false "docker://$R/interop/layout:v1" "oci:$WORK/layout-back:v1"
    back=$(jq -r '.manifests[0].digest' "$WORK/layout-back/index.json")
    expect_eq "$back" "sha256:$mdig" "manifest digest after round trip"
    cmp "$WORK/layout-back/blobs/sha256/$ldig" "$WORK/layer.tar.gz"
    echo "ok: layer blob identical after round trip"
}

t_blob_api() {
    # Plain HTTP checks of what the clients rely on: blob GET/HEAD by digest, catalog.
    ldig=$(raw_manifest "$R/interop/layout:v1" | jq -r '.layers[0].digest')
    "${CURL[@]}" -f -L -o "$WORK/blob.get" "$BASE/v2/interop/layout/blobs/$ldig"
    expect_eq "sha256:$(sha256sum <"$WORK/blob.get" | cut -d' ' -f1)" "$ldig" "GET blob content digest"
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -I "$BASE/v2/interop/layout/blobs/sha256:$(printf 'nope' | sha256sum | cut -d' ' -f1)")
    expect_eq "$code" 404 "HEAD unknown blob"
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$BASE/v2/interop/nosuchrepo/manifests/v1")
    expect_eq "$code" 404 "GET manifest in unknown repository"
    "${CURL[@]}" -f "$BASE/v2/_catalog" | tee "$WORK/catalog.json"; echo
    for repo in interop/app interop/docker interop/multi interop/layout; do
        jq -e --arg r "$repo" '.repositories | index($r) != null' "$WORK/catalog.json" >/dev/null \
            || fail "catalog lacks $repo"
    done
    echo "ok: catalog lists the pushed repositories"
}

t_artifact_push_pull() {
    mkdir -p "$WORK/art" && cd "$WORK/art"
    printf '{"sbom":"interop","nonce":"%s"}\n' "$RANDOM$RANDOM" >sbom.json
    head -c 5000 /dev/urandom >blob.bin      # pushed in 1 KiB PATCH chunks
    out=$("${ORAS[@]}" push "$R/interop/artifact:sbom" --chunked --chunk-size 1024 \
        --config-media-type application/vnd.interop.sbom.config.v1+json \
        --file sbom.json:application/vnd.interop.sbom.v1+json \
        --file blob.bin:application/octet-stream \
        --subject "$R/interop/artifact:base")
    echo "$out"
    put sbom.digest "$(jq -r .digest <<<"$out")"
    raw=$(raw_manifest "$R/interop/artifact:sbom")
    expect_eq "$(jq -r .subject.digest <<<"$raw")" "$(get app.digest)" "artifact subject digest"
    expect_eq "$(jq -r .config.mediaType <<<"$raw")" application/vnd.interop.sbom.config.v1+json "artifact config mediaType"
    "${ORAS[@]}" pull "$R/interop/artifact:sbom" --outdir "$WORK/art/pulled"
    cmp sbom.json pulled/sbom.json && cmp blob.bin pulled/blob.bin
    echo "ok: pulled files identical"
}

t_artifact_attach() {
    mkdir -p "$WORK/art" && cd "$WORK/art"
    printf 'signature for %s\n' "$(get app.digest)" >sig.txt
    out=$("${ORAS[@]}" attach "$R/interop/artifact:base" \
        --artifact-type application/vnd.interop.signature.v1 \
        --file sig.txt:application/vnd.interop.signature.v1+txt)
    echo "$out"
    d=$(jq -r .digest <<<"$out")
    put sig.digest "$d"
    raw=$(raw_manifest "$R/interop/artifact@$d")
    expect_eq "$(jq -r .artifactType <<<"$raw")" application/vnd.interop.signature.v1 "artifactType"
    expect_eq "$(jq -r .subject.digest <<<"$raw")" "$(get app.digest)" "subject digest"
    expect_eq "$(raw_digest "$R/interop/artifact@$d")" "$d" "attached manifest digest"
    oci_subject=$(jq -r '.oci_subject // ""' <<<"$out")
    if [[ -n $oci_subject ]]; then
        expect_eq "$oci_subject" "$(get app.digest)" "OCI-Subject response header"
    elif [[ $REFERRERS_MODE == required ]]; then
        fail "PUT of a manifest with a subject returned no OCI-Subject header"
    else
        echo "note: no OCI-Subject header (server without referrers support)"
    fi
}

t_referrers() {
    subject=$(get app.digest)
    url="$BASE/v2/interop/artifact/referrers/$subject"
    code=$("${CURL[@]}" -o "$WORK/referrers.json" -D "$WORK/referrers.hdr" -w '%{http_code}' "$url")
    cat "$WORK/referrers.hdr"; cat "$WORK/referrers.json"; echo
    if [[ $code == 404 && $REFERRERS_MODE == optional ]]; then
        skip "no referrers API (404) and INTEROP_REFERRERS=optional"
    fi
    expect_eq "$code" 200 "GET referrers status"
    ct=$(tr -d '\r' <"$WORK/referrers.hdr" | awk -F': ' 'tolower($1)=="content-type"{print $2}')
    expect_eq "${ct%%;*}" application/vnd.oci.image.index.v1+json "referrers Content-Type"
    expect_eq "$(jq -r .mediaType "$WORK/referrers.json")" application/vnd.oci.image.index.v1+json "referrers mediaType"
    sbom=$(get sbom.digest); sig=$(get sig.digest)
    expect_eq "$(jq -r '[.manifests[].digest] | sort | join(",")' "$WORK/referrers.json")" \
        "$(printf '%s\n' "$sbom" "$sig" | sort | paste -sd,)" "referrer digests"
    expect_eq "$(jq -r --arg d "$sig" '.manifests[] | select(.digest==$d) | .artifactType' "$WORK/referrers.json")" \
        application/vnd.interop.signature.v1 "artifactType of the attached signature"
    expect_eq "$(jq -r --arg d "$sbom" '.manifests[] | select(.digest==$d) | .artifactType' "$WORK/referrers.json")" \
        application/vnd.interop.sbom.config.v1+json "artifactType of the sbom (its config mediaType)"
    # artifactType filter
    code=$("${CURL[@]}" -o "$WORK/referrers-f.json" -D "$WORK/referrers-f.hdr" -w '%{http_code}' \
        "$url?artifactType=application/vnd.interop.signature.v1")
    cat "$WORK/referrers-f.hdr"; cat "$WORK/referrers-f.json"; echo
    expect_eq "$code" 200 "filtered referrers status"
    jq -e --arg d "$sig" '[.manifests[].digest] | index($d) != null' "$WORK/referrers-f.json" >/dev/null \
        || fail "filtered referrers lack the signature"
    if tr -d '\r' <"$WORK/referrers-f.hdr" | grep -i '^oci-filters-applied:.*artifactType' >/dev/null; then
        expect_eq "$(jq -r '[.manifests[].digest] | join(",")' "$WORK/referrers-f.json")" "$sig" "filtered referrers"
    else
        fail "no OCI-Filters-Applied: artifactType header on a filtered referrers response"
    fi
    # a digest nobody refers to: 200 with an empty index
    none=sha256:$(printf 'no referrers here' | sha256sum | cut -d' ' -f1)
    code=$("${CURL[@]}" -o "$WORK/referrers-none.json" -w '%{http_code}' "$BASE/v2/interop/artifact/referrers/$none")
    expect_eq "$code" 200 "referrers of an unknown digest status"
    expect_eq "$(jq '.manifests | length' "$WORK/referrers-none.json")" 0 "referrers of an unknown digest"
}

t_podman_pull() {
    # .Digest is per image ID (the first pull's); RepoDigests records every name@digest pulled.
    repo_digests() { "${PODMAN[@]}" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$1"; }
    has_repo_digest() { # has_repo_digest IMAGE NAME@DIGEST
        local all; all=$(repo_digests "$1")   # no `| grep -q`: early exit + pipefail = flaky
        grep -xF "$2" <<<"$all" >/dev/null || fail "podman RepoDigests of $1 lack $2: $(paste -sd' ' <<<"$all")"
        echo "ok: podman has $2"
    }
    "${PODMAN[@]}" pull --tls-verify=false "$R/interop/app:v1"
    expect_eq "$("${PODMAN[@]}" image inspect --format '{{.Digest}}' "$R/interop/app:v1")" "$(get app.digest)" "podman image digest (oci)"
    has_repo_digest "$R/interop/app:v1" "$R/interop/app@$(get app.digest)"
    "${PODMAN[@]}" pull --tls-verify=false "$R/interop/docker:v1"
    has_repo_digest "$R/interop/docker:v1" "$R/interop/docker@$(get docker.digest)"
    "${PODMAN[@]}" pull --tls-verify=false --arch arm64 "$R/interop/multi:v1"
    expect_eq "$("${PODMAN[@]}" image inspect --format '{{.Architecture}}' "$R/interop/multi:v1")" arm64 "podman pulled arm64 from the index"
    has_repo_digest "$R/interop/multi:v1" "$R/interop/multi@$(get multi.arm64)"
    "${PODMAN[@]}" pull --tls-verify=false "$R/interop/layout:v1"
    has_repo_digest "$R/interop/layout:v1" "$R/interop/layout@$(get layout.digest)"
    "${PODMAN[@]}" images --digests
    # content: mount the pulled image (vfs: a plain directory) and read the files back
    mnt=$("${PODMAN[@]}" image mount "$R/interop/app:v1")
    expect_eq "$(cat "$mnt/hello.txt")" "$(get hello)" "hello.txt in the pulled image"
    cmp "$mnt/data/random.bin" "$WORK/ctx/random.bin"
    "${PODMAN[@]}" image unmount "$R/interop/app:v1"
    mnt=$("${PODMAN[@]}" image mount "$R/interop/layout:v1")
    expect_eq "$(cat "$mnt/handmade.txt")" "$(get handmade)" "handmade.txt in the pulled image"
    "${PODMAN[@]}" image unmount "$R/interop/layout:v1"
}

t_list_tags() {
    tags=$(skopeo list-tags --tls-verify=false "docker://$R/interop/app")
    echo "$tags"
    expect_eq "$(jq -r '.Tags | sort | join(",")' <<<"$tags")" v1,v2 "tags of interop/app"
    tags=$(skopeo list-tags --tls-verify=false "docker://$R/interop/artifact")
    echo "$tags"
    expect_eq "$(jq -r '.Tags | sort | join(",")' <<<"$tags")" base,sbom "tags of interop/artifact"
}

t_delete() {
    d=$(get docker.digest)
    skopeo delete --tls-verify=false "docker://$R/interop/docker:v1"
    if skopeo inspect --tls-verify=false --raw "docker://$R/interop/docker:v1" >/dev/null 2>&1; then
        fail "interop/docker:v1 still resolves after delete"
    fi
    echo "ok: interop/docker:v1 is gone"
    if skopeo inspect --tls-verify=false --raw "docker://$R/interop/docker@$d" >/dev/null 2>&1; then
        fail "interop/docker@$d still resolves after delete"
    fi
    echo "ok: interop/docker@$d is gone"
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "$BASE/v2/interop/docker/manifests/$d")
    expect_eq "$code" 404 "GET deleted manifest"
    # other repositories are untouched
    check_digest "$R/interop/app:v1" "$(get app.digest)"
    # a deleted tag can be pushed again
    skopeo copy --src-tls-verify=false --dest-tls-verify=false \
        "docker://$R/interop/app:v1" "docker://$R/interop/docker:again"
    check_digest "$R/interop/docker:again" "$(get app.digest)"
}

t_registryctl() { # our server with auth only: registryctl's auth file and tokens in real clients
    [[ $AUTH == 1 && -n "${REGISTRYCTL:-}" ]] || skip "needs our server (with auth) and registryctl"
    local dir=$WORK/registryctl cfg tokcfg token
    mkdir -p "$dir"; cfg=$dir/config.json; tokcfg=$dir/token.json
    echo '{"auths":{"other.example":{"auth":"b3RoZXI6ZW50cnk="}},"credHelpers":{"x.example":"none"}}' >"$cfg"
    quiet; printf '%s' "$REGISTRY_PASSWORD" | "$REGISTRYCTL" login "$BASE" --insecure -u "$REGISTRY_USER" --password-stdin --to "$cfg"; loud
    expect_eq "$(jq -r '.auths["other.example"].auth' "$cfg")" b3RoZXI6ZW50cnk= "entry kept by registryctl login"
    expect_eq "$(jq -r '.credHelpers["x.example"]' "$cfg")" none "credHelpers kept by registryctl login"
    # skopeo and podman use the file registryctl wrote.
    skopeo inspect --tls-verify=false --authfile "$cfg" --raw "docker://$R/interop/app:v1" >/dev/null
    "${PODMAN[@]}" pull -q --tls-verify=false --authfile "$cfg" "$R/interop/app:v1" >/dev/null
    echo "ok: skopeo and podman authenticate with registryctl's auth file"
    # A token from `registryctl token create` works as a password.
    token=$("$REGISTRYCTL" token create --name interop --expires 1h --server "$BASE" --insecure --to "$cfg")
    quiet; printf '%s' "$token" | skopeo login --tls-verify=false --authfile "$tokcfg" -u anything --password-stdin "$R"; loud
    skopeo inspect --tls-verify=false --authfile "$tokcfg" --raw "docker://$R/interop/app:v1" >/dev/null
    quiet; printf '%s' "$token" | "${PODMAN[@]}" login --tls-verify=false --authfile "$tokcfg" -u anything --password-stdin "$R"; loud
    echo "ok: an access token from registryctl logs skopeo and podman in"
    # A viewer of the namespace may pull but not push.
    quiet; printf 'viewer-password-1' | "$REGISTRYCTL" user create viewer1 --password-stdin --server "$BASE" --insecure --to "$cfg"; loud
    "$REGISTRYCTL" rolebinding add interop registry-viewer user:viewer1 --server "$BASE" --insecure --to "$cfg"
    quiet; printf 'viewer-password-1' | skopeo login --tls-verify=false --authfile "$dir/viewer.json" -u viewer1 --password-stdin "$R"; loud
    skopeo inspect --tls-verify=false --authfile "$dir/viewer.json" --raw "docker://$R/interop/app:v1" >/dev/null
    if skopeo copy --src-tls-verify=false --dest-tls-verify=false --authfile "$dir/viewer.json" \
        "docker://$R/interop/app:v1" "docker://$R/interop/viewer-copy:v1" >/dev/null 2>&1; then
        fail "a registry-viewer could push"
    fi
    echo "ok: registry-viewer pulls, and its push is refused"
}

t_oidc() { # ID tokens of a real OIDC provider as podman/skopeo passwords; registryctl login --oidc
    [[ $OIDC == 1 && -n "${REGISTRYCTL:-}" ]] || skip "REGISTRY_TEST_OIDC_ISSUER not set (bash .ci/services/oidc.sh start DIR)"
    local dir=$WORK/oidc issuer=$REGISTRY_TEST_OIDC_ISSUER ca=$REGISTRY_TEST_OIDC_CA_FILE
    local client=${REGISTRY_TEST_OIDC_CLIENT_ID:-registry} admin=$WORK/registryctl/config.json
    mkdir -p "$dir"
    id_token() { # id_token LOGIN: from the provider's test-only device-flow driver
        curl -sS --max-time 60 --cacert "$ca" -H 'content-type: application/json' \
            -d "{\"login\":\"$1\",\"password\":\"$1-password\",\"client_id\":\"$client\",\"scope\":\"openid groups\"}" \
            "$issuer/test/id-token" | jq -er .id_token
    }
    "$REGISTRYCTL" rolebinding add interop registry-viewer group:oidc:devs --server "$BASE" --insecure --to "$admin"
    # alice is in group devs: podman and skopeo log in with her ID token and pull.
    quiet; alice=$(id_token alice); loud
    quiet; printf '%s' "$alice" | "${PODMAN[@]}" login --tls-verify=false --authfile "$dir/alice.json" -u x --password-stdin "$R"; loud
    "${PODMAN[@]}" pull -q --tls-verify=false --authfile "$dir/alice.json" "$R/interop/app:v1" >/dev/null
    skopeo inspect --tls-verify=false --authfile "$dir/alice.json" --raw "docker://$R/interop/app:v1" >/dev/null
    echo "ok: podman and skopeo pull with an OIDC ID token as the password (group:oidc:devs)"
    if skopeo copy --src-tls-verify=false --dest-tls-verify=false --authfile "$dir/alice.json" \
        "docker://$R/interop/app:v1" "docker://$R/interop/oidc-copy:v1" >/dev/null 2>&1; then
        fail "an OIDC user with only group:oidc:devs (viewer) could push"
    fi
    echo "ok: her push is refused"
    # bob is not in devs: logged in, but refused.
    quiet; bob=$(id_token bob); loud
    quiet; printf '%s' "$bob" | skopeo login --tls-verify=false --authfile "$dir/bob.json" -u x --password-stdin "$R"; loud
    if skopeo inspect --tls-verify=false --authfile "$dir/bob.json" --raw "docker://$R/interop/app:v1" >/dev/null 2>&1; then
        fail "an OIDC user outside group devs could pull"
    fi
    echo "ok: an OIDC user outside the group is refused"
    # A tampered token does not log in.
    quiet; forged="${alice%.*}.$(printf '%s' "${alice##*.}" | rev)"; loud
    quiet; if printf '%s' "$forged" | "${PODMAN[@]}" login --tls-verify=false --authfile "$dir/forged.json" -u x --password-stdin "$R" >/dev/null 2>&1; then
        loud; fail "podman logged in with a tampered ID token"; fi; loud
    echo "ok: a tampered ID token is refused"
    # registryctl login --oidc: the device flow, the user approving at the provider; the auth
    # file it writes is what podman uses.
    "$REGISTRYCTL" login "$BASE" --insecure --to "$dir/device.json" --oidc --oidc-issuer-url "$issuer" \
        --oidc-client-id "$client" --oidc-ca-file "$ca" --oidc-scope groups 2>"$dir/device.err" &
    local pid=$! code=""
    for _ in $(seq 100); do
        code=$(sed -n 's/.*enter the code \([A-Z0-9-]*\).*/\1/p' "$dir/device.err" | head -n1)
        [[ -n $code ]] && break
        sleep 0.2
    done
    [[ -n $code ]] || { cat "$dir/device.err"; fail "registryctl printed no user code"; }
    curl -sS --max-time 60 --cacert "$ca" -H 'content-type: application/json' \
        -d "{\"user_code\":\"$code\",\"login\":\"alice\",\"password\":\"alice-password\"}" "$issuer/test/approve"; echo
    wait "$pid" || { cat "$dir/device.err"; fail "registryctl login --oidc failed"; }
    cat "$dir/device.err"
    "${PODMAN[@]}" pull -q --tls-verify=false --authfile "$dir/device.json" "$R/interop/app:v1" >/dev/null
    skopeo inspect --tls-verify=false --authfile "$dir/device.json" --raw "docker://$R/interop/app:v1" >/dev/null
    echo "ok: podman and skopeo pull with the auth file registryctl login --oidc wrote"
}

t_immutable_tags() { # our server only: a namespace policy's immutable tags against every client
    [[ $AUTH == 1 && -n "${REGISTRYCTL:-}" ]] || skip "needs our server (with auth) and registryctl"
    local dir=$WORK/immutable cfg app other out
    mkdir -p "$dir"; cfg=$dir/config.json
    quiet; printf '%s' "$REGISTRY_PASSWORD" | "$REGISTRYCTL" login "$BASE" --insecure -u "$REGISTRY_USER" --password-stdin --to "$cfg"; loud
    "$REGISTRYCTL" namespace create locked --server "$BASE" --insecure --to "$cfg"
    "$REGISTRYCTL" namespace policy set locked --immutable-tags 'v*' --server "$BASE" --insecure --to "$cfg"
    app=$(get app.digest); other=$(get docker.digest)
    skopeo copy --src-tls-verify=false --dest-tls-verify=false "docker://$R/interop/app:v1" "docker://$R/locked/app:v1"
    # The same image again (a retry) is accepted.
    skopeo copy --src-tls-verify=false --dest-tls-verify=false "docker://$R/interop/app:v1" "docker://$R/locked/app:v1"
    echo "ok: v1 created and pushed again unchanged"
    # Another image to v1: skopeo, podman and oras-py are refused with the rule in the message.
    if out=$(skopeo copy --src-tls-verify=false --dest-tls-verify=false \
        "docker://$R/interop/docker:v1" "docker://$R/locked/app:v1" 2>&1); then
        fail "skopeo moved an immutable tag"
    fi
    grep -q 'immutable' <<<"$out" || fail "skopeo's error does not say why: $out"
    echo "ok: skopeo refused: $(grep -o 'tag v1 in locked/app is immutable[^"]*' <<<"$out" | head -1)"
    "${PODMAN[@]}" pull -q --tls-verify=false "$R/interop/docker:v1" >/dev/null
    if out=$("${PODMAN[@]}" push --tls-verify=false --format v2s2 "$R/interop/docker:v1" "$R/locked/app:v1" 2>&1); then
        fail "podman moved an immutable tag"
    fi
    grep -q 'immutable' <<<"$out" || fail "podman's error does not say why: $out"
    echo "ok: podman push refused"
    printf 'not the image\n' >"$dir/note.txt"
    # oras-py retries a 403 with growing sleeps (about two minutes in all): one refusal is
    # enough to see, so it gets 20 s; the server's audit line shows what it was told.
    refusals=$(grep -c 'push refused: immutable tag' "$SERVER_LOG" || true)
    if out=$(cd "$dir" && timeout 20 "${ORAS[@]}" push "$R/locked/app:v1" --file note.txt:text/plain 2>&1); then
        fail "oras-py moved an immutable tag"
    fi
    [[ $(grep -c 'push refused: immutable tag' "$SERVER_LOG") -gt $refusals ]] \
        || fail "oras-py's push failed without an immutable-tag refusal: $out"
    echo "ok: oras-py push refused"
    (cd "$dir" && "${ORAS[@]}" push "$R/locked/app:latest" --file note.txt:text/plain)
    echo "ok: a tag outside the pattern moves freely"
    # Deleting the tag is refused; it still points at the first image.
    if skopeo delete --tls-verify=false "docker://$R/locked/app:v1" 2>"$dir/delete.err"; then
        fail "skopeo deleted an immutable tag"
    fi
    check_digest "$R/locked/app:v1" "$app"
    [[ "$other" != "$app" ]] || fail "the two images should differ"
}

t_quota() { # our server only: a namespace quota against skopeo
    [[ $AUTH == 1 && -n "${REGISTRYCTL:-}" ]] || skip "needs our server (with auth) and registryctl"
    local dir=$WORK/quota cfg out
    mkdir -p "$dir"; cfg=$dir/config.json
    quiet; printf '%s' "$REGISTRY_PASSWORD" | "$REGISTRYCTL" login "$BASE" --insecure -u "$REGISTRY_USER" --password-stdin --to "$cfg"; loud
    "$REGISTRYCTL" namespace create quota --server "$BASE" --insecure --to "$cfg"
    "$REGISTRYCTL" namespace policy set quota --quota-bytes 1000 --server "$BASE" --insecure --to "$cfg"
    if out=$(skopeo copy --src-tls-verify=false --dest-tls-verify=false \
        "docker://$R/interop/app:v1" "docker://$R/quota/app:v1" 2>&1); then
        fail "skopeo pushed past the quota"
    fi
    grep -q 'namespace quota is over its quota' <<<"$out" || fail "skopeo's error does not give the figures: $out"
    echo "ok: skopeo refused: $(grep -o 'namespace quota is over its quota[^"]*' <<<"$out" | head -1)"
    "$REGISTRYCTL" namespace policy set quota --quota-bytes 1073741824 --server "$BASE" --insecure --to "$cfg"
    skopeo copy --src-tls-verify=false --dest-tls-verify=false "docker://$R/interop/app:v1" "docker://$R/quota/app:v1"
    out=$("$REGISTRYCTL" namespace show quota --server "$BASE" --insecure --to "$cfg")
    grep -q '^images: *1$' <<<"$out" || fail "namespace show after the push: $out"
    # Captured first: grep -q stops reading at its match, which would fail registryctl's
    # later writes (a broken pipe, and pipefail).
    out=$("$REGISTRYCTL" namespace usage quota --recompute --server "$BASE" --insecure --to "$cfg")
    grep -q 'the counters were exact' <<<"$out" || fail "usage drifted: $out"
    echo "ok: pushed once the quota allowed it; usage exact"
}

t_distribution_token_server() { # CNCF Distribution with auth.token pointing at our registry
    [[ $OURS == 1 && -n "${REGISTRYCTL:-}" ]] || skip "needs our server (with auth) and registryctl"
    local dir=$WORK/distribution cfg bin D dpid code
    mkdir -p "$dir/store"; cfg=$dir/admin.json
    bin=$(bash "$ROOT/.ci/services/distribution.sh" start "$dir/svc" | sed -n 's/^export REGISTRY_TEST_DISTRIBUTION=//p')
    [[ -n $bin && -x $bin ]] || fail "no docker-registry"
    quiet; printf '%s' "$REGISTRY_PASSWORD" | "$REGISTRYCTL" login "$BASE" --insecure -u "$REGISTRY_USER" --password-stdin --to "$cfg"; loud
    "$REGISTRYCTL" token-ca --to "$cfg" -o "$dir/token-ca.pem"
    # An editor and a viewer of namespace interop, as far as our registry is concerned.
    quiet; printf 'dist-editor-pass-1' | "$REGISTRYCTL" user create disteditor --password-stdin --to "$cfg"; loud
    quiet; printf 'dist-viewer-pass-1' | "$REGISTRYCTL" user create distviewer --password-stdin --to "$cfg"; loud
    "$REGISTRYCTL" rolebinding add interop registry-editor user:disteditor --to "$cfg"
    "$REGISTRYCTL" rolebinding add interop registry-viewer user:distviewer --to "$cfg"
    D=127.0.0.1:$(free_port)
    printf '%s\n' "version: 0.1" "log:" "  level: info" "storage:" "  filesystem:" \
        "    rootdirectory: $dir/store" "http:" "  addr: $D" "auth:" "  token:" \
        "    realm: $BASE/v2/token" "    service: $DIST_SERVICE" "    issuer: registry" \
        "    rootcertbundle: $dir/token-ca.pem" >"$dir/config.yml"
    # Distribution reads REGISTRY_* variables as configuration: a clean environment.
    env -i PATH="$PATH" "$bin" serve "$dir/config.yml" >"$dir/distribution.log" 2>&1 &
    dpid=$!
    trap "kill $dpid 2>/dev/null || true" EXIT
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$D/v2/" || true)
        [[ $code == 401 ]] && break
        sleep 0.2
    done
    [[ $code == 401 ]] || { cat "$dir/distribution.log"; fail "Distribution did not ask for a token (last: $code)"; }
    local SK=(skopeo --command-timeout 60s)
    # The editor pushes (copying from our registry), the viewer pulls.
    "${SK[@]}" copy --src-tls-verify=false --dest-tls-verify=false --dest-creds disteditor:dist-editor-pass-1 \
        "docker://$R/interop/app:v1" "docker://$D/interop/app:v1"
    "${SK[@]}" inspect --tls-verify=false --creds distviewer:dist-viewer-pass-1 --raw "docker://$D/interop/app:v1" >/dev/null
    echo "ok: Distribution took a push from our editor and served our viewer"
    if "${SK[@]}" copy --src-tls-verify=false --dest-tls-verify=false --dest-creds distviewer:dist-viewer-pass-1 \
        "docker://$R/interop/app:v1" "docker://$D/interop/viewer:v1" >/dev/null 2>&1; then
        fail "Distribution let our viewer push"
    fi
    if "${SK[@]}" inspect --tls-verify=false --no-creds --raw "docker://$D/interop/app:v1" >/dev/null 2>&1; then
        fail "Distribution served an anonymous pull"
    fi
    if "${SK[@]}" inspect --tls-verify=false --creds distviewer:wrong --raw "docker://$D/interop/app:v1" >/dev/null 2>&1; then
        fail "Distribution served a wrong password"
    fi
    echo "ok: our viewer's push, anonymous and wrong passwords are refused there"
    # An identity token from registryctl login (OAuth2 password grant), used by skopeo for
    # Distribution: the refresh_token grant at our realm, for Distribution's service.
    quiet; printf 'dist-viewer-pass-1' | "$REGISTRYCTL" login "$BASE" --insecure -u distviewer --password-stdin --to "$dir/viewer.json"; loud
    [[ $(jq -r --arg k "$R" '.auths[$k].identitytoken' "$dir/viewer.json") == rgr_* ]] || fail "registryctl login stored no identity token"
    jq --arg k "$R" --arg d "$D" '{auths: {($d): .auths[$k]}}' "$dir/viewer.json" >"$dir/viewer-dist.json"
    "${SK[@]}" inspect --tls-verify=false --authfile "$dir/viewer-dist.json" --raw "docker://$D/interop/app:v1" >/dev/null
    echo "ok: an identity token of ours pulls from Distribution (OAuth2 refresh_token grant)"
}

t_proxy() { # proxy namespace `mirror` over a Distribution seeded with skopeo; podman pulls
    [[ $OURS == 1 ]] || skip "needs our server started with --proxy"
    local dir=$WORK/proxy bin dpid code conf image digest mnt
    mkdir -p "$dir/store"
    bin=$(bash "$ROOT/.ci/services/distribution.sh" start "$dir/svc" | sed -n 's/^export REGISTRY_TEST_DISTRIBUTION=//p')
    [[ -n $bin && -x $bin ]] || fail "no docker-registry"
    printf '%s\n' "version: 0.1" "log:" "  level: warn" "storage:" "  filesystem:" \
        "    rootdirectory: $dir/store" "http:" "  addr: $PROXY_UPSTREAM" >"$dir/config.yml"
    env -i PATH="$PATH" "$bin" serve "$dir/config.yml" >"$dir/distribution.log" 2>&1 &
    dpid=$!
    trap "kill $dpid 2>/dev/null || true" EXIT
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$PROXY_UPSTREAM/v2/" || true)
        [[ $code == 200 ]] && break
        sleep 0.2
    done
    [[ $code == 200 ]] || { cat "$dir/distribution.log"; fail "Distribution did not start (last: $code)"; }
    # Seed the upstream from our registry with skopeo.
    skopeo --command-timeout 60s copy --src-tls-verify=false --dest-tls-verify=false \
        "docker://$R/interop/app:v1" "docker://$PROXY_UPSTREAM/library/app:v1"
    digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$PROXY_UPSTREAM/library/app:v1")
    # podman pulls the upstream's image through a registries.conf mirror at <registry>/mirror.
    conf=$dir/registries.conf
    printf '%s\n' 'unqualified-search-registries = []' 'short-name-mode = "disabled"' '' \
        '[[registry]]' "location = \"$PROXY_UPSTREAM\"" 'insecure = true' '' \
        '[[registry.mirror]]' "location = \"$R/mirror\"" 'insecure = true' >"$conf"
    image=$PROXY_UPSTREAM/library/app:v1
    local P
    P=(podman --root "$dir/podman/root" --runroot "$dir/podman/run" --storage-driver vfs
       --cgroup-manager=cgroupfs --events-backend=file)
    CONTAINERS_REGISTRIES_CONF=$conf "${P[@]}" pull "$image"
    expect_eq "$(head_digest mirror/library/app v1)" "$digest" "digest of mirror/library/app:v1 (cached)"
    # The upstream goes away; the same pull is served from the cache.
    kill "$dpid"; wait "$dpid" 2>/dev/null || true
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$PROXY_UPSTREAM/v2/" || true)
    expect_eq "$code" 000 "upstream stopped"
    "${P[@]}" rmi -f "$image"
    CONTAINERS_REGISTRIES_CONF=$conf "${P[@]}" pull "$image"
    expect_eq "$("${P[@]}" image inspect --format '{{.Digest}}' "$image")" "$digest" "digest pulled from the cache"
    mnt=$("${P[@]}" image mount "$image")
    cmp "$mnt/data/random.bin" "$WORK/ctx/random.bin"
    "${P[@]}" image unmount "$image"
    # Pushes into the proxy namespace are refused (curl: skopeo would first HEAD the blob,
    # which asks the stopped upstream: 503).
    code=$("${CURL[@]}" -o "$dir/push.err" -w '%{http_code}' -X POST "$BASE/v2/mirror/library/pushed/blobs/uploads/")
    expect_eq "$code" 403 "POST upload into the proxy namespace"
    grep -q 'read-only proxy namespace' "$dir/push.err" || { cat "$dir/push.err"; fail "push refusal without its reason"; }
    "${CURL[@]}" "$BASE/extensions/v2/metrics" | grep '^registry_proxy_requests_total'
    echo "ok: pulled through the mirror, served from the cache with the upstream stopped"
}

say "== client steps against $BASE"
step "versions and GET /v2/"                                              t_versions
step "login (podman, skopeo, buildah) when REGISTRY_USER is set"          t_login
step "buildah: build a two-layer OCI image from scratch"                  t_build_oci_image
step "buildah push (OCI) -> interop/app:v1; compare digests"              t_push_oci
step "buildah push --format docker / skopeo --format v2s2 -> interop/docker" t_push_docker
step "buildah manifest: amd64+arm64 index -> interop/multi (OCI + Docker list)" t_multiarch
step "skopeo copy between repositories (image and --all index)"           t_copy_between_repos
step "skopeo copy from a hand-made oci: layout and back"                  t_oci_layout
step "curl: blob GET/HEAD, unknown repo, catalog"                         t_blob_api
step "oras-py push (chunked) with subject + pull -> interop/artifact:sbom" t_artifact_push_pull
step "oras-py attach (artifactType, empty config, by digest)"             t_artifact_attach
step "curl: GET /v2/interop/artifact/referrers/<digest>"                  t_referrers
step "podman pull (oci, docker, arm64 from index, layout) + content"      t_podman_pull
step "registryctl login/token/rolebinding used by skopeo and podman"     t_registryctl
step "immutable tags (namespace policy) against skopeo, podman and oras-py" t_immutable_tags
step "namespace quota: skopeo refused with the figures, then allowed"      t_quota
step "OIDC: ID tokens as podman/skopeo passwords; registryctl login --oidc" t_oidc
step "Distribution (docker-registry) trusting our tokens: push/pull/deny" t_distribution_token_server
step "proxy namespace over Distribution: podman via registries.conf mirror, upstream stopped" t_proxy
step "skopeo list-tags"                                                   t_list_tags
step "skopeo delete; inspect must fail afterwards"                        t_delete
summary
