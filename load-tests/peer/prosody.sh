#!/usr/bin/env bash
# The peer for `helpline-load relay --compare-peer prosody`: Debian's Prosody on loopback, its message
# archive (mod_mam) in SQLite, XMPP over WebSocket (RFC 7395) at /xmpp-websocket, in-band registration
# (XEP-0077) for the load tool's accounts and stream management (XEP-0198) for its acks.
# Nothing of the peer is kept: everything lives in DIR (the load tool passes a temporary directory).
#
#   load-tests/peer/prosody.sh --install            install the packages only
#   load-tests/peer/prosody.sh DIR HTTP_PORT C2S_PORT
#
# Prints `prosody is listening on http://127.0.0.1:HTTP_PORT pid PID` once the port accepts
# connections, then waits; SIGTERM/SIGINT stop Prosody. Never run `prosody --version` on Debian:
# it starts the server in the foreground.
set -euo pipefail

install() {
    if ! command -v prosody >/dev/null 2>&1 || ! dpkg -s lua-dbi-sqlite3 >/dev/null 2>&1; then
        echo "installing prosody lua-unbound lua-dbi-sqlite3" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y prosody lua-unbound lua-dbi-sqlite3 >&2
    fi
}

if [[ "${1:-}" == "--install" ]]; then
    install
    exit 0
fi
if [[ $# -ne 3 ]]; then
    echo "usage: $0 DIR HTTP_PORT C2S_PORT | $0 --install" >&2
    exit 2
fi
DIR=$(realpath "$1")
HTTP_PORT=$2
C2S_PORT=$3
install
mkdir -p "$DIR/data"

cat > "$DIR/prosody.cfg.lua" <<CFG
-- Written by load-tests/peer/prosody.sh for a load run; not a production configuration.
daemonize = false
run_as_root = true
pidfile = "$DIR/prosody.pid"
data_path = "$DIR/data"
log = { warn = "$DIR/prosody.log" }
interfaces = { "127.0.0.1" }
c2s_ports = { $C2S_PORT }
s2s_ports = { }
component_ports = { }
http_ports = { $HTTP_PORT }
http_interfaces = { "127.0.0.1" }
https_ports = { }
modules_enabled = { "roster", "saslauth", "register", "mam", "websocket", "smacks", "ping", "disco" }
modules_disabled = { "s2s" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
consider_websocket_secure = true
allow_registration = true
-- message archive: every chat message stored for both parties, in SQLite, kept forever
storage = "sql"
sql = { driver = "SQLite3", database = "prosody.sqlite" }
default_archive_policy = true
archive_expires_after = "never"
authentication = "internal_hashed"
VirtualHost "localhost"
CFG

prosody --config "$DIR/prosody.cfg.lua" >>"$DIR/prosody.stdout" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; exit 0' TERM INT
for _ in $(seq 1 300); do
    if ! kill -0 $PID 2>/dev/null; then
        echo "prosody exited during start:" >&2
        cat "$DIR/prosody.stdout" "$DIR/prosody.log" >&2 2>/dev/null || true
        exit 1
    fi
    if (exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT) 2>/dev/null; then
        echo "prosody is listening on http://127.0.0.1:$HTTP_PORT pid $PID"
        wait $PID
        exit $?
    fi
    sleep 0.1
done
echo "prosody did not open port $HTTP_PORT within 30 s" >&2
kill -TERM $PID
exit 1
