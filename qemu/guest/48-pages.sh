# shellcheck shell=sh
# Pages mode (issue 22): pages=1 gives the region struct pages (ZONE_DEVICE,
# MEMORY_DEVICE_GENERIC), so that its mappings can be pinned. Write-back only, 2 MiB aligned,
# never reserve_mem RAM; the memory is still never touched. The warm-reboot half of
# pages_mode_survives_warm_reboot runs in /init's second boot (case_pages_mode_survives_warm_reboot
# below).
#
# The suite loads the module with pages=1 on the boot's reservation and ends with it unloaded.

PAGES_SEED=0x9a6e5eed
MR_PAGES=0x100

load_pages() { insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" pages=1; }

# pages_flags_ok: GET_INFO and GET_ATTR report CARVEOUT_MR_PAGES and write-back.
pages_flags_ok() {
    info=$(carveout-test info) || return 1
    attr=$(carveout-test attr-get) || return 1
    say "info: $info"
    say "attr: $attr"
    flags=$(echo "$info" | sed -n 's/.* flags=\(0x[0-9a-f]*\) .*/\1/p')
    [ $((${flags:-0} & MR_PAGES)) != 0 ] || { say "GET_INFO flags lack CARVEOUT_MR_PAGES ($MR_PAGES)"; return 1; }
    aflags=$(echo "$attr" | sed -n 's/.* flags=\(0x[0-9a-f]*\) .*/\1/p')
    [ $((${aflags:-0} & MR_PAGES)) != 0 ] || { say "GET_ATTR flags lack CARVEOUT_MR_PAGES"; return 1; }
    case $attr in *" attr=wb "*) ;; *) say "not write-back"; return 1 ;; esac
    [ "$(cat /sys/class/carveout/carveout0/pages)" = 1 ] || { say "sysfs pages is not 1"; return 1; }
}

# pinnable: the region's mapping is of pages, seen from outside the driver: vmsplice takes
# references to 16 of them (from a PFN mapping it fails EFAULT), which sysfs pages_in_use
# counts while the pipe holds them, mapping and file gone. Leaves nothing running.
pinnable() {
    start_holder carveout-test pin-hold --len 0x10000 --seconds 1800 ||
        { say "vmsplice from a mapping failed"; return 1; }
    say "$(cat /tmp/hold.out)"
    held=$(cat /sys/class/carveout/carveout0/pages_in_use)
    release_mapping
    after=$(cat /sys/class/carveout/carveout0/pages_in_use)
    say "pages_in_use: $held while the pipe holds them, $after after"
    [ "$held" = 16 ] && [ "$after" = 0 ]
}

case_pages_mode_refuses_non_wb() {
    unload_quietly
    ok=0
    # Load time: every other attribute, with one line each and nothing claimed.
    for a in 1:uc 2:wc 4:wt 16:wp; do
        expect_refused 'Invalid argument' "refusing attribute ${a#*:} with pages=1: .*write-back only" \
            "base=$(hex "$BASE")" "size=$(hex "$SIZE")" pages=1 "attr=${a%%:*}" || ok=1
    done
    # The alignment the memory map needs, and RAM (reserve_mem), refused the same way.
    expect_refused 'Invalid argument' 'refusing pages=1 for .*: base and size must be 2 MiB aligned' \
        "base=$(hex "$BASE")" "size=$(hex $((SIZE - 0x100000)))" pages=1 || ok=1
    expect_refused 'Invalid argument' 'refusing pages=1 for .*: reserve_mem memory is System RAM' \
        reserve_mem=cvtest pages=1 || ok=1
    # SET_ATTR on a pages-mode region: EOPNOTSUPP and one line; still write-back after.
    cat /proc/iomem >/tmp/iomem.pages.before
    load_pages || { say "insmod pages=1 failed: $(dmesg | tail -n 3)"; return 1; }
    pages_flags_ok || ok=1
    for a in uc wc wt wp; do
        dmesg_mark
        if carveout-test attr-set "$a" 2>/tmp/attr.err; then
            say "SET_ATTR $a succeeded on a pages-mode region"
            ok=1
            continue
        fi
        say "attr-set $a: $(cat /tmp/attr.err)"
        grep -q 'EOPNOTSUPP' /tmp/attr.err || { say "expected EOPNOTSUPP"; ok=1; }
        n=$(dmesg_since_mark | grep -c "carveout.*refusing attribute $a: a region with struct pages (pages=1) is write-back only")
        [ "$n" = 1 ] || { say "$n dmesg lines for SET_ATTR $a, expected 1"; dmesg_since_mark | sed 's/^/# dmesg: /'; ok=1; }
    done
    pages_flags_ok || ok=1
    rmmod carveout || ok=1
    cmp -s /tmp/iomem.pages.before /proc/iomem || { say "/proc/iomem differs after the pages-mode region went"; ok=1; }
    # configfs: attr=wc with pages=1 is refused at enable, and claims nothing.
    insmod "$MOD" || return 1
    mkdir "$CFS/pg" || return 1
    hex "$BASE" >"$CFS/pg/base"
    hex "$SIZE" >"$CFS/pg/size"
    echo 1 >"$CFS/pg/pages"
    echo wc >"$CFS/pg/attr"
    cat /proc/iomem >/tmp/iomem.before
    dmesg_mark
    if echo 1 2>/tmp/enable.err >"$CFS/pg/enable"; then
        say "configfs enabled a wc region with pages=1"
        echo 0 >"$CFS/pg/enable"
        ok=1
    else
        say "enable: $(cat /tmp/enable.err)"
        grep -q 'Invalid argument' /tmp/enable.err || { say "expected EINVAL"; ok=1; }
        dmesg_since_mark | grep -q 'carveout.*refusing attribute wc with pages=1' ||
            { say "no dmesg line for the configfs refusal"; ok=1; }
        cmp -s /tmp/iomem.before /proc/iomem || { say "/proc/iomem changed"; ok=1; }
    fi
    rmdir "$CFS/pg"
    rmmod carveout || ok=1
    return "$ok"
}

