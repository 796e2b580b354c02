# shellcheck shell=sh
# DMA with the IOMMU on (issue 14); runs only in the IOMMU guest (cvt_mode=iommu: q35, QEMU's
# intel-iommu in front of edu, intel_iommu=on). edu's IOMMU group has a translating default
# domain (DMA-FQ): a physical address handed to the device faults. A userspace driver owns the
# device through VFIO and maps the region's mmap into its container; an identity domain lets
# physical addresses through again. Every case ends by checking dmesg for warnings.

EDU_MASK=${cvt_edu_dma_mask:-0xfffffff}

# The PCI address of the edu device (0000:00:03.0 or wherever QEMU put it).
edu_bdf() {
    for dev in /sys/bus/pci/devices/*; do
        if [ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ]; then
            basename "$dev"
            return 0
        fi
    done
    say "no edu device on the PCI bus"
    return 1
}

# The driver bound to PCI device $1, or nothing.
bound_driver() {
    [ -e "/sys/bus/pci/devices/$1/driver" ] || return 0
    basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
}

# Binds PCI device $1 to vfio-pci (driver_override, then a probe).
bind_vfio() {
    sysdev=/sys/bus/pci/devices/$1
    [ -z "$(bound_driver "$1")" ] || echo "$1" >"$sysdev/driver/unbind"
    echo vfio-pci >"$sysdev/driver_override"
    echo "$1" >/sys/bus/pci/drivers_probe
    if [ "$(bound_driver "$1")" != vfio-pci ]; then
        say "$1 did not bind to vfio-pci (driver: $(bound_driver "$1"))"
        return 1
    fi
    group=$(basename "$(readlink "$sysdev/iommu_group")")
    [ -c "/dev/vfio/$group" ] || { say "no /dev/vfio/$group"; return 1; }
}

# Unbinds PCI device $1 from vfio-pci and clears the override: no driver afterwards.
unbind_vfio() {
    sysdev=/sys/bus/pci/devices/$1
    [ "$(bound_driver "$1")" != vfio-pci ] || echo "$1" >"$sysdev/driver/unbind"
    echo >"$sysdev/driver_override"
}

# The type of PCI device $1's IOMMU group.
group_type() { cat "/sys/bus/pci/devices/$1/iommu_group/type"; }

iommu_load() {
    load || return 1
    carveout-test attr-set wb >/dev/null
}

case_iommu_raw_dma_blocked() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    type=$(group_type "$bdf")
    say "$bdf: IOMMU group $(basename "$(readlink "/sys/bus/pci/devices/$bdf/iommu_group")"), type $type"
    # The IOMMU's page sizes (VT-d capability register, SLLPS: bit 34 2 MiB, bit 35 1 GiB).
    for cap in /sys/class/iommu/*/intel-iommu/cap; do
        [ -r "$cap" ] || continue
        c=0x$(cat "$cap")
        say "$(basename "$(dirname "$(dirname "$cap")")"): cap $c, large pages: 2 MiB $(((c >> 34) & 1)), 1 GiB $(((c >> 35) & 1))"
    done
    case $type in DMA | DMA-FQ) ;; *)
        say "expected a translating default domain (DMA, DMA-FQ)"
        return 1
        ;;
    esac
    # The region keeps its pattern (checked through /dev/mem and the mapping).
    edu-dma --dma-mask "$EDU_MASK" blocked --seed 0xb10c || return 1
    fault=$(dmesg | grep -E "DMAR: \[DMA Write NO_PASID\] Request device \[$bdf\] fault addr $(hex "$BASE") " | head -n 1)
    if [ -z "$fault" ]; then
        say "dmesg holds no DMAR write fault for $bdf at $(hex "$BASE"):"
        dmesg | grep DMAR | tail -n 5
        return 1
    fi
    say "the kernel logged: ${fault#*] }"
    dmesg_clean
}

