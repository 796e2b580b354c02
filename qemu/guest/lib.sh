# shellcheck shell=sh
# Helpers for the guest suites (sourced by /init; busybox sh).

mount_all() {
    /bin/busybox --install -s /bin
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
    mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
    mount -t tmpfs tmpfs /tmp
    mount -t configfs configfs /sys/kernel/config 2>/dev/null || true
}

# hold_mapping [--dev DEV] [--read-only]: maps the whole region in the background (device
# closed, mapping kept) and waits until it is mapped; the holder's pid is in $holder. It holds
# until release_mapping ends it (at most 30 minutes: the debug kernel's file-I/O cases run
# for minutes under one mapping).
hold_mapping() {
    dev_arg=""
    if [ "${1:-}" = --dev ]; then
        dev_arg="--dev $2"
        shift 2
    fi
    # shellcheck disable=SC2086 # dev_arg is empty or two words
    start_holder carveout-test $dev_arg hold --seconds 1800 "$@"
}

# start_holder COMMAND...: runs a command that maps a region and prints "holding" in the
# background, and waits until it has; its pid is in $holder.
start_holder() {
    rm -f /tmp/hold.out
    "$@" >/tmp/hold.out 2>&1 &
    holder=$!
    tries=0
    until grep -qs holding /tmp/hold.out; do
        tries=$((tries + 1))
        if [ "$tries" -ge 300 ] || ! kill -0 "$holder" 2>/dev/null; then
            say "the holder never mapped: $(cat /tmp/hold.out)"
            kill "$holder" 2>/dev/null
            return 1
        fi
        sleep 0.1
    done
}

# Ends the mapping hold_mapping made.
release_mapping() {
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
    return 0
}

say() { echo "# $*"; }

# Runs a case function; reports it by name. A case that cannot run on this kernel sets
# skip_reason and fails: it is reported skipped (KTAP "# SKIP" on the host).
run_case() {
    name=$1
    shift
    skip_reason=""
    if "$@"; then
        echo "@@case ok $name"
    elif [ -n "$skip_reason" ]; then
        echo "@@case skip $name $skip_reason"
    else
        echo "@@case not ok $name"
    fi
}

# Exits QEMU through isa-debug-exit (exit status (0 << 1) | 1 = 1 on the host).
qemu_exit() {
    sync
    printf '\000' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    sleep 5
    poweroff -f
}

hex() { printf '0x%x' "$1"; }

# True when /proc/iomem has "BASE-LAST : NAME" nested (at any depth) inside a "Reserved"
# entry that contains it.
iomem_claim_inside_reserved() {
    awk -v base="$1" -v last="$2" -v name="$3" '
        function num(h,    i, c, v) {
            v = 0; h = tolower(h)
            for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c }
            return v
        }
        {
            match($0, /^ */); depth = RLENGTH / 2
            split($1, r, "-"); s = num(r[1]); e = num(r[2])
            sub(/^[^:]*: /, ""); label = $0
            st[depth] = s; en[depth] = e; lb[depth] = label
            if (s == base && e == last && label == name) {
                for (d = depth - 1; d >= 0; d--)
                    if (lb[d] == "Reserved" && st[d] <= s && en[d] >= e) found = 1
            }
        }
        END { exit found ? 0 : 1 }' /proc/iomem
}

iomem_has_name() { grep -q " : $1\$" /proc/iomem; }

module_loaded() { grep -q '^carveout ' /proc/modules; }

load() { insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")"; }

# dmesg without the stack dumps of the OOM killer's reports and of failed allocations
# (60-pressure.sh provokes them on purpose; they are no warnings): from "invoked oom-killer" or
# "page allocation failure" to the end of that stack. A warning inside still shows.
dmesg_without_oom() {
    dmesg | awk '/invoked oom-killer|page allocation failure/ { oom = 1 }
        oom && /<\/TASK>/ { oom = 0; next }
        !oom || /WARNING:|BUG:|Oops/'
}

# Warnings, BUGs, oopses and lockdep's reports (which start "WARNING: possible circular
# locking dependency detected" and the like, and end "INFO: lockdep is turned off"); not
# the debug kernel's boot line "RCU lockdep checking is enabled".
dmesg_clean() {
    if dmesg_without_oom |
        grep -E 'WARNING:|BUG:|BUG at|Oops|Call Trace|locking dependency|lock state|lockdep is turned off'; then
        say "dmesg holds the lines above"
        return 1
    fi
}


# Leaves the module unloaded, whatever state a case left it in.
unload_quietly() {
    if module_loaded; then
        rmmod carveout 2>/dev/null || say "could not unload carveout"
    fi
}

# dmesg_mark: writes a unique line to the kernel log; dmesg_since_mark prints the log lines
# after it. (Counting lines does not work once the log buffer is full and old lines drop out.)
dmesg_mark() {
    mark_n=$((${mark_n:-0} + 1))
    DMESG_MARK="carveout-test: mark $$.$mark_n at $(cut -d' ' -f1 /proc/uptime)."
    echo "$DMESG_MARK" >/dev/kmsg
}

# The lines after the last occurrence of the mark (none if it has dropped out of the log),
# without the notice a kernel with CONFIG_MODULE_SIG gives the boot's first unsigned module
# ("carveout: module verification failed: ... tainting kernel"): not the driver's message.
dmesg_since_mark() {
    dmesg | awk -v mark="$DMESG_MARK" '
        index($0, mark) { n = 0; next }
        /: module verification failed: signature and\/or required key missing/ { next }
        { line[++n] = $0 }
        END { for (i = 1; i <= n; i++) print line[i] }'
}

KMEMLEAK=/sys/kernel/debug/kmemleak

# case_kmemleak_clean: on a kernel with kmemleak (the debug kernel), with the module unloaded,
# no leak that carveout allocated: kmemleak scans twice (it reports an object once a scan
# found nothing pointing at it and it is older than 5 s) and no report's allocation backtrace
# passes through the module, by name ("[carveout]") or, after rmmod, by an address in the
# module area that no longer resolves to a symbol (it is the only module the guests load).
# Leaks the rest of the kernel reports are listed, not counted. Skipped on a kernel without
# kmemleak.
case_kmemleak_clean() {
    if [ ! -e "$KMEMLEAK" ]; then
        skip_reason="no kmemleak in this kernel (make test-debug has it)"
        return 1
    fi
    unload_quietly
    sleep 6
    # A disabled kmemleak refuses the scan.
    { echo scan >"$KMEMLEAK" && sleep 1 && echo scan >"$KMEMLEAK"; } ||
        { say "kmemleak refused to scan: $(dmesg | grep -m 2 'kmemleak:')"; return 1; }
    cat "$KMEMLEAK" >/tmp/kmemleak.txt
    awk '
        /^unreferenced object/ { n++; if (ours) print report; report = $0; ours = 0; next }
        { report = report "\n" $0 }
        /\[carveout\]/ || /^ +0xffffffff[a-f][0-9a-f]+$/ { ours = 1 }
        END { if (ours) print report; print n + 0 >"/tmp/kmemleak.count" }
    ' /tmp/kmemleak.txt >/tmp/kmemleak.ours
    say "kmemleak: $(cat /tmp/kmemleak.count) suspected leak(s) in all; through carveout:"
    sed 's/^/#   /' /tmp/kmemleak.ours
    if [ -s /tmp/kmemleak.ours ]; then
        return 1
    fi
    # The others, for the record (their first frames).
    grep -A3 '^  backtrace' /tmp/kmemleak.txt | head -n 24 | sed 's/^/# elsewhere: /'
}
