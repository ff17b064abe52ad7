# Shell functions shared by benches/load.sh and benches/md_fanout.sh
# (sourced, not run).

# checked COMMAND...: runs a `fixgw load` command, shows its report, and
# stops the script unless the run was clean (exit status 0): a gateway that
# loses input, or a session that failed, is not measured, whatever the
# figures.
checked() {
    local out status=0
    out=$("$@") || status=$?
    echo "$out"
    if [[ $status -ne 0 ]]; then
        echo "$(basename "$0"): fixgw load exited with status $status (3: requests unanswered or sessions failed): these figures are not valid" >&2
        exit 1
    fi
}

# disk_cpu DIR: the CPU that has taken most of the interrupts of the disk
# holding DIR, found by the device's name in /proc/interrupts
# (virtio1-req.0, nvme0q1, ...); prints nothing when they cannot be told
# apart (device mapper, SCSI, tmpfs, ...).
disk_cpu() {
    local dev dev_name
    dev=$(basename "$(df --output=source "$1" | tail -1)")
    # A partition's interrupts are its disk's.
    if [[ -e /sys/class/block/$dev/partition ]]; then
        dev=$(basename "$(dirname "$(readlink -f "/sys/class/block/$dev")")")
    fi
    dev_name=$(readlink -f "/sys/block/$dev/device" 2>/dev/null || true)
    dev_name=${dev_name##*/}
    [[ -n $dev_name ]] || return 0
    # The header names the online CPUs (CPU0 CPU1 ...): columns are not
    # CPU numbers when some are offline.
    awk -v d="$dev_name" '
        NR == 1 { for (i = 1; i <= NF; i++) cpu[i + 1] = substr($i, 4); ncol = NF; next }
        $NF ~ ("^" d "[-q]") { for (i = 2; i <= ncol + 1; i++) n[cpu[i]] += $i }
        END { best = ""; for (c in n) if (best == "" || n[c] + 0 > n[best] + 0) best = c; print best }
    ' /proc/interrupts
}
