#!/usr/bin/env bash
# Release runs of every load scenario (issue 7) and of three nodes (issue 8), each step's JSON and
# printed table into a results directory, then the charts (helpline-load plot).
#
#   load-tests/release-runs.sh                 # build, run every step, plot into docs/bench/
#   STEPS=relay-goal,routing-goal load-tests/release-runs.sh   # only these steps
#   LIST=1 load-tests/release-runs.sh           # print the steps and their commands, run nothing
#
# Environment (all optional):
#   RESULTS     results directory (default load-tests/results/<UTC time>; *.json, *.txt, steps.tsv)
#   PG          PostgreSQL server for the postgres and cluster steps (default postgres://postgres@127.0.0.1:5432/test;
#               each step creates a fresh database on it and drops it afterwards)
#   REDIS       Redis for the three-node steps (default redis://127.0.0.1:6379; keys under a prefix of the run's own)
#   DURATION    seconds per rate step (default 10)
#   NO_BUILD=1  use the binaries already in $CARGO_TARGET_DIR/release (default target/release)
#   QUIET_LOAD  wait (at most WAIT_MAX s, default 300) before each step until the 1-minute load average is
#               at most this (e.g. 1.0): the machine may be shared with builds; the load average before each
#               step is also in every JSON report (loadavg_1m_before) and in steps.tsv
#   PLOT_OUT    directory for the PNGs (default docs/bench; PLOT_OUT= skips the charts)
#
# Run from anywhere inside the repository. Prosody is installed from Debian's packages by
# load-tests/peer/prosody.sh if missing (root). A failing step does not stop the others; the script's
# exit code is 1 if any helpline step failed its checks (errors, lost, duplicated, double offers, …).
set -u
cd "$(git rev-parse --show-toplevel)" || exit 2

