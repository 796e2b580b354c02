# shellcheck shell=sh
# Zero copy (issue 22): a mapping of a pages-mode region (pages=1) as the buffer of O_DIRECT,
# io_uring's registered buffers and vmsplice, against the guest's pmem block device
# (memmap=16M!PMEM_BASE), every byte checked through /dev/mem (carveout-test zerocopy). Each
# case first runs the same transfer from a region without pages, which must fail EFAULT and
# change nothing (the kernel cannot pin a PFN mapping). And no region with pages goes away
# under a pin: configfs enable=0 and rmdir are refused, rmmod waits (or is refused).

ZC_PMEM=/dev/pmem0
ZC_CFS_ROOT=/sys/kernel/config/carveout
ZC_CFS=$ZC_CFS_ROOT/zerocopy
ZC_UNPIN=/tmp/zerocopy.unpin
zc_blocked=""

# zc_load PAGES: the module loaded afresh with the reservation as its region, pages=PAGES.
zc_load() {
    unload_quietly
    insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" "pages=$1" ||
        { say "insmod pages=$1 failed"; return 1; }
}

# zc_transfer CHECK SEED: carveout-test zerocopy CHECK from a region without pages (it must
# fail EFAULT, changing nothing), then from one with pages (the bytes must arrive).
zc_transfer() {
    [ -b "$ZC_PMEM" ] || { say "no $ZC_PMEM (memmap=16M!$(hex "$PMEM_BASE") on the command line)"; return 1; }
    set -- "$1" --target "$ZC_PMEM" --target-phys "$(hex "$PMEM_BASE")" --seed "$2"
    zc_load 0 || return 1
    carveout-test zerocopy "$@" --pfn || { say "the control without pages failed"; return 1; }
    zc_load 1 || return 1
    carveout-test info | sed 's/^/# /'
    carveout-test zerocopy "$@"
}

case_odirect_write_from_mapping() { zc_transfer odirect-write 0x0d1e; }

case_odirect_read_into_mapping() { zc_transfer odirect-read 0x0d1f; }

case_io_uring_fixed_buffers() { zc_transfer io-uring 0x10f1; }

case_vmsplice_from_mapping() { zc_transfer vmsplice 0x5b1c; }

# zc_refused_busy WHAT COMMAND...: COMMAND fails with EBUSY within 10 s (else says WHAT
# happened). One that blocks stays in the background, its pid in $zc_blocked: zc_unpin waits
# for it.
zc_refused_busy() {
    what=$1
    shift
    "$@" 2>/tmp/zerocopy.err &
    zc_pid=$!
    tries=0
    while kill -0 "$zc_pid" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -ge 100 ]; then
            say "$what: blocked for 10 s instead of failing with EBUSY"
            zc_blocked="$zc_blocked $zc_pid"
            return 1
        fi
        sleep 0.1
    done
    if wait "$zc_pid"; then
        say "$what"
        return 1
    fi
    grep -q busy /tmp/zerocopy.err || { say "$what: expected EBUSY, got $(cat /tmp/zerocopy.err)"; return 1; }
    say "refused: $(cat /tmp/zerocopy.err)"
}

# zc_pin DEV: io_uring registers all of region DEV (carveout-test zerocopy hold-pinned), then
# unmaps and closes it; the holder's pid in $holder. zc_unpin has it unregister the buffers.
zc_pin() {
    rm -f "$ZC_UNPIN"
    start_holder carveout-test --dev "$1" zerocopy hold-pinned --unpin-when "$ZC_UNPIN" || return 1
    sed 's/^/# holder: /' /tmp/hold.out
}
zc_unpin() {
    touch "$ZC_UNPIN"
    tries=0
    until grep -qs unregistered /tmp/hold.out; do
        tries=$((tries + 1))
        [ "$tries" -lt 200 ] || { say "the holder never unregistered: $(cat /tmp/hold.out)"; return 1; }
        sleep 0.1
    done
    for zc_pid in $zc_blocked; do
        wait "$zc_pid"
        say "the blocked command ended with $? after the unpin"
    done
    zc_blocked=""
}

