# shellcheck shell=sh
# Probe outcomes belong to each region's device (issue #12): asynchronous probing at load, and
# configfs regions enabled from parallel writers.

PCFS=/sys/kernel/config/carveout
PMIB=1048576

# probe_region_ok NODE SYSNAME BASE SIZE: the region BASE+SIZE is claimed once inside Reserved,
# its node NODE exists, its sysfs directory says BASE (and `unlisted` is 0 or 1), and opening the
# node finds that range.
probe_region_ok() {
    last=$(($3 + $4 - 1))
    iomem_claim_inside_reserved "$3" "$last" carveout || { say "$1: no claim of $(hex "$3")-$(hex "$last")"; return 1; }
    claims=$(grep -c "^ *$(printf '%08x-%08x' "$3" "$last") : carveout\$" /proc/iomem)
    [ "$claims" = 1 ] || { say "$1: claimed $claims times"; return 1; }
    [ -c "$1" ] || { say "no node $1"; return 1; }
    phys=$(cat "/sys/class/carveout/$2/phys_addr") || return 1
    [ "$phys" = "$(hex "$3")" ] || { say "$2: phys_addr $phys, expected $(hex "$3")"; return 1; }
    unlisted=$(cat "/sys/class/carveout/$2/unlisted") || return 1
    case $unlisted in 0 | 1) ;; *) say "$2: unlisted reads '$unlisted'"; return 1 ;; esac
    info=$(carveout-test --dev "$1" info) || { say "$1: info failed"; return 1; }
    case $info in
    "base=$(hex "$3") size=$(hex "$4") "*) ;;
    *) say "$1: $info, expected base=$(hex "$3") size=$(hex "$4")"; return 1 ;;
    esac
}

# How many devices /sys/class/carveout holds.
class_nodes() { find /sys/class/carveout/ -mindepth 1 -maxdepth 1 | wc -l; }

case_async_probe_load() {
    dmesg_mark
    ok=0
    # A valid region: the load succeeds, and the claim and the node are both there, and the
    # device is bound (a refusal, whatever it says, fails the case).
    if insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" async_probe=1 2>/tmp/insmod.err; then
        probe_region_ok "$DEV" carveout0 "$BASE" "$SIZE" || ok=1
        [ -e /sys/bus/platform/drivers/carveout/carveout.0 ] || { say "carveout.0 not bound"; ok=1; }
        dmesg_since_mark | grep -q 'carveout.*claimed' || { say "no 'claimed' line"; ok=1; }
    else
        say "insmod of the reserved region with async_probe=1 refused: $(cat /tmp/insmod.err)"
        dmesg_since_mark | sed 's/^/# dmesg: /'
        ok=1
    fi
    rmmod carveout 2>/dev/null
    if iomem_has_name carveout || [ -e "$DEV" ]; then
        say "rmmod left a claim or a node"
        ok=1
    fi
    # A refusal made on the probe's thread reaches insmod, with its reason.
    dmesg_mark
    if insmod "$MOD" base=0x1000000 size=0x100000 async_probe=1 2>/tmp/insmod.err; then
        say "an asynchronous load of System RAM succeeded"
        rmmod carveout
        return 1
    fi
    say "insmod (System RAM): $(cat /tmp/insmod.err)"
    grep -q 'Invalid argument' /tmp/insmod.err || { say "expected EINVAL"; ok=1; }
    dmesg_since_mark | grep -q 'carveout.*overlaps System RAM' || { say "no dmesg reason"; ok=1; }
    if iomem_has_name carveout || [ -e "$DEV" ] || module_loaded; then
        say "the refused load left a claim, a node or the module"
        ok=1
    fi
    [ "$ok" = 0 ] && dmesg_clean
}

# The regions of case_parallel_enable: six of 8 MiB, then two (x, y) that both ask for the last
# 16 MiB, so exactly one of them can have it.
parallel_regions="p0 p1 p2 p3 p4 p5 x y"
parallel_base() {
    case $1 in
    p*) echo $((BASE + ${1#p} * 8 * PMIB)) ;;
    *) echo $((BASE + 48 * PMIB)) ;;
    esac
}
parallel_size() {
    case $1 in
    p*) echo $((8 * PMIB)) ;;
    *) echo $((16 * PMIB)) ;;
    esac
}

