# shellcheck shell=sh
# The guest with memory above 4 GiB (cvt_mode=high; qemu/run.sh): 256 MiB of RAM below 4 GiB,
# 2 GiB + 64 MiB from 4 GiB on, the region (memmap=8M$BASE) inside the latter and the GiB from
# 5 GiB reserved too (memmap=1G$GIB_BASE, 1 GiB aligned: pud_mapping_1g, in PFN mode and in
# pages mode with 1 GiB folios); edu's DMA mask is all
# 64 bits. Every path a user takes with such a region, checked from outside the driver through
# /dev/mem. And swiotlb=force: every direct DMA mapping would be bounced, which an attach must
# refuse. edu_bdf comes from iommu-dma.sh.

FOUR_G=0x100000000

# memmap_pages: the pages the kernel's memory maps take (/proc/vmstat nr_memmap_pages).
memmap_pages() { awk '$1 == "nr_memmap_pages" { print $2 }' /proc/vmstat; }

case_region_above_4g_data() {
    [ $((BASE)) -ge $((FOUR_G)) ] || { say "the region $(hex "$BASE") is below 4 GiB"; return 1; }
    # The premise: RAM on both sides of the region, above 4 GiB.
    grep -E '^ *1[0-9a-f]{8}-[0-9a-f]+ : System RAM$' /proc/iomem | sed 's/^/# iomem: /'
    [ "$(grep -cE '^ *1[0-9a-f]{8}-[0-9a-f]+ : System RAM$' /proc/iomem)" -ge 2 ] ||
        { say "no System RAM on both sides of the region above 4 GiB"; return 1; }
    load || return 1
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout ||
        { say "no claim of $(hex "$BASE")-$(hex "$LAST") inside Reserved"; return 1; }
    info=$(carveout-test info)
    say "$info"
    case $info in *"base=$(hex "$BASE") "*) ;; *) say "GET_INFO gives another base"; return 1 ;; esac
    ok=1
    # map, write, read: through a mapping, then /dev/mem.
    carveout-test roundtrip --seed 0x4a0 || { say "mapping round trip failed"; ok=0; }
    # The node's read() and write(), checked through a mapping and /dev/mem.
    carveout-test file read --seed 0x4a1 || { say "read() failed"; ok=0; }
    carveout-test file write --seed 0x4a2 || { say "write() failed"; ok=0; }
    # save and restore (carveoutctl: read() and write() of the node).
    carveout-test fill --seed 0x4a3 >/dev/null || ok=0
    carveoutctl save /tmp/high.bin || ok=0
    [ "$(wc -c </tmp/high.bin)" = "$((SIZE))" ] || { say "saved $(wc -c </tmp/high.bin) bytes"; ok=0; }
    carveout-test fill --seed 0x4a4 >/dev/null || ok=0
    carveout-test verify --devmem --seed 0x4a4 || ok=0
    carveoutctl restore /tmp/high.bin || ok=0
    rm -f /tmp/high.bin
    carveout-test verify --devmem --seed 0x4a3 || { say "the restored contents differ"; ok=0; }
    # edu's DMA at physical addresses above 4 GiB (no IOMMU, its mask all 64 bits).
    edu-dma --dma-mask 0xffffffffffffffff to-carveout --seed 0x4a5 || { say "DMA to the region failed"; ok=0; }
    edu-dma --dma-mask 0xffffffffffffffff from-carveout --seed 0x4a6 ||
        { say "DMA from the region failed"; ok=0; }
    [ "$ok" = 1 ] && dmesg_clean
}

# swiotlb=force: the DMA API would hand edu (no IOMMU) a bounce buffer's address, not the
# region's: refused with ERANGE and one line, nothing attached, the contents untouched. Both for
# the param region (8 MiB, above 4 GiB, with a stated reach of 64 bits) and a region small
# enough for swiotlb to bounce (64 KiB, with edu's own 32-bit mask: LOW_BASE). And a reach the
# DMA API refuses (EIO): with no IOMMU a mask must cover all RAM (here up to 6 GiB + 64 MiB),
# which 28 bits do not, though they reach the region at LOW_BASE.
LOW_BASE=${cvt_low_base:-0x8000000}