case_pages_mode_contents_survive_reload() {
    unload_quietly
    dmesg_mark
    load_pages || return 1
    # The memory map's cost, 64 bytes a 4 KiB page, said at load.
    dmesg_since_mark | grep -q "pages mode: struct pages for the range in 4 KiB folios, their memory map takes $((SIZE * 64 / 4096 / 1024)) KiB of RAM" ||
        { say "no dmesg line with the memory map's cost"; dmesg_since_mark | sed 's/^/# dmesg: /'; return 1; }
    pages_flags_ok || return 1
    pinnable || return 1
    # Reading and writing the node copies as for any region.
    carveout-test file write --seed 0x9a6e0001 || { say "file write of a pages-mode region"; return 1; }
    carveout-test file read --seed 0x9a6e0002 || { say "file read of a pages-mode region"; return 1; }
    carveout-test fill --seed "$PAGES_SEED" || return 1
    # The fuzzer's workers (fork, mremap, partial munmap, mprotect, file I/O, refused SET_ATTRs)
    # keep the pattern and leave no page held.
    pids=""
    for id in 200 201; do
        carveout-fuzz --pages --worker "$id" --seed 0x9a6e --pattern-seed "$PAGES_SEED" \
            --ops "$((${cvt_fuzz_ops:-200000} / 5))" --procs 2 --reload-ppm 0 --fork-ppm 250000 \
            --base "$(hex "$BASE")" --size "$(hex "$SIZE")" &
        pids="$pids $!"
    done
    for pid in $pids; do
        wait "$pid" || { say "fuzzer worker $pid found something or failed"; return 1; }
    done
    held=$(cat /sys/class/carveout/carveout0/pages_in_use)
    [ "$held" = 0 ] || { say "$held pages still held after the fuzzer's workers"; return 1; }
    carveout-test verify --seed "$PAGES_SEED" || return 1
    rmmod carveout || return 1
    if [ -e "$DEV" ] || iomem_has_name carveout || module_loaded; then
        say "rmmod left the node, the claim or the module behind"
        return 1
    fi
    carveout-test devmem-verify --phys "$BASE" --len "$SIZE" --seed "$PAGES_SEED" ||
        { say "contents changed while unloaded"; return 1; }
    load_pages || return 1
    pages_flags_ok || return 1
    carveout-test verify --seed "$PAGES_SEED" || { say "the mapping after reload differs"; return 1; }
    carveout-test verify --devmem --seed "$PAGES_SEED" || { say "/dev/mem after reload differs"; return 1; }
    rmmod carveout || return 1
    # And the normal module over the same memory sees the same bytes.
    load || return 1
    carveout-test verify --seed "$PAGES_SEED" || { say "a PFN mapping after pages mode differs"; return 1; }
    rmmod carveout
}