# parallel_write VALUE: writes VALUE to every region's enable at once; each writer's status is
# in /tmp/enable.NAME.rc and its error in /tmp/enable.NAME.err.
parallel_write() {
    pids=""
    for r in $parallel_regions; do
        (
            if echo "$1" 2>"/tmp/enable.$r.err" >"$PCFS/$r/enable"; then
                echo 0
            else
                echo 1
            fi >"/tmp/enable.$r.rc"
        ) &
        pids="$pids $!"
    done
    # shellcheck disable=SC2086 # one pid a word
    wait $pids
}

# parallel_round NAME: one round of case_parallel_enable (module loaded, directories made).
parallel_round() {
    rok=0
    parallel_write 1
    for r in p0 p1 p2 p3 p4 p5; do
        [ "$(cat "/tmp/enable.$r.rc")" = 0 ] || { say "$1: enable $r: $(cat "/tmp/enable.$r.err")"; rok=1; }
        probe_region_ok "/dev/carveout/$r" "carveout-$r" "$(parallel_base "$r")" "$(parallel_size "$r")" || rok=1
    done
    # Exactly one of x and y has the contested range; the other was refused with EBUSY.
    won=""
    for r in x y; do
        if [ "$(cat "/tmp/enable.$r.rc")" = 0 ]; then
            won="$won$r"
            probe_region_ok "/dev/carveout/$r" "carveout-$r" "$(parallel_base "$r")" "$(parallel_size "$r")" || rok=1
        else
            grep -q busy "/tmp/enable.$r.err" || { say "$1: $r refused with $(cat "/tmp/enable.$r.err")"; rok=1; }
            [ "$(cat "$PCFS/$r/enable")" = 0 ] || { say "$1: $r refused but enabled"; rok=1; }
            [ ! -e "/dev/carveout/$r" ] || { say "$1: $r refused but has a node"; rok=1; }
        fi
    done
    case $won in x | y) say "$1: $won has the contested range" ;; *) say "$1: '$won' enabled"; rok=1 ;; esac
    claims=$(grep -c ' : carveout$' /proc/iomem)
    [ "$claims" = 7 ] || { say "$1: $claims claims, expected 7"; rok=1; }
    nodes=$(class_nodes)
    [ "$nodes" = 7 ] || { say "$1: $nodes nodes, expected 7"; rok=1; }
    parallel_write 0
    for r in $parallel_regions; do
        [ "$(cat "/tmp/enable.$r.rc")" = 0 ] || { say "$1: disable $r: $(cat "/tmp/enable.$r.err")"; rok=1; }
    done
    if iomem_has_name carveout || [ "$(class_nodes)" != 0 ]; then
        say "$1: claims or nodes left after disabling"
        rok=1
    fi
    return "$rok"
}

# Eight writers enable eight regions at once, twice with synchronous probing and twice with
# asynchronous probing (the probes then run on other threads than the writers).
case_parallel_enable() {
    ok=0
    for probing in sync async; do
        if [ "$probing" = async ]; then
            insmod "$MOD" async_probe=1 || return 1
        else
            insmod "$MOD" || return 1
        fi
        for r in $parallel_regions; do
            mkdir "$PCFS/$r" || return 1
            hex "$(parallel_base "$r")" >"$PCFS/$r/base" || return 1
            hex "$(parallel_size "$r")" >"$PCFS/$r/size" || return 1
        done
        for round in 1 2; do
            parallel_round "$probing round $round" || ok=1
        done
        for r in $parallel_regions; do
            rmdir "$PCFS/$r" || ok=1
        done
        rmmod carveout || ok=1
    done
    [ "$ok" = 0 ] && dmesg_clean
}

suite_probe() {
    run_case async_probe_load case_async_probe_load
    run_case parallel_enable case_parallel_enable
}
SUITES="$SUITES probe"
