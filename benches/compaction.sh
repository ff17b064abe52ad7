#!/usr/bin/env bash
# Reproduces the compaction figures in README.md ("Start-up time"): rounds
# of `fixgw run` + `fixgw load` at max rate (2 sessions, which log on with
# 141=Y, so each round voids the last one's messages) on one store with
# venue checkpoints every 1 000 000 inputs; prints each start's time to
# `listening`, what it restored and compacted, and the store's size.
#
# Usage: benches/compaction.sh [DURATION_SECS] [ROUNDS]   (default 20, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
dur="${1:-20}"
rounds="${2:-4}"
cargo build --release -p fixgw --bin fixgw
bin=./target/release/fixgw
work=$(mktemp -d)
trap 'kill "${gw:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
data=$work/data
log=$work/gateway.log
sed 's/^\[DEFAULT\]$/[DEFAULT]\nCheckpointInputs=1000000/' sessions/bench.cfg > "$work/bench.cfg"
for round in $(seq 1 "$rounds"); do
    echo "== round $round"
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
    "$bin" load -n 2 --sender LOAD01 --sender LOAD02 --duration "$dur" --warmup 0 \
        --mix 60,30,10 | grep -E "sustained"
    grep -E "checkpoint written" "$log" | sed 's/^.*INFO //' || true
    kill "$gw"
    wait "$gw" || true
    echo "store: $(du -sm "$data" | cut -f1) MB"
done
