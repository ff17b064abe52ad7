#!/usr/bin/env bash
# Reproduces the compaction figures in README.md ("Start-up time"): rounds
# of `fixgw load` at max rate (2 sessions, which log on with 141=Y, so each
# round voids the last one's messages) on one store with venue checkpoints
# every 1 000 000 inputs; prints what was compacted and the store's size
# after each round. By default each round starts `fixgw run` anew (and
# prints its time to `listening` and what start-up restored and
# compacted); with --one-run one gateway serves every round, compacting
# while it runs.
#
# Usage: benches/compaction.sh [DURATION_SECS] [ROUNDS] [--one-run]   (default 20, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
dur="${1:-20}"
rounds="${2:-4}"
one_run=0
[ "${3:-}" = "--one-run" ] && one_run=1
cargo build --release -p fixgw --bin fixgw
bin=./target/release/fixgw
work=$(mktemp -d)
trap 'kill "${gw:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
data=$work/data
log=$work/gateway.log
sed 's/^\[DEFAULT\]$/[DEFAULT]\nCheckpointInputs=1000000/' sessions/bench.cfg > "$work/bench.cfg"
start() {
    : > "$log"
    t0=$(date +%s.%N)
    "$bin" run --config "$work/bench.cfg" --venue sessions/bench-venue.toml --data "$data" 2>>"$log" &
    gw=$!
    until grep -q "listening" "$log"; do
        kill -0 "$gw" || { cat "$log"; exit 1; }
        sleep 0.05
    done
    echo "ready after $(echo "$(date +%s.%N) - $t0" | bc) s"
    grep -E "store compacted|restored from|store recovered" "$log" | sed 's/^.*INFO //'
}
stop() {
    kill "$gw"
    wait "$gw" || true
}
[ "$one_run" = 1 ] && start
seen=0
for round in $(seq 1 "$rounds"); do
    echo "== round $round"
    [ "$one_run" = 1 ] || start
    "$bin" load -n 2 --sender LOAD01 --sender LOAD02 --duration "$dur" --warmup 0 \
        --mix 60,30,10 | grep -E "sustained"
    # What this round logged: its checkpoints, and compaction while running.
    sleep 1
    tail -n +"$((seen + 1))" "$log" \
        | grep -E "checkpoint written|while running" | sed 's/^.*INFO //' || true
    seen=$(wc -l < "$log")
    [ "$one_run" = 1 ] || { stop; seen=0; }
    echo "store: $(du -sm "$data" | cut -f1) MB"
done
[ "$one_run" = 1 ] && stop
true