RESULTS=${RESULTS:-load-tests/results/$(date -u +%Y%m%dT%H%M%SZ)}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${REDIS:-redis://127.0.0.1:6379}
D=${DURATION:-10}
TGT=${CARGO_TARGET_DIR:-target}
BIN="$TGT/release/helpline-load"
WAIT_MAX=${WAIT_MAX:-300}
PLOT_OUT=${PLOT_OUT-docs/bench}

# name|arguments[|VAR=value for the spawned servers]. Order: goals first, then saturation (its overload must not warm up the goal runs).
MATRIX=(
  # relay: the goal (1,000 conversations, 2,000 msg/s), the bare relay on the same steps first
  "relay-goal|relay --spawn-server --compare-bare --conversations 1000 --rate 2000 --duration $D --sources 2"
  # relay saturation: one fresh server per rate (an overloaded step's backlog would spill into the next),
  # the bare relay on the same rate in the same run
  "relay-sat-3000|relay --spawn-server --compare-bare --conversations 1000 --rate 3000 --duration $D --sources 2"
  "relay-sat-5000|relay --spawn-server --compare-bare --conversations 1000 --rate 5000 --duration $D --sources 2"
  "relay-sat-8000|relay --spawn-server --compare-bare --conversations 1000 --rate 8000 --duration $D --sources 2"
  "relay-sat-12000|relay --spawn-server --compare-bare --conversations 1000 --rate 12000 --duration $D --sources 2"
  "relay-sat-16000|relay --spawn-server --compare-bare --conversations 1000 --rate 16000 --duration $D --sources 2"
  "relay-sat-20000|relay --spawn-server --compare-bare --conversations 1000 --rate 20000 --duration $D --sources 2"
  # never silent (issue 19): 2x and 4x the relay's ceiling (about 14,000 msg/s on a quiet machine),
  # one fresh server per step, the per-socket limit off (28 and 56 frames/s per socket): every message
  # answered within 10 s (unacked = 0) and, with refused ones sent again, delivered (lost = 0)
  "relay-overload-2x|relay --spawn-server --conversations 1000 --rate 28000 --duration 5 --wait 60 --sources 2|HELPLINE_WS_RATE_PER_SEC=0"
  "relay-overload-4x|relay --spawn-server --conversations 1000 --rate 56000 --duration 5 --wait 60 --sources 2|HELPLINE_WS_RATE_PER_SEC=0"
  # the floor's own ceiling: the bare relay alone at rates helpline does not reach
  "relay-bare-ceiling|relay --bare --conversations 1000 --rate 25000,40000 --duration $D --sources 2"
  # the peer: helpline, the bare relay and Prosody in one run (100 conversations: 200 XMPP accounts)
  # (5,000 msg/s over 100 conversations is 25 frames/s per socket: above the per-socket limit of 20/s,
  # which is turned off for this step only, as the server's --ws-rate-per-sec allows)
  "relay-peer|relay --spawn-server --compare-bare --compare-peer prosody --conversations 100 --rate 50,200,2000,5000,10000,15000 --peer-rate 50,200,400 --duration $D|HELPLINE_WS_RATE_PER_SEC=0"
  # routing: the goal, then saturation (accept at once, short conversations)
  "routing-goal|routing --spawn-server --counsellors 1000 --rate 100 --duration $D --sources 2"
  "routing-sat-1000|routing --spawn-server --counsellors 1000 --rate 1000 --duration 5 --accept-delay-ms 0..0 --hold-ms 1000 --sources 2"
  "routing-sat-2500|routing --spawn-server --counsellors 1000 --rate 2500 --duration 5 --accept-delay-ms 0..0 --hold-ms 1000 --sources 2"
  # connections: RSS per idle socket and the 10,000-socket storm; then 19,000 sockets on one process
  "connections-10k|connections --spawn-server --sockets 10000 --sources 4"
  "connections-19k|connections --spawn-server --sockets 19000 --sources 4 --no-storm"
  # supervisors: 100 supervisors during the relay goal (the same steps without them first, same server)
  "supervisors|supervisors --spawn-server --supervisors 100 --conversations 1000 --rate 2000 --duration $D --sources 2"
  # a day of chats and calls, 24 h in 48 s
  "day|day --spawn-server --counsellors 30 --hours 24 --hour-secs 2 --peak-rate 6"
  # the same on PostgreSQL
  "relay-goal-pg|relay --spawn-server --database $PG --conversations 1000 --rate 2000 --duration $D --sources 2"
  "relay-sat-5000-pg|relay --spawn-server --database $PG --conversations 1000 --rate 5000 --duration $D --sources 2"
  "routing-goal-pg|routing --spawn-server --database $PG --counsellors 1000 --rate 100 --duration $D --sources 2"
  "routing-sat-1000-pg|routing --spawn-server --database $PG --counsellors 1000 --rate 1000 --duration 5 --accept-delay-ms 0..0 --hold-ms 1000 --sources 2"
  # three nodes on PostgreSQL + Redis: every conversation's caller and counsellor on different nodes
  "relay-goal-3nodes|relay --spawn-server --database $PG --redis $REDIS --nodes 3 --conversations 1000 --rate 2000 --duration $D --sources 2"
  "relay-sat-5000-3nodes|relay --spawn-server --database $PG --redis $REDIS --nodes 3 --conversations 1000 --rate 5000 --duration $D --sources 2"
  "routing-goal-3nodes|routing --spawn-server --database $PG --redis $REDIS --nodes 3 --counsellors 1000 --rate 100 --duration $D --sources 2"
  "routing-sat-1000-3nodes|routing --spawn-server --database $PG --redis $REDIS --nodes 3 --counsellors 1000 --rate 1000 --duration 5 --accept-delay-ms 0..0 --hold-ms 1000 --sources 2"
)

want() {
  [ -z "${STEPS:-}" ] && return 0
  case ",$STEPS," in *",$1,"*) return 0 ;; esac
  return 1
}

