#!/usr/bin/env bash
# Reproduces the `fixgw load` figures in README.md: sustained orders/s with
# fsync and os flushing for 1 and 10 sessions, and latency percentiles at
# fixed rates. Gateway and load generator run on this machine.
#
# Usage: benches/load.sh [DURATION_SECS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
dur="${1:-20}"
cargo build --release -p fixgw --bin fixgw
bin=./target/release/fixgw
# shellcheck source=benches/lib.sh
source benches/lib.sh
senders() { local n=$1 s=""; for i in $(seq 1 "$n"); do s+="--sender LOAD$(printf %02d "$i") "; done; echo "$s"; }

# run_gateway FLUSH [MORE fixgw run ARGUMENTS...]
run_gateway() {
    local flush=$1
    shift
    data=$(mktemp -d)
    "${pin[@]}" "$bin" run --config sessions/bench.cfg --venue sessions/bench-venue.toml \
        --data "$data" --flush "$flush" "$@" 2>"$data/gateway.log" &
    gw=$!
    sleep 1
    # Another gateway on the port would be measured instead: stop here.
    if ! kill -0 "$gw" 2>/dev/null; then
        echo "load.sh: the gateway did not start:" >&2
        cat "$data/gateway.log" >&2
        exit 1
    fi
}
# Each run starts on an idle disk: the store is removed and the kernel's
# write-back of the last run's gigabytes is finished first (it made the next
# run's fsyncs, and so its tail latencies, many times slower).
stop_gateway() {
    kill "$gw" 2>/dev/null || true
    wait "$gw" 2>/dev/null || true
    [[ -n "$data" ]] && rm -rf "$data"
    sync
}
trap stop_gateway EXIT
data=""
gw=""
# Command prefix of the gateway and the load generator: nothing (all CPUs),
# or `taskset -c N` for the pass on one CPU below.
pin=(env)

for flush in fsync os; do
    for n in 1 10; do
        run_gateway "$flush"
        echo "== max rate, flush=$flush, sessions=$n"
        # shellcheck disable=SC2046
        # In flight: 1024 orders on one session, 256 on each of ten. With
        # fewer, one session waits for each batch's replies before the next
        # batch can start and the core idles (throughput = window / latency).
        checked "$bin" load -n "$n" $(senders "$n") --window $((n == 1 ? 1024 : 256)) --duration "$dur" --warmup 2 --mix 60,30,10
        stop_gateway
    done
done
# Fixed rates, on the default kernel settings, then with idle CPUs polling
# (--cpu-wakeup-latency 0, a machine-wide request that serves the load
# generator too; it needs root, so that pass is left out without it), then
# with the gateway and the load generator sharing one CPU, the one that
# takes the disk's interrupts (`taskset -c N`). That leaves the other CPU
# idle: on a VM whose host counts a vCPU's short idle periods as busy
# (README, "Benchmarks"), that is what keeps the VM under its CPU quota.
# On any other CPU, each fdatasync's completions wake the idle one (about
# 8 500 interrupts a second at 10 000 orders/s) and it wakes the gateway's
# CPU back, which is enough to spend the quota.
passes=("all|")
if [[ -w /dev/cpu_dma_latency ]]; then
    passes+=("all|--cpu-wakeup-latency 0")
else
    echo "load.sh: /dev/cpu_dma_latency is not writable here: no pass with idle CPUs polling" >&2
fi
# Said of the one-CPU pass's CPU.
why_cpu=", which takes the disk interrupts"
if command -v taskset >/dev/null; then
    cpu=$(disk_cpu "${TMPDIR:-/tmp}")
    if [[ -z $cpu ]] || ! taskset -c "$cpu" true 2>/dev/null; then
        echo "load.sh: cannot tell which CPU takes the store's disk interrupts (or it is not ours): the one-CPU pass runs on CPU 0" >&2
        cpu=0
        why_cpu=""
    fi
    passes+=("$cpu|")
else
    echo "load.sh: no taskset here: no pass on one CPU" >&2
fi
for pass in "${passes[@]}"; do
    cpu=${pass%%|*}
    extra=${pass#*|}
    if [[ $cpu == all ]]; then pin=(env); else pin=(taskset -c "$cpu"); fi
    label=${extra:+-polling}${pin[1]:+-cpu$cpu}
    rates=(1000 10000 50000)
    # One CPU does not keep up with 50 000/s (46 k sustained, seconds late).
    [[ $cpu != all ]] && rates=(1000 10000)
    for rate in "${rates[@]}"; do
        # The disk's own floor at this rate, same CPUs, just before: what no
        # gateway can beat here (README, "Operator commands": disk-check).
        echo "== disk floor at $rate/s${pin[1]:+, on CPU $cpu}"
        "${pin[@]}" "$bin" disk-check --data "${TMPDIR:-/tmp}" --rate "$rate" --seconds 5 ||
            echo "load.sh: disk-check failed (above); the run goes on without its floor" >&2
        # shellcheck disable=SC2086
        run_gateway fsync $extra
        echo "== fixed rate $rate/s, flush=fsync, sessions=2${extra:+, $extra}${pin[1]:+, gateway and load generator on CPU $cpu$why_cpu}"
        # shellcheck disable=SC2046
        checked "${pin[@]}" "$bin" load -n 2 $(senders 2) --rate "$rate" --duration "$dur" --warmup 2 --mix 60,30,10 \
            --hgrm "target/load-$rate$label.hgrm"
        stop_gateway
    done
done