# Large folios (pages_align=2 MiB): the page map's pages form 2 MiB folios, each mapped whole by
# one 2 MiB entry (the page tables show pmd entries, write-back), pinned whole (vmsplice,
# O_DIRECT, io_uring's registered buffers); a mapping or unmapping that would split a folio is
# refused; bad sizes are refused at load with one line each.
case_pages_mode_large_folios() {
    unload_quietly
    ok=0
    expect_refused 'Invalid argument' 'refusing pages_align=0x3000: not 0x1000 .4 KiB., 0x200000 .2 MiB. or 0x40000000' \
        "base=$(hex "$BASE")" "size=$(hex "$SIZE")" pages=1 pages_align=0x3000 || ok=1
    expect_refused 'Invalid argument' 'refusing pages_align=0x200000 without pages=1' \
        "base=$(hex "$BASE")" "size=$(hex "$SIZE")" pages_align=0x200000 || ok=1
    expect_refused 'Invalid argument' 'base and size must be multiples of pages_align' \
        "base=$(hex "$BASE")" "size=$(hex "$SIZE")" pages=1 pages_align=0x40000000 || ok=1
    dmesg_mark
    insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" pages=1 pages_align=0x200000 ||
        { say "insmod pages_align=0x200000 failed: $(dmesg | tail -n 3)"; return 1; }
    dmesg_since_mark | sed 's/^/# dmesg: /'
    dmesg_since_mark | grep -q 'pages mode: struct pages for the range in 2 MiB folios' ||
        { say "no dmesg line naming the folio size"; ok=1; }
    align=$(cat /sys/class/carveout/carveout0/pages_align)
    [ "$align" = 2097152 ] || { say "sysfs pages_align is $align, expected 2097152"; ok=1; }
    pages_flags_ok || ok=1
    # Every entry covering a mapping of the region is a 2 MiB one, write-back; the words
    # written through it are in memory (/dev/mem).
    pte_check pte --attr wb --placement kernel --level pmd --write --stamp 0x9a6e0f01 ||
        { say "expected 2 MiB (pmd) entries"; ok=1; }
    carveout-test folio-maps || ok=1
    # A pin holds its whole folio: 16 pages spliced, 512 in use.
    start_holder carveout-test pin-hold --len 0x10000 --seconds 1800 ||
        { say "vmsplice from a 2 MiB folio mapping failed"; return 1; }
    held=$(cat /sys/class/carveout/carveout0/pages_in_use)
    release_mapping
    after=$(cat /sys/class/carveout/carveout0/pages_in_use)
    say "pages_in_use: $held while the pipe holds 16 pages of a folio, $after after"
    [ "$held" = 512 ] && [ "$after" = 0 ] || ok=1
    carveout-test roundtrip --seed 0x9a6e0f02 || { say "round trip through 2 MiB folios"; ok=1; }
    # Zero copy through 2 MiB folios (the crate maps the folios around the window): O_DIRECT
    # both ways and io_uring's registered (long-term pinned) buffers, against the pmem device,
    # every byte checked through /dev/mem (49-zerocopy.sh).
    if [ -b "$ZC_PMEM" ]; then
        for check in odirect-write odirect-read io-uring; do
            carveout-test zerocopy "$check" --target "$ZC_PMEM" --target-phys "$(hex "$PMEM_BASE")" \
                --seed 0x9a6e0f03 || { say "$check through 2 MiB folios failed"; ok=1; }
        done
    else
        say "no $ZC_PMEM"
        ok=1
    fi
    rmmod carveout || ok=1
    iomem_has_name carveout && { say "the claim is still there"; ok=1; }
    return "$ok"
}

# Run by /init in the second boot, after survives_warm_reboot (module loaded, the first boot's
# pattern verified): the same pattern through a pages-mode mapping and /dev/mem; leaves the
# normal module loaded, as it found it.
case_pages_mode_survives_warm_reboot() {
    rmmod carveout || return 1
    load_pages || return 1
    ok=0
    pages_flags_ok || ok=1
    pinnable || ok=1
    carveout-test verify --seed "$REBOOT_SEED" || { say "the pages-mode mapping differs"; ok=1; }
    carveout-test verify --devmem --seed "$REBOOT_SEED" || { say "/dev/mem differs"; ok=1; }
    rmmod carveout || ok=1
    load || ok=1
    return "$ok"
}

suite_pages() {
    run_case pages_mode_refuses_non_wb case_pages_mode_refuses_non_wb
    run_case pages_mode_contents_survive_reload case_pages_mode_contents_survive_reload
    run_case pages_mode_large_folios case_pages_mode_large_folios
}
SUITES="$SUITES pages"
