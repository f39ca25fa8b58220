#!/usr/bin/env bash
# Before/after in one run: the relay (with the bare relay as the floor) and routing, against two
# server binaries, alternating, so that both see the same machine. Reports (JSON and tables) go to
# RESULTS; the server's raw log stays in .log files that .gitignore keeps out.
#
#   load-tests/compare.sh BEFORE_BIN AFTER_BIN [RESULTS]
#
# The load tool is this tree's (target/release/helpline-load). Each step prints its headline lines.
set -uo pipefail
before=${1:?before binary}; after=${2:?after binary}
RESULTS=${3:-load-tests/results/compare-$(date -u +%Y%m%dT%H%M%SZ)}
LOAD=${LOAD:-target/release/helpline-load}
mkdir -p "$RESULTS"
run() { # name bin args...
  local name=$1 bin=$2; shift 2
  echo "== $name (load average $(cut -d' ' -f1 /proc/loadavg))"
  "$LOAD" "$@" --spawn-server --server-bin "$bin" --json "$RESULTS/$name.json" >"$RESULTS/$name.txt" 2>"$RESULTS/$name.log"
  echo "   exit $?"
  grep -E '^== |throughput|one-way|start->offer|ratio' "$RESULTS/$name.txt" | sed 's/^/   /'
}
for round in 1 2; do
  for side in before after; do
    bin=$before; [ "$side" = after ] && bin=$after
    run "relay-$side-$round" "$bin" relay --compare-bare --conversations 1000 --rate 2000,8000 --duration 10
    for r in 100 1000; do run "routing-$r-$side-$round" "$bin" routing --counsellors 1000 --rate $r --duration 10; done
  done
done