# case_vfio_dma DIRECTION SEED: edu bound to vfio-pci, the region mapped into its container
# at iova = physical base, with every attribute and 2 MiB and 4 KiB mappings (wp: read-only,
# so for device reads only; edu-dma checks that MAP_DMA refuses device writes).
case_vfio_dma() {
    dir=$1
    seed=$2
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    bind_vfio "$bdf" || return 1
    ok=1
    for attr in wb wt wc uc wp; do
        for pages in 2m 4k; do
            carveout-test attr-set "$attr" >/dev/null || ok=0
            say "$dir, $attr, $pages mapping:"
            edu-dma --vfio --pages "$pages" --dma-mask "$EDU_MASK" "$dir" --seed "$seed" || {
                say "$dir failed for $attr with a $pages mapping"
                ok=0
            }
        done
    done
    carveout-test attr-set wb >/dev/null
    if [ "$dir" = to-carveout ]; then
        # The README's C sequence (userspace-test/c/carveout_vfio.c) maps the region for edu;
        # edu-dma drives the device through the device file the C program opened.
        say "$dir through the C program's container:"
        carveout_vfio "$DEV" "$bdf" -- edu-dma --vfio-device-fd --dma-mask "$EDU_MASK" \
            "$dir" --seed "$seed" || { say "$dir through carveout_vfio failed"; ok=0; }
    fi
    unbind_vfio "$bdf"
    [ "$ok" = 1 ] && dmesg_clean
}

case_cli_check_reports_iommu() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    grp=/sys/bus/pci/devices/$bdf/iommu_group
    group=$(basename "$(readlink "$grp")")
    before=$(group_type "$bdf")
    carveoutctl check --pci "$bdf" >/tmp/check.out 2>&1 || { cat /tmp/check.out; return 1; }
    cat /tmp/check.out
    grep -q "^warning: $bdf: IOMMU group $group translates its DMA (domain type $before)" /tmp/check.out ||
        { say "no warning about $bdf's translating domain"; return 1; }
    carveoutctl --json check --pci "$bdf" >/tmp/check.json || return 1
    if ! grep -qE "\"bdf\": *\"$bdf\"" /tmp/check.json ||
        ! grep -qE '"level": *"warning"' /tmp/check.json; then
        say "the JSON lacks the device or the warning: $(cat /tmp/check.json)"
        return 1
    fi
    # A device that is not there is a problem (exit 1).
    if carveoutctl check --pci 0000:00:1e.7 >/tmp/check.out 2>&1; then
        say "a missing device passed the check"
        return 1
    fi
    grep -q "^problem: no PCI device 0000:00:1e.7" /tmp/check.out || { cat /tmp/check.out; return 1; }
    # With an identity domain: no warning, and the check says so.
    echo identity >"$grp/type" || return 1
    carveoutctl check --pci "$bdf" >/tmp/check.out 2>&1
    status=$?
    echo "$before" >"$grp/type"
    cat /tmp/check.out
    [ "$status" = 0 ] || return 1
    grep -q "^ok: $bdf: IOMMU group $group has an identity" /tmp/check.out || return 1
    if grep -q "^warning: $bdf" /tmp/check.out; then
        say "a warning with an identity domain"
        return 1
    fi
    [ "$(group_type "$bdf")" = "$before" ] || { say "could not restore $before"; return 1; }
    dmesg_clean
}

case_iommu_identity_domain() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    grp=/sys/bus/pci/devices/$bdf/iommu_group
    before=$(group_type "$bdf")
    unbind_vfio "$bdf"
    [ -z "$(bound_driver "$bdf")" ] || { say "$bdf is bound to $(bound_driver "$bdf")"; return 1; }
    echo identity >"$grp/type" || { say "the group refused identity"; return 1; }
    type=$(group_type "$bdf")
    say "$bdf: group type $before -> $type"
    status=1
    [ "$type" = identity ] &&
        edu-dma --dma-mask "$EDU_MASK" to-carveout --seed 0x1de0 &&
        edu-dma --dma-mask "$EDU_MASK" from-carveout --seed 0x1de1 &&
        status=0
    # The other side of iommu_raw_dma_blocked: what its check stops now arrives.
    if [ "$status" = 0 ] && edu-dma --dma-mask "$EDU_MASK" blocked --seed 0x1de2; then
        say "edu-dma blocked saw nothing arrive through an identity domain"
        status=1
    fi
    echo "$before" >"$grp/type"
    [ "$status" = 0 ] && dmesg_clean
}

suite_iommu() {
    run_case iommu_raw_dma_blocked case_iommu_raw_dma_blocked
    unload_quietly
    run_case cli_check_reports_iommu case_cli_check_reports_iommu
    unload_quietly
    run_case iommu_identity_domain case_iommu_identity_domain
    unload_quietly
}
IOMMU_SUITES="$IOMMU_SUITES iommu"

suite_vfio() {
    run_case vfio_dma_to_carveout case_vfio_dma to-carveout 0xf10a
    unload_quietly
    run_case vfio_dma_from_carveout case_vfio_dma from-carveout 0xf10b
    unload_quietly
}
IOMMU_SUITES="$IOMMU_SUITES vfio"
