#!/usr/bin/env bash
# Market-data fan-out (README "Benchmarks"): incremental entries/s delivered
# to 1, 10 and 100 subscribers while two order sessions trade, and what the
# subscribers cost the orders (latency at a fixed rate with and without them).
# Gateway, order sessions and subscribers all run on this machine.
#
# Usage: benches/md_fanout.sh [DURATION_SECS]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
dur="${1:-15}"
cargo build --release -p fixgw --bin fixgw
bin=./target/release/fixgw
# shellcheck source=benches/lib.sh
source benches/lib.sh
work=$(mktemp -d)
cfg="$work/md-bench.cfg"
# sessions/bench.cfg (LOAD01..LOAD10) plus 100 market-data sessions MD001..MD100.
cp sessions/bench.cfg "$cfg"
for i in $(seq 1 100); do
    printf '\n[SESSION]\nTargetCompID=MD%03d\nSessionRole=market-data\nPersistMessages=N\n' "$i" >>"$cfg"
done

run_gateway() {
    local data
    data=$(mktemp -d -p "$work")
    "$bin" run --config "$cfg" --venue sessions/bench-venue.toml --data "$data" 2>"$data/gateway.log" &
    gw=$!
    sleep 1
}
stop_gateway() { kill "$gw" 2>/dev/null || true; wait "$gw" 2>/dev/null || true; }
trap 'stop_gateway; rm -rf "$work"' EXIT

for subs in 0 1 10 100; do
    run_gateway
    echo "== max rate, 2 order sessions, $subs market-data subscribers (full depth, AAPL+MSFT)"
    checked "$bin" load -n 2 --sender LOAD01 --sender LOAD02 --window 256 --duration "$dur" --warmup 2 \
        --mix 60,30,10 --md-subscribers "$subs"
    stop_gateway
done
for subs in 0 100; do
    run_gateway
    echo "== fixed rate 5000/s, 2 order sessions, $subs market-data subscribers"
    checked "$bin" load -n 2 --sender LOAD01 --sender LOAD02 --rate 5000 --duration "$dur" --warmup 2 \
        --mix 60,30,10 --md-subscribers "$subs"
    stop_gateway
done
