#!/bin/sh
# carveout's guest /init (busybox sh). Runs the test suite or the demo inside the QEMU guest
# and reports each case as one line "@@case ok NAME" or "@@case not ok NAME"; the host
# (qemu/run.sh) turns them into KTAP. Parameters come from the kernel command line, which the
# kernel hands to init as environment variables: cvt_mode, cvt_base, cvt_size, cvt_pmem_base,
# cvt_pmem_size.
#
# Only `set -u`: with -e a failing check would end init and panic the kernel, and with
# pipefail `dmesg | grep -q` fails whenever grep's early exit hits dmesg with SIGPIPE.
# shellcheck shell=sh
set -u

MOD=/lib/modules/carveout.ko
DEV=/dev/carveout0
REBOOT_SEED=0x5eedb007
BASE=${cvt_base:?}
SIZE=${cvt_size:?}
PMEM_BASE=${cvt_pmem_base:-}
PMEM_SIZE=${cvt_pmem_size:-}
LAST=$((BASE + SIZE - 1))

mount_all() {
    /bin/busybox --install -s /bin
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
    mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
    mount -t tmpfs tmpfs /tmp
}

say() { echo "# $*"; }

# Runs a case function; reports it by name.
run_case() {
    name=$1
    shift
    if "$@"; then
        echo "@@case ok $name"
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

dmesg_clean() {
    if dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|lockdep'; then
        say "dmesg holds the lines above"
        return 1
    fi
}

case_load_claims_region() {
    load || return 1
    [ -c "$DEV" ] || { say "$DEV missing"; return 1; }
    mode=$(stat -c %a "$DEV")
    [ "$mode" = 600 ] || { say "$DEV has mode $mode, expected 600"; return 1; }
    grep -i -e carveout -e reserved /proc/iomem | sed 's/^/# /'
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout ||
        { say "no 'carveout' claim at $(hex "$BASE")-$(hex "$LAST") inside a Reserved entry"; return 1; }
}

case_info_ioctl() {
    want="base=$(hex "$BASE") size=$(hex "$SIZE")"
    rust=$(carveout-test info) || return 1
    c=$(carveout_test info "$DEV") || return 1
    say "rust: $rust"
    say "c:    $c"
    case $rust in "$want "*) ;; *) say "expected $want"; return 1 ;; esac
    [ "$rust" = "$c" ] || { say "the C and Rust programs disagree"; return 1; }
}

case_survives_reload() {
    carveout-test fill --seed 0xab5eed || return 1
    rmmod carveout || return 1
    if [ -e "$DEV" ] || iomem_has_name carveout || module_loaded; then
        say "rmmod left the node, the claim or the module behind"
        return 1
    fi
    carveout-test devmem-verify --phys "$BASE" --len "$SIZE" --seed 0xab5eed ||
        { say "contents changed while unloaded"; return 1; }
    load || return 1
    carveout-test verify --seed 0xab5eed
}

# A mapping keeps the module: rmmod fails while it exists (the device itself is closed) and
# succeeds once it is gone.
case_rmmod_busy_while_mapped() {
    carveout-test hold --seconds 60 >/tmp/hold.out &
    holder=$!
    tries=0
    until grep -q holding /tmp/hold.out; do
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || { say "the holder never mapped"; kill "$holder"; return 1; }
        sleep 0.1
    done
    if rmmod carveout 2>/tmp/rmmod.err; then
        say "rmmod succeeded under a mapping"
        kill "$holder"
        return 1
    fi
    say "rmmod under a mapping: $(cat /tmp/rmmod.err)"
    ok=0
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout || { say "the claim went away"; ok=1; }
    kill "$holder"
    wait "$holder" 2>/dev/null
    rmmod carveout || { say "rmmod failed after munmap"; ok=1; }
    load || ok=1
    return "$ok"
}

# expect_refused ERRNO_TEXT REASON_REGEX PARAM...: the load fails with ERRNO_TEXT, the new
# dmesg lines match REASON_REGEX, and /proc/iomem, /dev and the module list are unchanged.
expect_refused() {
    errno_text=$1
    reason=$2
    shift 2
    cat /proc/iomem >/tmp/iomem.before
    seen=$(dmesg | wc -l)
    if insmod "$MOD" "$@" 2>/tmp/insmod.err; then
        say "insmod $* succeeded; /proc/iomem and dmesg:"
        sed 's/^/# /' /proc/iomem
        dmesg | tail -n +"$((seen + 1))" | sed 's/^/# dmesg: /'
        rmmod carveout
        return 1
    fi
    say "insmod: $(cat /tmp/insmod.err)"
    grep -q "$errno_text" /tmp/insmod.err || { say "expected '$errno_text'"; return 1; }
    dmesg | tail -n +"$((seen + 1))" >/tmp/dmesg.new
    sed 's/^/# dmesg: /' /tmp/dmesg.new
    grep -qE "carveout.*$reason" /tmp/dmesg.new || { say "no dmesg line saying '$reason'"; return 1; }
    cmp -s /tmp/iomem.before /proc/iomem || { say "/proc/iomem changed"; return 1; }
    if [ -e "$DEV" ] || module_loaded; then
        say "a node or the module was left behind"
        return 1
    fi
}

