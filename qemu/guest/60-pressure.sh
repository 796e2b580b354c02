# shellcheck shell=sh
# Memory pressure (issue #5): with a pattern in the region and a mapping of it alive, fill
# half the free memory with tmpfs (page cache that cannot be dropped) and the rest with
# anonymous memory until the OOM killer acts, release it all, and check the pattern.
# The hog runs in its own process with oom_score_adj 1000; the mapping's holder has -1000 and
# /init (PID 1) cannot be chosen, so the OOM killer has exactly one victim.

PRESSURE_SEED=0x9e55

case_survives_memory_pressure() {
    carveout-test fill --seed "$PRESSURE_SEED" || return 1
    carveout-test hold --seconds 900 >/tmp/hold.out &
    holder=$!
    tries=0
    until grep -q holding /tmp/hold.out; do
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || { say "the holder never mapped"; kill "$holder"; return 1; }
        sleep 0.1
    done
    echo -1000 >"/proc/$holder/oom_score_adj"
    avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    say "MemAvailable before: ${avail} kB"
    ok=0

    mkdir -p /mnt/pressure
    mount -t tmpfs -o "size=$((avail / 2))k" tmpfs /mnt/pressure || ok=1
    dd if=/dev/zero of=/mnt/pressure/fill bs=1M 2>/tmp/dd.err
    say "tmpfs: $(tail -n 1 /tmp/dd.err); $(du -m /mnt/pressure/fill | cut -f1) MiB"
    grep -q 'No space left' /tmp/dd.err || { say "tmpfs did not fill up"; ok=1; }

    dmesg_mark
    # The OOM report goes to dmesg only (dmesg_clean knows it), not the console, where the
    # host would take its stack dump for a warning.
    dmesg -n 1
    carveout-test hog >/tmp/hog.out 2>&1
    hog_status=$?
    dmesg -n 5
    say "$(tail -n 1 /tmp/hog.out) (exit status $hog_status)"
    if dmesg_since_mark | grep -q 'Out of memory: Killed process'; then
        say "$(dmesg | grep 'Out of memory: Killed process' | tail -n 1)"
    elif ! grep -q 'allocation failed' /tmp/hog.out; then
        say "the hog neither hit a failed allocation nor the OOM killer"
        ok=1
    fi
    say "MemAvailable at the edge: $(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) kB"
    # The report's headline (its stack dump stays out of the console: see above).
    dmesg_since_mark | grep -E 'invoked oom-killer|oom-kill:|allocation failure' |
        sed 's/^/# dmesg: /'

    rm -f /mnt/pressure/fill
    umount /mnt/pressure
    say "MemAvailable after release: $(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) kB"
    kill -0 "$holder" 2>/dev/null || { say "the mapping's holder died"; ok=1; }
    kill "$holder"
    wait "$holder" 2>/dev/null
    carveout-test verify --seed "$PRESSURE_SEED" || ok=1
    carveout-test verify --devmem --seed "$PRESSURE_SEED" || ok=1
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout || { say "the claim went away"; ok=1; }
    return "$ok"
}

suite_pressure() {
    load || say "load failed"
    run_case survives_memory_pressure case_survives_memory_pressure
}
SUITES="$SUITES pressure"