# A configfs region with pages: enable=0 and rmdir are refused while io_uring holds its pages
# (nothing maps or opens it any more), and work once the buffers are unregistered; the
# memory holds what it held. Then the module parameter's region: rmmod waits for the pin (or
# is refused), and finishes (or works) once it is dropped.
case_pages_mode_release_while_pinned() {
    [ -d "$ZC_CFS" ] && { echo 0 >"$ZC_CFS/enable"; rmdir "$ZC_CFS"; }
    unload_quietly
    insmod "$MOD" || return 1
    ok=0
    mkdir "$ZC_CFS" || return 1
    if ! { hex "$BASE" >"$ZC_CFS/base" && echo 16M >"$ZC_CFS/size" && echo 1 >"$ZC_CFS/pages" &&
        echo 1 >"$ZC_CFS/enable"; }; then
        say "could not make a 16M configfs region with pages at $(hex "$BASE")"
        rmdir "$ZC_CFS"
        return 1
    fi
    carveout-test --dev /dev/carveout/zerocopy fill --seed 0x21c0 || ok=1
    if zc_pin /dev/carveout/zerocopy; then
        zc_refused_busy "enable=0 went through under a pin" sh -c "echo 0 >$ZC_CFS/enable" || ok=1
        zc_refused_busy "rmdir went through under a pin" rmdir "$ZC_CFS" || ok=1
        [ -c /dev/carveout/zerocopy ] || { say "the node went away under a pin"; ok=1; }
        zc_unpin || ok=1
    else
        ok=1
    fi
    echo 0 >"$ZC_CFS/enable" || { say "enable=0 refused after the unpin"; ok=1; }
    rmdir "$ZC_CFS" || { say "rmdir refused after the unpin"; ok=1; }
    release_mapping
    carveout-test devmem-verify --phys "$(hex "$BASE")" --len $((16 << 20)) --seed 0x21c0 ||
        { say "the configfs region's memory changed"; ok=1; }
    rmmod carveout || ok=1

    zc_load 1 || return 1
    carveout-test fill --seed 0x21c1 || ok=1
    zc_pin "$DEV" || return 1
    dmesg_mark
    rmmod carveout >/tmp/zerocopy.rmmod 2>&1 &
    rmmod_pid=$!
    sleep 3
    waited=0
    if kill -0 "$rmmod_pid" 2>/dev/null; then
        say "rmmod waits while the pages are pinned"
        waited=1
    elif wait "$rmmod_pid"; then
        say "rmmod unloaded the module while its pages were pinned"
        ok=1
    else
        say "rmmod refused while pinned: $(cat /tmp/zerocopy.rmmod)"
        module_loaded || { say "and yet the module is gone"; ok=1; }
    fi
    dmesg_since_mark | sed 's/^/# dmesg: /'
    zc_unpin || ok=1
    if [ "$waited" = 1 ]; then
        tries=0
        while kill -0 "$rmmod_pid" 2>/dev/null && [ "$tries" -lt 300 ]; do
            tries=$((tries + 1))
            sleep 0.1
        done
        if kill -0 "$rmmod_pid" 2>/dev/null; then
            say "rmmod still waits 30 s after the unpin; ending the holder"
            ok=1
            release_mapping
        fi
        wait "$rmmod_pid" || { say "rmmod failed after the unpin: $(cat /tmp/zerocopy.rmmod)"; ok=1; }
        dmesg_since_mark | grep -qi wait || { say "no dmesg line says rmmod waits"; ok=1; }
    else
        rmmod carveout || ok=1
    fi
    ! module_loaded || { say "the module is still loaded after the unpin"; ok=1; }
    release_mapping
    carveout-test devmem-verify --phys "$(hex "$BASE")" --len "$((SIZE))" --seed 0x21c1 ||
        { say "the region's memory changed"; ok=1; }
    return "$ok"
}

# zc_out CMD...: CMD's output (both streams) in /tmp/zerocopy.out, shown as diagnostics.
zc_out() {
    "$@" >/tmp/zerocopy.out 2>&1
    rc=$?
    sed 's/^/# /' /tmp/zerocopy.out
    return "$rc"
}

# zc_json_has POINTER=VALUE...: /tmp/zerocopy.out is one JSON value holding them.
zc_json_has() {
    for want in "$@"; do
        set -- "$@" --has "$want"
        shift
    done
    carveout-test json-check "$@" </tmp/zerocopy.out
}