case_refuses_system_ram() {
    expect_refused 'Invalid argument' 'overlaps System RAM' base=0x1000000 size=0x100000
}
case_refuses_unaligned() {
    expect_refused 'Invalid argument' 'not page aligned' "base=$(hex $((BASE + 0x800)))" "size=$(hex "$SIZE")"
}
case_refuses_zero_size() {
    expect_refused 'Invalid argument' 'size is 0' "base=$(hex "$BASE")" size=0
}
case_refuses_wrap() {
    expect_refused 'Invalid argument' 'wraps' base=0xfffffffffffff000 size=0x2000
}
case_refuses_already_claimed() {
    [ -n "$PMEM_BASE" ] || { say "no pmem range configured"; return 1; }
    say "$(grep -i -A1 persistent /proc/iomem | tr '\n' ' ')"
    # The kernel's own pmem driver must hold it, or the case proves nothing.
    grep -q ' : namespace' /proc/iomem || { say "pmem does not hold the memmap=! range"; return 1; }
    expect_refused 'Device or resource busy' 'already claimed' "base=$(hex "$PMEM_BASE")" "size=$(hex "$PMEM_SIZE")"
}

case_kunit() {
    dmesg | grep -E "^\[[ 0-9.]*\] *(# |ok |not ok ).*carveout_range" | sed 's/^/# /'
    dmesg | grep -qE "ok [0-9]+ carveout_range\$"
}

case_unload_clean() {
    rmmod carveout || return 1
    if [ -e "$DEV" ] || iomem_has_name carveout || module_loaded; then
        say "rmmod left the node, the claim or the module behind"
        return 1
    fi
    dmesg_clean
}

warm_reboot_phase1() {
    if ! load || ! carveout-test fill --seed "$REBOOT_SEED"; then
        echo "@@case not ok survives_warm_reboot"
        return
    fi
    echo "@@rebooting"
    sync
    reboot -f
    sleep 30
}

case_survives_warm_reboot() {
    load || return 1
    carveout-test verify --seed "$REBOOT_SEED" &&
        carveout-test verify --devmem --seed "$REBOOT_SEED"
}

run_tests() {
    # A warm reset keeps RAM: the pattern the first boot wrote marks the second boot.
    if carveout-test devmem-verify --phys "$BASE" --len 4096 --seed "$REBOOT_SEED" >/dev/null 2>&1; then
        echo "@@phase 2"
        run_case survives_warm_reboot case_survives_warm_reboot
        run_case unload_clean case_unload_clean
        echo "@@done"
        qemu_exit
    fi
    echo "@@phase 1"
    run_case load_claims_region case_load_claims_region
    run_case kunit_carveout_range case_kunit
    run_case info_ioctl case_info_ioctl
    run_case mmap_roundtrip_c carveout_test roundtrip "$DEV" 0xc0ffee
    run_case mmap_roundtrip_rust carveout-test roundtrip --seed 0x7e57
    run_case mmap_out_of_range carveout-test mmap-bounds
    run_case survives_reload case_survives_reload
    run_case rmmod_busy_while_mapped case_rmmod_busy_while_mapped
    rmmod carveout 2>/dev/null
    run_case refuses_system_ram case_refuses_system_ram
    run_case refuses_unaligned case_refuses_unaligned
    run_case refuses_zero_size case_refuses_zero_size
    run_case refuses_wrap case_refuses_wrap
    run_case refuses_already_claimed case_refuses_already_claimed
    say "dmesg of the first boot, before the warm reset:"
    dmesg_clean || echo "@@dmesg-dirty"
    warm_reboot_phase1
}

run_demo() {
    echo "== insmod carveout.ko base=$(hex "$BASE") size=$(hex "$SIZE")"
    load || qemu_exit
    dmesg | grep carveout
    echo "== /proc/iomem around the region"
    grep -B1 -A1 carveout /proc/iomem
    echo "== $DEV"
    ls -l "$DEV"
    carveout-test info
    echo "== write a pattern through the mapping, read it back through it and through /dev/mem"
    carveout-test roundtrip --seed 0xd3e0 && echo "round trip: the mapping hits the carve-out"
    echo "== first bytes at $(hex "$BASE") through /dev/mem"
    dd if=/dev/mem bs=4096 skip=$((BASE / 4096)) count=1 2>/dev/null | hexdump -C | head -n 4
    rmmod carveout && echo "== rmmod: claim released"
    qemu_exit
}

mount_all
echo "@@boot"
case ${cvt_mode:-test} in
demo) run_demo ;;
*) run_tests ;;
esac
qemu_exit
