#!/usr/bin/env bash
# A throwaway OpenLDAP directory for the LDAP identity provider's tests.
#
#   eval "$(bash .ci/services/ldap.sh start STATE_DIR)"   # then: cargo test ...
#   bash .ci/services/ldap.sh stop STATE_DIR
#
# `start` installs Debian's slapd and ldap-utils when missing (the system instance is
# never started or touched), writes a slapd.conf instance in STATE_DIR with a generated CA
# and server certificate, loads .ci/services/ldap/directory.ldif, runs slapd on 127.0.0.1
# with a plain listener (which also offers StartTLS) and an LDAPS listener on free ports,
# waits until it answers, and prints only `export REGISTRY_TEST_LDAP_*=…` lines on stdout.
# Logs: STATE_DIR/slapd.log. Run again while it runs: prints the same exports.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
action=${1:-}
state=${2:-}
if [[ -z $state || ($action != start && $action != stop) ]]; then
    echo "usage: bash .ci/services/ldap.sh start|stop STATE_DIR" >&2
    exit 2
fi
mkdir -p "$state"
state=$(cd "$state" && pwd)
suffix="dc=example,dc=test"
bind_dn="cn=registry,ou=services,$suffix"

log() { echo "ldap.sh: $*" >&2; }

running_pid() {
    local pid
    pid=$(cat "$state/slapd.pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

print_exports() {
    local port tls_port
    port=$(cat "$state/port")
    tls_port=$(cat "$state/tls-port")
    echo "export REGISTRY_TEST_LDAP_URL=ldap://127.0.0.1:$port"
    echo "export REGISTRY_TEST_LDAPS_URL=ldaps://127.0.0.1:$tls_port"
    echo "export REGISTRY_TEST_LDAP_CA_FILE=$state/ca.pem"
    echo "export REGISTRY_TEST_LDAP_BIND_DN='$bind_dn'"
    echo "export REGISTRY_TEST_LDAP_BIND_PASSWORD_FILE=$state/bind-password"
    echo "export REGISTRY_TEST_LDAP_USER_BASE='ou=people,$suffix'"
    echo "export REGISTRY_TEST_LDAP_GROUP_BASE='ou=groups,$suffix'"
}

if [[ $action == stop ]]; then
    if pid=$(running_pid); then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        log "stopped slapd ($pid)"
    fi
    exit 0
fi

if running_pid >/dev/null && [[ -f $state/port ]]; then
    print_exports
    exit 0
fi

if [[ ! -x /usr/sbin/slapd ]] || ! command -v ldapsearch >/dev/null || ! command -v openssl >/dev/null; then
    log "installing slapd, ldap-utils and openssl"
    export DEBIAN_FRONTEND=noninteractive
    # slapd's postinst would configure the system instance; no debconf questions, and the
    # instance below never uses it.
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends slapd ldap-utils openssl >&2
fi
PATH=$PATH:/usr/sbin

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A fresh instance each start: the directory content is the LDIF, nothing else.
rm -rf "$state/db" "$state/slapd.conf"
mkdir -p "$state/db"

if [[ ! -f $state/server.pem ]]; then
    log "generating a test CA and a server certificate for 127.0.0.1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=registry test LDAP CA" -keyout "$state/ca.key" -out "$state/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$state/server.key" -out "$state/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$state/server.ext"
    openssl x509 -req -in "$state/server.csr" -CA "$state/ca.pem" -CAkey "$state/ca.key" \
        -CAcreateserial -days 3650 -extfile "$state/server.ext" -out "$state/server.pem" 2>/dev/null
    chmod 600 "$state/ca.key" "$state/server.key"
fi

printf 'registry-bind-password' >"$state/bind-password"
chmod 600 "$state/bind-password"
root_password=$(openssl rand -hex 16)

cat >"$state/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $state/slapd.pid
argsfile $state/slapd.args
TLSCACertificateFile $state/ca.pem
TLSCertificateFile $state/server.pem
TLSCertificateKeyFile $state/server.key

database mdb
suffix "$suffix"
rootdn "cn=admin,$suffix"
rootpw $root_password
directory $state/db
# Users bind to prove their password; only the registry's service account reads
# entries, so a search without the service bind finds nothing.
access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by dn.exact="$bind_dn" read
    by * none
EOF

slapadd -q -f "$state/slapd.conf" -l "$here/ldap/directory.ldif" >&2

port=$(free_port)
tls_port=$(free_port)
while [[ $tls_port == "$port" ]]; do tls_port=$(free_port); done
echo "$port" >"$state/port"
echo "$tls_port" >"$state/tls-port"

# In the foreground of its own session (stats logging), in the background of this shell.
setsid slapd -d stats -f "$state/slapd.conf" \
    -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/" >"$state/slapd.log" 2>&1 </dev/null &
for _ in $(seq 100); do
    if LDAPTLS_CACERT="$state/ca.pem" ldapsearch -x -H "ldaps://127.0.0.1:$tls_port" \
        -D "$bind_dn" -y "$state/bind-password" -b "$suffix" -s base "(objectClass=*)" dn \
        >/dev/null 2>&1; then
        log "slapd answers on ldap://127.0.0.1:$port and ldaps://127.0.0.1:$tls_port (log: $state/slapd.log)"
        print_exports
        exit 0
    fi
    sleep 0.1
done
log "slapd did not answer within 10 s; its log:"
tail -n 30 "$state/slapd.log" >&2
exit 1
