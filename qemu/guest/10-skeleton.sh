# shellcheck shell=sh
# The walking skeleton's cases (issue #2): load, claim, info, mmap, reload, refusals, unload.

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
    hold_mapping || return 1
    if rmmod carveout 2>/tmp/rmmod.err; then
        say "rmmod succeeded under a mapping"
        release_mapping
        return 1
    fi
    say "rmmod under a mapping: $(cat /tmp/rmmod.err)"
    ok=0
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout || { say "the claim went away"; ok=1; }
    release_mapping
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
    dmesg_mark
    if insmod "$MOD" "$@" 2>/tmp/insmod.err; then
        say "insmod $* succeeded; /proc/iomem and dmesg:"
        sed 's/^/# /' /proc/iomem
        dmesg_since_mark | sed 's/^/# dmesg: /'
        rmmod carveout
        return 1
    fi
    say "insmod: $(cat /tmp/insmod.err)"
    grep -q "$errno_text" /tmp/insmod.err || { say "expected '$errno_text'"; return 1; }
    dmesg_since_mark >/tmp/dmesg.new
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

# A MAP_PRIVATE mapping is refused with EINVAL by pfn_vma itself (the driver's mmap no longer
# checks): its own line says so, no VMA is counted, no BUG or warning.
case_private_mapping_refused() {
    node=/sys/class/carveout/carveout0
    before=$(cat "$node/map_count")
    for attempt in 1 2; do
        dmesg_mark
        out=$(carveout-test mmap-bounds) || { echo "$out"; return 1; }
        echo "$out" | grep 'private mapping' || { say "no private mapping attempt"; return 1; }
        dmesg_since_mark >/tmp/dmesg.new
        if grep -q 'carveout: pfn_vma: refusing a private mapping' /tmp/dmesg.new; then
            break
        fi
        # The refusal lines are rate limited (10 in 5 s): earlier cases may have used them up.
        [ "$attempt" = 1 ] || { say "no refusal line from pfn_vma"; return 1; }
        sleep 6
    done
    sed 's/^/# dmesg: /' /tmp/dmesg.new
    after=$(cat "$node/map_count")
    [ "$before" = "$after" ] || { say "map_count went from $before to $after"; return 1; }
    dmesg_clean
}

# A claim inside System RAM the kernel uses (its own code) is refused, also with
# allow_unlisted=1, at load and through configfs, with a line saying why; /proc/iomem stays as
# it was. (The abstraction's own
# refusal, and a reserve_mem claim taking its range from the kernel's table only, are in the
# kernel_ext KUnit suite.)
case_claim_never_nests_in_ram() {
    code=$(awk '/ : Kernel code$/ { sub(/^ */, ""); split($1, r, "-"); print r[1]; exit }' /proc/iomem)
    [ -n "$code" ] || { say "no Kernel code entry in /proc/iomem"; return 1; }
    code_block=$(( (0x$code) & ~0x1fffff ))
    say "kernel code at 0x$code: claiming $(hex "$code_block")+0x200000"
    expect_refused 'Invalid argument' 'overlaps System RAM' "base=$(hex "$code_block")" size=0x200000 allow_unlisted=1 attr=1 || return 1
    # The same at run time, through configfs.
    insmod "$MOD" || return 1
    cfs=/sys/kernel/config/carveout/ram
    mkdir "$cfs" || { rmmod carveout; return 1; }
    ok=0
    hex "$code_block" >"$cfs/base" && echo 0x200000 >"$cfs/size" &&
        echo 1 >"$cfs/allow_unlisted" || ok=1
    cat /proc/iomem >/tmp/iomem.before
    dmesg_mark
    if echo 1 2>/tmp/enable.err >"$cfs/enable"; then
        say "enable of a region inside kernel code succeeded"
        echo 0 >"$cfs/enable"
        ok=1
    fi
    say "enable: $(cat /tmp/enable.err)"
    grep -q 'Invalid argument' /tmp/enable.err || { say "expected EINVAL"; ok=1; }
    dmesg_since_mark | sed 's/^/# dmesg: /'
    lines=$(dmesg_since_mark | grep -c 'overlaps System RAM')
    [ "$lines" = 1 ] || { say "$lines lines saying it overlaps System RAM, expected 1"; ok=1; }
    cmp -s /tmp/iomem.before /proc/iomem || { say "/proc/iomem changed"; ok=1; }
    rmdir "$cfs" || ok=1
    rmmod carveout || ok=1
    return "$ok"
}

# case_kunit SUITE: the module's KUnit suite SUITE, run at load, passed.
case_kunit() {
    dmesg | grep -E "^\[[ 0-9.]*\] *(# |ok |not ok ).*$1" | sed 's/^/# /'
    dmesg | grep -qE "\] ok [0-9]+ $1\$"
}

suite_skeleton() {
    run_case load_claims_region case_load_claims_region
    run_case kunit_carveout_range case_kunit carveout_range
    run_case kunit_carveout_attr case_kunit carveout_attr
    run_case kunit_kernel_ext case_kunit kernel_ext
    run_case info_ioctl case_info_ioctl
    run_case mmap_roundtrip_c carveout_test roundtrip "$DEV" 0xc0ffee
    run_case mmap_roundtrip_rust carveout-test roundtrip --seed 0x7e57
    run_case mmap_out_of_range carveout-test mmap-bounds
    run_case private_mapping_refused_by_abstraction case_private_mapping_refused
    run_case survives_reload case_survives_reload
    run_case rmmod_busy_while_mapped case_rmmod_busy_while_mapped
    unload_quietly
    run_case refuses_system_ram case_refuses_system_ram
    run_case refuses_unaligned case_refuses_unaligned
    run_case refuses_zero_size case_refuses_zero_size
    run_case refuses_wrap case_refuses_wrap
    run_case refuses_already_claimed case_refuses_already_claimed
    run_case claim_never_nests_in_ram case_claim_never_nests_in_ram
}
SUITES="$SUITES skeleton"
