#!/usr/bin/env bash
# Runs caller-acks.yml (Artillery 2.0.21, ws engine) against a helpline started here on a fresh
# temporary SQLite database, and prints Artillery's summary and the server's CPU over the run.
#   load-tests/artillery/run.sh [ARRIVAL_PER_S [DURATION_S]]
# Needs: `cargo build --release -p helpline` (HELPLINE_BIN overrides target/release/helpline) and
# `PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --ignore-scripts` in load-tests/artillery (artillery is
# pinned in package.json; the scripts are skipped because one of its dependencies downloads a browser).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${HELPLINE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/helpline}
ARRIVAL=${1:-20}
DURATION=${2:-30}
[[ -x "$BIN" ]] || { echo "no $BIN: cargo build --release -p helpline" >&2; exit 2; }
[[ -x "$HERE/node_modules/.bin/artillery" ]] || (cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --ignore-scripts --no-audit --no-fund)
TMP=$(mktemp -d)
cleanup() { [[ -n "${SERVER:-}" ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
# As helpline-load does: the load comes from one address, so the per-address abuse limits are off.
HELPLINE_SOCKETS_PER_IP=0 HELPLINE_CONTACTS_PER_IP_PER_MIN=0 RUST_LOG=warn \
    "$BIN" --database "sqlite:$TMP/helpline.db" serve --listen 127.0.0.1:0 >"$TMP/server.out" 2>&1 &
SERVER=$!
for _ in $(seq 1 300); do
    ADDR=$(grep -o 'listening on http://[0-9.:]*' "$TMP/server.out" | head -1 | sed 's|.*http://||') || true
    [[ -n "${ADDR:-}" ]] && break
    sleep 0.1
done
[[ -n "${ADDR:-}" ]] || { cat "$TMP/server.out" >&2; echo "the server did not start" >&2; exit 1; }
cpu() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
TICKS=$(getconf CLK_TCK)
echo "helpline at $ADDR (pid $SERVER); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
C0=$(cpu); T0=$(date +%s.%N)
sed -e "s/duration: 30/duration: $DURATION/" -e "s/arrivalRate: 20/arrivalRate: $ARRIVAL/" "$HERE/caller-acks.yml" >"$TMP/run.yml"
DEBUG=${ARTILLERY_DEBUG:-} "$HERE/node_modules/.bin/artillery" run --target "ws://$ADDR/ws/caller" --output "$TMP/report.json" "$TMP/run.yml" >"$TMP/artillery.out" 2>&1 || { (grep -i "WS receive" "$TMP/artillery.out" || true) | tail -8 >&2; tail -30 "$TMP/artillery.out" >&2; cp "$TMP/artillery.out" "${TMPDIR:-/tmp}/artillery-failed.out"; exit 1; }
C1=$(cpu); T1=$(date +%s.%N)
node -e '
const r = require(process.argv[1]).aggregate;
const c = r.counters, s = r.summaries["vusers.session_length"] || {};
const errs = Object.entries(c).filter(([k]) => k.startsWith("errors.")).map(([k, v]) => `${k}=${v}`).join(" ") || "none";
const sent = c["websocket.messages_sent"] || 0;
console.log(`artillery: vusers created=${c["vusers.created"]||0} completed=${c["vusers.completed"]||0} failed=${c["vusers.failed"]||0}; messages sent=${sent} (start + messages); errors: ${errs}`);
console.log(`artillery: session length (connect, start, 20 messages each waiting for its ack, 0.1 s think after each) ms: p50 ${s.median} p95 ${s.p95} p99 ${s.p99} max ${s.max}`);
console.log(`artillery: send rate ${JSON.stringify(r.rates || {})}`);
' "$TMP/report.json"
awk -v c0="$C0" -v c1="$C1" -v t0="$T0" -v t1="$T1" -v hz="$TICKS" 'BEGIN { printf "server cpu: %.0f%% of a core over %.1f s\n", 100 * (c1 - c0) / hz / (t1 - t0), t1 - t0 }'
if grep -q "errors\." "$TMP/report.json" && ! node -e 'const c=require(process.argv[1]).aggregate.counters; process.exit(Object.keys(c).some(k=>k.startsWith("errors."))?1:0)' "$TMP/report.json"; then
    tail -20 "$TMP/artillery.out" >&2
    exit 1
fi
