# shellcheck shell=sh
# iommufd and the VFIO device file (issue 22), in the IOMMU guest: a userspace driver owns edu
# through /dev/vfio/devices/vfioN bound to an iommufd, and maps a pages-mode region's mapping
# into its I/O address space with IOMMU_IOAS_MAP, which pins the pages (GUP): a PFN-mode
# region has none to pin. The driver is the README's C sequence
# (userspace-test/c/carveout_iommufd.c); edu-dma drives edu through its device file for the
# whole-region checks. Helpers (edu_bdf, bind_vfio, unbind_vfio, EDU_MASK) from iommu-dma.sh.

# An IOVA other than the region's physical address (and where the guest has no RAM): what
# arrives went through the IOAS's translation. 2 MiB aligned, inside edu's 32-bit DMA mask.
IOMMUFD_IOVA=0x40000000

# The region in pages mode (module parameter pages=1), write-back.
load_pages() { insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" pages=1; }

# iommufd_table_matches FILE IOVA: the IOMMU's page table for edu (intel-iommu's debugfs dump,
# FILE) maps IOVA..IOVA+SIZE-1 onto the region's physical pages, BASE..LAST, and nothing else
# there; says how many 2 MiB and 4 KiB entries it took.
iommufd_table_matches() {
    awk -v iova="$2" -v base="$BASE" -v size="$SIZE" '
        function num(h,    i, c, v) {
            v = 0; h = tolower(h); sub(/^0x/, "", h)
            for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c }
            return v
        }
        BEGIN { iova = num(iova); base = num(base); size = num(size) }
        /^0x/ {
            # IOVA_PFN | PML5E PML4E PDPE [PDE [PTE]]: the last entry is the leaf.
            va = num($1) * 4096
            len = NF == 7 ? 4096 : NF == 6 ? 2097152 : NF == 5 ? 1073741824 : 0
            if (va + len <= iova || va >= iova + size) next
            leaf = $NF; leaf = substr(leaf, length(leaf) - 12)   # bits 0..51
            pa = num(leaf); pa -= pa % 4096
            if (len == 0 || va < iova || va + len > iova + size || pa != base + (va - iova)) {
                printf "# iova 0x%x maps 0x%x (%d bytes): not the region'"'"'s page\n", va, pa, len
                bad = 1
            }
            covered += len; n[len]++
        }
        END {
            printf "# the IOMMU maps iova 0x%x..+0x%x with %d 2 MiB and %d 4 KiB entries\n",
                iova, covered, n[2097152], n[4096]
            exit bad || covered != size
        }' "$1"
}

case_iommufd_map_mapping_dma() {
    bdf=$(edu_bdf) || return 1
    [ -c /dev/iommu ] || { say "no /dev/iommu (CONFIG_IOMMUFD)"; return 1; }
    ok=1
    # The negative control first: a PFN-mode region (pages=0) has no pages to pin;
    # IOMMU_IOAS_MAP fails EFAULT and the device is given nothing.
    load || return 1
    bind_vfio "$bdf" || return 1
    [ -d "/sys/bus/pci/devices/$bdf/vfio-dev" ] ||
        { say "no VFIO device file for $bdf (CONFIG_VFIO_DEVICE_CDEV)"; return 1; }
    if carveout_iommufd "$DEV" "$bdf" "$IOMMUFD_IOVA" >/tmp/iommufd.out 2>&1; then
        say "IOMMU_IOAS_MAP of a PFN-mode mapping succeeded"
        ok=0
    fi
    cat /tmp/iommufd.out
    grep -q "IOMMU_IOAS_MAP: Bad address (a PFN-mode region" /tmp/iommufd.out ||
        { say "expected IOMMU_IOAS_MAP to fail with EFAULT for the PFN-mode region"; ok=0; }
    unbind_vfio "$bdf"
    rmmod carveout || { say "rmmod failed after the refused map"; ok=0; }

    # (insmod ignores a parameter the module does not know: carveout_iommufd's line, from
    # GET_INFO's flags, tells whether the region has pages.)
    load_pages || { say "the region did not load with pages=1"; return 1; }
    bind_vfio "$bdf" || return 1
    table=/sys/kernel/debug/iommu/intel/$bdf/domain_translation_struct
    # At an IOVA of its own: the program's transfers (checked through /dev/mem); meanwhile
    # the IOMMU's page table, read from debugfs, and edu-dma's device writes over the whole
    # region through the same device file and IOAS.
    say "the region at iova $IOMMUFD_IOVA:"
    rm -f /tmp/iommufd.table
    # shellcheck disable=SC2016 # the inner shell expands them
    carveout_iommufd "$DEV" "$bdf" "$IOMMUFD_IOVA" -- sh -c \
        'if [ -r "$1" ]; then cat "$1" >/tmp/iommufd.table; fi; shift; exec "$@"' sh "$table" \
        edu-dma --vfio-device-fd --iova "$IOMMUFD_IOVA" --dma-mask "$EDU_MASK" \
        to-carveout --seed 0x10fd >/tmp/iommufd.out 2>&1
    status=$?
    cat /tmp/iommufd.out
    if ! grep -q "(pages mode), iova $IOMMUFD_IOVA" /tmp/iommufd.out; then
        say "carveout_iommufd did not map a pages-mode region at $IOMMUFD_IOVA"
        unbind_vfio "$bdf"
        return 1
    fi
    [ "$status" = 0 ] || ok=0
    # The command reads the table only once the program's own transfers checked.
    if [ -s /tmp/iommufd.table ]; then
        iommufd_table_matches /tmp/iommufd.table "$IOMMUFD_IOVA" || ok=0
    elif [ ! -e "$table" ]; then
        say "no $table (CONFIG_INTEL_IOMMU_DEBUGFS): the IOMMU's page table is not checked"
    elif [ "$status" = 0 ]; then
        say "$table was not read while the IOAS mapped the region"
        ok=0
    fi
    rm -f /tmp/iommufd.table
    # At iova = physical base (the program's default), the device reading the region.
    say "the region at iova = its physical base:"
    carveout_iommufd "$DEV" "$bdf" -- edu-dma --vfio-device-fd --dma-mask "$EDU_MASK" \
        from-carveout --seed 0x10fe || ok=0
    # The pins went with the processes: the module unloads without waiting for any.
    unbind_vfio "$bdf"
    dmesg_mark
    rmmod carveout || { say "rmmod failed after the iommufd programs ended"; ok=0; }
    if dmesg_since_mark | grep -i "pinned"; then
        say "rmmod found pages still pinned after the iommufd programs ended"
        ok=0
    fi
    [ "$ok" = 1 ] && dmesg_clean
}

suite_iommufd() {
    run_case iommufd_map_mapping_dma case_iommufd_map_mapping_dma
    unload_quietly
}
IOMMU_SUITES="$IOMMU_SUITES iommufd"