# carveoutctl learns the mode: load --pages makes the memmap= region with pages (the configfs
# attribute says 1, the driver's flags have CARVEOUT_MR_PAGES), info and check say so, in text
# and JSON; without --pages, none of it.
case_carveoutctl_pages_mode() {
    unload_quietly
    insmod "$MOD" || return 1
    ok=0
    zc_out carveoutctl --json load --pages || ok=1
    zc_json_has /pages=true /entries/0/action=created /entries/0/node=/dev/carveout/memmap0 || ok=1
    [ "$(cat "$ZC_CFS_ROOT/memmap0/pages" 2>&1)" = 1 ] || { say "configfs pages is not 1"; ok=1; }
    flags=$(carveout-test --dev /dev/carveout/memmap0 info | sed -n 's/.* flags=\(0x[0-9a-f]*\) .*/\1/p')
    [ $((${flags:-0} & 0x100)) != 0 ] || { say "flags ${flags:-?} lack CARVEOUT_MR_PAGES"; ok=1; }
    zc_out carveoutctl --json info memmap0 || ok=1
    zc_json_has /pages=true || ok=1
    zc_out carveoutctl info memmap0 || ok=1
    grep -q '^  pages   yes' /tmp/zerocopy.out || { say "info does not say pages yes"; ok=1; }
    grep -q '^  flags   0x.*(.*pages' /tmp/zerocopy.out || { say "info's flags do not name pages"; ok=1; }
    zc_out carveoutctl check
    grep -q '^note: /dev/carveout/memmap0 .* has pages: .* takes 1M of RAM' /tmp/zerocopy.out ||
        { say "check does not note the pages and their cost"; ok=1; }
    zc_out carveoutctl --json check
    zc_json_has /regions/0/pages=true || ok=1
    { echo 0 >"$ZC_CFS_ROOT/memmap0/enable" && rmdir "$ZC_CFS_ROOT/memmap0"; } ||
        { say "could not drop memmap0"; ok=1; }
    # Without --pages: no pages anywhere.
    zc_out carveoutctl --json load || ok=1
    zc_json_has /pages=false /entries/0/action=created || ok=1
    zc_out carveoutctl --json info memmap0 || ok=1
    zc_json_has /pages=false || ok=1
    zc_out carveoutctl info memmap0 || ok=1
    grep -q '^  pages   no' /tmp/zerocopy.out || { say "info does not say pages no"; ok=1; }
    { echo 0 >"$ZC_CFS_ROOT/memmap0/enable" && rmdir "$ZC_CFS_ROOT/memmap0"; } || ok=1
    # --pages-align: the folio size reaches configfs and the region, info and --json show it.
    zc_out carveoutctl --json load --pages --pages-align 2M || ok=1
    zc_json_has /pages=true /pages_align=2097152 /entries/0/action=created || ok=1
    [ "$(cat "$ZC_CFS_ROOT/memmap0/pages_align" 2>&1)" = 0x200000 ] ||
        { say "configfs pages_align is $(cat "$ZC_CFS_ROOT/memmap0/pages_align" 2>&1)"; ok=1; }
    zc_out carveoutctl --json info memmap0 || ok=1
    zc_json_has /pages=true /pages_align=2097152 || ok=1
    zc_out carveoutctl info memmap0 || ok=1
    grep -q '^  pages   yes, 2M folios' /tmp/zerocopy.out || { say "info does not name the folio size"; ok=1; }
    { echo 0 >"$ZC_CFS_ROOT/memmap0/enable" && rmdir "$ZC_CFS_ROOT/memmap0"; } || ok=1
    if carveoutctl load --pages --pages-align 8K >/tmp/zerocopy.out 2>&1; then
        say "--pages-align 8K was taken"
        ok=1
    else
        grep -q 'not 4K, 2M or 1G' /tmp/zerocopy.out || { say "--pages-align 8K: $(cat /tmp/zerocopy.out)"; ok=1; }
    fi
    [ ! -d "$ZC_CFS_ROOT/memmap0" ] || { say "a refused load left memmap0"; ok=1; }
    rmmod carveout || ok=1
    return "$ok"
}

# The fuzzer on a region with pages (carveout-fuzz --pages, a tenth of 70-fuzz.sh's
# operations): its model of the contents holds through mappings, the file interface and pins
# (vmsplice) of mappings, SET_ATTR to another type than WB is refused, its reloads keep pages;
# then the contents through /dev/mem and dmesg.
case_fuzz_pages_mode() {
    zc_load 1 || return 1
    ok=0
    carveout-test fill --seed 0xf0a9e || return 1
    carveout-fuzz --pages --seed 0x9a9e5 --pattern-seed 0xf0a9e --ops $((${cvt_fuzz_ops:-200000} / 10)) \
        --procs 2 || ok=1
    module_loaded || zc_load 1 || return 1
    flags=$(carveout-test info | sed -n 's/.* flags=\(0x[0-9a-f]*\) .*/\1/p')
    [ $((${flags:-0} & 0x100)) != 0 ] || { say "after the fuzzer's reloads, flags ${flags:-?} lack pages"; ok=1; }
    carveout-test verify --seed 0xf0a9e || ok=1
    carveout-test verify --devmem --seed 0xf0a9e || ok=1
    dmesg_clean || ok=1
    unload_quietly
    return "$ok"
}

suite_zerocopy() {
    run_case odirect_write_from_mapping case_odirect_write_from_mapping
    run_case odirect_read_into_mapping case_odirect_read_into_mapping
    run_case io_uring_fixed_buffers case_io_uring_fixed_buffers
    run_case vmsplice_from_mapping case_vmsplice_from_mapping
    run_case pages_mode_release_while_pinned case_pages_mode_release_while_pinned
    run_case carveoutctl_pages_mode case_carveoutctl_pages_mode
    run_case fuzz_pages_mode case_fuzz_pages_mode
}
SUITES="$SUITES zerocopy"
