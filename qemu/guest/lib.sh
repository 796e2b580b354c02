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
    mount -t tracefs tracefs "$TRACEFS" 2>/dev/null || true
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
# skip_reason and fails: it is reported skipped (KTAP "# SKIP" on the host). A kernel warning
# (kernel_warnings) logged while the case ran fails it, whatever the case found.
run_case() {
    case_name=$1
    shift
    skip_reason=""
    # cvt_light=a,b (make test-debug): cases make test runs that the debug run leaves out to
    # stay within CI's time; their kernel paths are the ones quicker cases there take too.
    case ",${cvt_light:-}," in
    *",$case_name,"*)
        echo "@@case skip $case_name make test runs it; the debug run leaves it out (cvt_light)"
        return 0
        ;;
    esac
    case_mark="carveout-test: case $case_name begins at $(cut -d' ' -f1 /proc/uptime)."
    echo "$case_mark" >/dev/kmsg
    if "$@"; then
        case_result="ok"
    elif [ -n "$skip_reason" ]; then
        case_result="skip $skip_reason"
    else
        case_result="not ok"
    fi
    if dmesg_after "$case_mark" | without_oom | kernel_warnings >/tmp/case.warnings; then
        sed 's/^/# /' /tmp/case.warnings
        say "$case_name: the kernel logged the lines above while it ran"
        case_result="not ok"
    fi
    case $case_result in
    skip*) echo "@@case skip $case_name ${case_result#skip }" ;;
    *) echo "@@case $case_result $case_name" ;;
    esac
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
dmesg_without_oom() { dmesg | without_oom; }
without_oom() {
    awk '/invoked oom-killer|page allocation failure/ { oom = 1 }
        oom && /<\/TASK>/ { oom = 0; next }
        !oom || /WARNING:|BUG:|Oops/'
}

# Warnings, BUGs, oopses and lockdep's reports (which start "WARNING: possible circular
# locking dependency detected" and the like, and end "INFO: lockdep is turned off"); not
# the debug kernel's boot line "RCU lockdep checking is enabled".
dmesg_clean() {
    if dmesg_without_oom | kernel_warnings; then
        say "dmesg holds the lines above"
        return 1
    fi
}

# The lines of standard input that are such reports (fails when there is none).
kernel_warnings() { grep -E 'WARNING:|BUG:|BUG at|Oops|Call Trace|locking dependency|lock state|lockdep is turned off'; }

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

# The lines after the last occurrence of the mark (all of them if it has dropped out of the
# log: then every line left is newer), without the notice a kernel with CONFIG_MODULE_SIG gives
# the boot's first unsigned module ("carveout: module verification failed: ... tainting
# kernel"): not the driver's message.
dmesg_since_mark() { dmesg_after "$DMESG_MARK"; }

# dmesg_after MARK: the same for any mark line.
dmesg_after() {
    dmesg | awk -v mark="$1" '
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

# Kprobe events (CONFIG_KPROBE_EVENTS): what the driver asks of the kernel, seen from outside
# it. The probes are named cvt_* (group kprobes); the suites' probes record the task that hit
# them (comm=$comm), for telling the test tools' calls from the rest of the kernel's.
TRACEFS=/sys/kernel/tracing

# kprobe_define NAME DEFINITION: defines kprobe event NAME once ("p:NAME FUNCTION ARGS..." or
# "r:NAME FUNCTION ARGS...", kprobe_events syntax); fails, saying why, if the kernel cannot.
kprobe_define() {
    [ -d "$TRACEFS/events/kprobes/$1" ] && return 0
    [ -w "$TRACEFS/kprobe_events" ] ||
        { say "no $TRACEFS/kprobe_events (tracefs, CONFIG_KPROBE_EVENTS)"; return 1; }
    func=$(echo "$2" | cut -d' ' -f2)
    grep -q " [tT] $func\$" /proc/kallsyms || { say "no function $func in /proc/kallsyms"; return 1; }
    echo "$2" >>"$TRACEFS/kprobe_events" || { say "the kernel refused the kprobe event: $2"; return 1; }
}

# trace_start NAME...: empties the trace buffer and records the kprobe events NAME...
trace_start() {
    echo 0 >"$TRACEFS/tracing_on"
    echo 0 >"$TRACEFS/events/kprobes/enable"
    : >"$TRACEFS/trace"
    for event in "$@"; do
        echo 1 >"$TRACEFS/events/kprobes/$event/enable" || return 1
    done
    echo 1 >"$TRACEFS/tracing_on"
}

# trace_stop FILE: stops recording; the records in FILE, one a line. Fails if the buffer lost
# any (its header counts "entries-in-buffer/entries-written").
trace_stop() {
    echo 0 >"$TRACEFS/tracing_on"
    echo 0 >"$TRACEFS/events/kprobes/enable"
    cat "$TRACEFS/trace" >"$1.raw"
    grep -v '^#' "$1.raw" >"$1"
    counts=$(sed -n 's/^# entries-in-buffer\/entries-written: \([0-9]*\)\/\([0-9]*\) .*/\1 \2/p' "$1.raw")
    [ -n "$counts" ] || { say "no entries-in-buffer/entries-written line in $TRACEFS/trace"; return 1; }
    rm -f "$1.raw"
    : >"$TRACEFS/trace"
    [ "${counts% *}" = "${counts#* }" ] || { say "the trace buffer lost records ($counts)"; return 1; }
}

# refused ERRNO DMESG_PATTERN COMMAND...: COMMAND fails with output matching ERRNO (an extended
# regular expression), and the kernel logs exactly one line, matching DMESG_PATTERN.
refused() {
    errno=$1
    pattern=$2
    shift 2
    dmesg_mark
    if "$@" >/tmp/refused.out 2>&1; then
        say "$* succeeded"
        return 1
    fi
    new=$(dmesg_since_mark)
    say "$*: $(cat /tmp/refused.out) | dmesg: $new"
    grep -qE "$errno" /tmp/refused.out || { say "expected $errno"; return 1; }
    [ "$(printf '%s\n' "$new" | grep -c .)" = 1 ] || { say "expected one dmesg line"; return 1; }
    printf '%s\n' "$new" | grep -q "$pattern" || { say "the line does not say: $pattern"; return 1; }
}