case_attach_would_bounce_refused() {
    grep -qE 'swiotlb=[0-9,]*force' /proc/cmdline || { say "not booted with swiotlb=force"; return 1; }
    load || return 1
    bdf=$(edu_bdf) || return 1
    carveout-test fill --seed 0xb0b0 >/dev/null || return 1
    ok=1
    # Out of reach: edu's default mask is 32 bits, the region above 4 GiB.
    refused ERANGE "its DMA mask does not reach the region" carveoutctl attach "$bdf" || ok=0
    # Within reach (64 bits stated): the DMA API would bounce.
    refused ERANGE "the DMA API would bounce its transfers" \
        carveoutctl attach --reach-bits 64 "$bdf" || ok=0
    [ -z "$(cat /sys/class/carveout/carveout0/dma_devices)" ] ||
        { say "attached: $(cat /sys/class/carveout/carveout0/dma_devices)"; ok=0; }
    carveout-test verify --devmem --seed 0xb0b0 || ok=0
    make_region low "$(hex "$LOW_BASE")" 0x10000 || { drop_region low; return 1; }
    carveoutctl fill --seed 0xb0b1 low || ok=0
    refused EIO "the DMA API refuses the reach stated for it" \
        carveoutctl attach --reach-bits 28 "$bdf" low || ok=0
    refused ERANGE "the DMA API would bounce its transfers" carveoutctl attach "$bdf" low || ok=0
    [ -z "$(cat /sys/class/carveout/carveout-low/dma_devices)" ] ||
        { say "attached: $(cat /sys/class/carveout/carveout-low/dma_devices)"; ok=0; }
    carveoutctl verify --seed 0xb0b1 low || ok=0
    carveout-test devmem-verify --phys "$LOW_BASE" --len 0x10000 --seed 0xb0b1 || ok=0
    drop_region low
    [ "$(cat "/sys/bus/pci/devices/$bdf/dma_mask_bits")" = 32 ] || { say "edu's mask changed"; ok=0; }
    [ "$ok" = 1 ] && dmesg_clean
}

# 1 GiB entries (issue 22): a region of the reserved GiB at GIB_BASE, mapped where the kernel
# chooses (the driver's get_unmapped_area keeps the physical address's congruence modulo 1 GiB),
# is covered by one pud (1 GiB) entry selecting the region's type for UC, WC and WB, and by
# 4 KiB entries for WT and WP (whose PAT bit a large entry keeps elsewhere); the words written
# through each mapping, one a MiB, are read back through /dev/mem. Mapped from 2 MiB into the
# GiB (no whole 1 GiB block), it gets 2 MiB entries. Then as a pages-mode region of 1 GiB
# folios: one pud entry, write-back, the folio pinned whole (sysfs pages_in_use), a mapping of
# part of it refused. pte_check and PTDUMP: 27-ptes.sh.
GIB_BASE=${cvt_gib_base:-}