if [ -n "${LIST:-}" ]; then
  for row in "${MATRIX[@]}"; do printf '%-24s helpline-load %s\n' "${row%%|*}" "$(echo "${row#*|}" | sed 's/|\(.*\)/   (env \1)/')"; done
  exit 0
fi

if [ -z "${NO_BUILD:-}" ]; then
  echo "== building release binaries into $TGT/release"
  cargo build --release -p helpline -p helpline-load || exit 2
fi
[ -x "$BIN" ] || { echo "$BIN not found (build it, or set CARGO_TARGET_DIR)"; exit 2; }

mkdir -p "$RESULTS"
{
  echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src load-tests || echo '+uncommitted')"
  echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
  printf 'step\tstarted_utc\tloadavg_1m_before\tloadavg_1m_after\tseconds\texit\n'
} >"$RESULTS/steps.tsv"

summarise_log() {
  local log=$1 warns errors
  warns=$(grep -c ' WARN ' "$log" || true)
  errors=$(grep -c 'ERROR' "$log" || true)
  echo "server log: $warns warnings, $errors errors ($(wc -l <"$log") lines in $(basename "$log"), not committed)"
  # The most frequent messages, without the timestamp and colour codes.
  sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^[0-9T:.Z-]* *//' "$log" | grep -E 'WARN|ERROR' | sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  /'
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }
total=0
for row in "${MATRIX[@]}"; do want "${row%%|*}" && total=$((total + 1)); done
i=0
failed=()
for row in "${MATRIX[@]}"; do
  name=${row%%|*}
  args=${row#*|}
  envs=
  case "$args" in *"|"*) envs=${args#*|}; args=${args%%|*} ;; esac
  want "$name" || continue
  i=$((i + 1))
  if [ -n "${QUIET_LOAD:-}" ]; then
    waited=0
    while awk -v l="$(loadavg)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l > q) }' && [ "$waited" -lt "$WAIT_MAX" ]; do
      sleep 10
      waited=$((waited + 10))
    done
    [ "$waited" -gt 0 ] && echo "   (waited ${waited} s for load average <= $QUIET_LOAD: now $(loadavg))"
  fi
  before=$(loadavg)
  started=$(date -u +%TZ)
  t0=$(date +%s)
  echo "== [$i/$total] $name  (load average $before, $started): ${envs:+$envs }helpline-load $args"
  # shellcheck disable=SC2086 # the arguments are split on purpose
  # The report (stdout) is kept; the server's log (stderr) goes to a .log file that .gitignore keeps
  # out of the repository, summarised at the end of the report: how many warnings and errors, and the
  # most frequent messages.
  env $envs "$BIN" --json "$RESULTS/$name.json" $args >"$RESULTS/$name.txt" 2>"$RESULTS/$name.log"
  rc=$?
  summarise_log "$RESULTS/$name.log" >>"$RESULTS/$name.txt"
  secs=$(($(date +%s) - t0))
  after=$(loadavg)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$started" "$before" "$after" "$secs" "$rc" >>"$RESULTS/steps.tsv"
  # The headline lines of each table.
  grep -E '^== |throughput|one-way|start->offer|kb_per|storm_all|state -> board|service_level|result:|^ratio|^error' "$RESULTS/$name.txt" | sed 's/^/   /'
  echo "   -> exit $rc after ${secs} s (load average $before before, $after after)"
  [ "$rc" -ne 0 ] && failed+=("$name")
done

if [ -n "$PLOT_OUT" ]; then
  # Order matters: for a step present in several files the first wins (the goal runs first).
  files=()
  for f in relay-goal relay-sat-3000 relay-sat-5000 relay-sat-8000 relay-sat-12000 relay-sat-16000 relay-sat-20000 relay-bare-ceiling relay-peer \
    relay-goal-pg relay-sat-5000-pg relay-goal-3nodes relay-sat-5000-3nodes \
    routing-goal routing-goal-pg routing-goal-3nodes; do
    [ -s "$RESULTS/$f.json" ] && files+=("$RESULTS/$f.json")
  done
  if [ "${#files[@]}" -gt 0 ]; then
    echo "== charts into $PLOT_OUT"
    "$BIN" plot "${files[@]}" -o "$PLOT_OUT" || failed+=("plot")
  fi
fi

echo "== results in $RESULTS (steps.tsv: load average and exit code per step)"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "== steps that failed their checks: ${failed[*]}"
  exit 1
fi