case_pud_mapping_1g() {
    [ -n "$GIB_BASE" ] || { say "no cvt_gib_base: the guest has no reserved 1 GiB block"; return 1; }
    [ -r "$PTDUMP" ] || { say "no $PTDUMP (CONFIG_PTDUMP_DEBUGFS, debugfs)"; return 1; }
    grep -qw pdpe1gb /proc/cpuinfo || { say "the CPU has no 1 GiB pages (pdpe1gb)"; return 1; }
    grep -iE "^ *$(printf '%x' "$GIB_BASE")-" /proc/iomem | sed 's/^/# iomem: /'
    module_loaded || load || return 1
    make_region gib "$(hex "$GIB_BASE")" 1G || { drop_region gib; return 1; }
    node=/dev/carveout/gib
    ok=1
    seed=$((0x9100))
    for attr in uc wc wb wt wp; do
        level=pud
        case $attr in wt | wp) level=pte ;; esac
        seed=$((seed + 1))
        carveout-test --dev "$node" attr-set "$attr" || { ok=0; continue; }
        pte_check --dev "$node" pte --attr "$attr" --placement kernel --level "$level" \
            --stamp "$seed" || { say "$attr: expected $level entries selecting it"; ok=0; }
    done
    carveout-test --dev "$node" attr-set wb || ok=0
    pte_check --dev "$node" pte --attr wb --placement kernel --offset 0x200000 --level pmd \
        --stamp "$((seed + 1))" || { say "wb from 2 MiB into the GiB: expected pmd entries"; ok=0; }
    drop_region gib
    # Pages mode with 1 GiB folios (pages_align=1G): the folio mapped whole by one pud entry,
    # write-back, pinned whole; a mapping of part of it refused.
    mkdir "$CFS/gibp" || return 1
    hex "$GIB_BASE" >"$CFS/gibp/base"
    echo 1G >"$CFS/gibp/size"
    echo 1 >"$CFS/gibp/pages"
    # The kernel's memory map of the GiB (/proc/vmstat nr_memmap_pages, which counts what
    # memremap_pages allocates): 64 bytes a 4 KiB page with 4 KiB folios; with a 1 GiB folio
    # the tail pages share theirs.
    memmap_before=$(memmap_pages)
    echo 1 >"$CFS/gibp/enable" || { drop_region gibp; return 1; }
    memmap_small=$(($(memmap_pages) - memmap_before))
    echo 0 >"$CFS/gibp/enable" || { drop_region gibp; return 1; }
    echo 1G >"$CFS/gibp/pages_align"
    memmap_before=$(memmap_pages)
    if echo 1 >"$CFS/gibp/enable"; then
        memmap_large=$(($(memmap_pages) - memmap_before))
        say "memory map of the GiB: $memmap_small pages with 4 KiB folios, $memmap_large with a 1 GiB folio"
        if [ "$memmap_small" -lt 4096 ] || [ $((memmap_large * 64)) -gt "$memmap_small" ]; then
            say "expected 4096 pages or more with 4 KiB folios, under a 64th of that with 1 GiB"
            ok=0
        fi
        node=/dev/carveout/gibp
        sys=/sys/class/carveout/carveout-gibp
        [ "$(cat "$sys/pages_align")" = 1073741824 ] ||
            { say "sysfs pages_align is $(cat "$sys/pages_align"), expected 1073741824"; ok=0; }
        pte_check --dev "$node" pte --attr wb --placement kernel --level pud --write \
            --stamp "$((seed + 2))" || { say "pages mode: expected one pud entry"; ok=0; }
        if carveout-test --dev "$node" pte --attr wb --placement kernel --offset 0x200000 \
            --len 0x200000 >/tmp/pte.out 2>&1; then
            say "pages mode: a 2 MiB mapping inside a 1 GiB folio was not refused"
            ok=0
        else
            grep -q 'Invalid argument\|EINVAL' /tmp/pte.out ||
                { say "pages mode: expected EINVAL: $(cat /tmp/pte.out)"; ok=0; }
        fi
        start_holder carveout-test --dev "$node" pin-hold --len 0x10000 --seconds 1800 ||
            { say "pages mode: vmsplice from the 1 GiB folio failed"; ok=0; }
        held=$(cat "$sys/pages_in_use")
        release_mapping
        say "pages_in_use: $held while a pipe holds 16 pages of the folio, $(cat "$sys/pages_in_use") after"
        [ "$held" = 262144 ] && [ "$(cat "$sys/pages_in_use")" = 0 ] || ok=0
    else
        say "pages mode with pages_align=1G refused: $(dmesg | tail -n 2)"
        ok=0
    fi
    drop_region gibp
    [ "$ok" = 1 ] && dmesg_clean
}

# Each case starts with "@@running NAME": qemu/run.sh fails the case a kernel warning appeared in.
suite_high() {
    echo "@@running region_above_4g_data"
    run_case region_above_4g_data case_region_above_4g_data
    unload_quietly
    echo "@@running attach_would_bounce_refused"
    run_case attach_would_bounce_refused case_attach_would_bounce_refused
    unload_quietly
    echo "@@running pud_mapping_1g"
    run_case pud_mapping_1g case_pud_mapping_1g
    unload_quietly
}
HIGH_SUITES="$HIGH_SUITES high"
