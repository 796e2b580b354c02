# shellcheck shell=sh
# Who owns edu's IOMMU group while the region is attached to it (issue 20): a driver that may hand
# the group to userspace (vfio-pci: driver_managed_dma) binding to edu revokes the mapping first,
# while the group is still on its default domain; attach is refused while such a driver is bound
# or a user owns the group; whatever VFIO did meanwhile, no bus address handed out reaches the
# region after detach. Removal racing attach leaves nothing behind, and an attach failing after
# the region was mapped leaves nothing mapped (the DMA-API debug dump, debug kernel). Each case
# checks by DMA. attach_edu, dma_devices, refused, json_file_num come from iommu-attach.sh;
# edu_bdf, bind_vfio, unbind_vfio, group_type, iommu_load from iommu-dma.sh.

REVOKED_LINE="which may hand DMA in its IOMMU group to userspace: the carve-out is no longer mapped for"

# attach_reach28: attaches edu with a stated reach of 28 bits (its DMA mask in QEMU); sets bdf
# and bus (decimal).
attach_reach28() {
    bdf=$(edu_bdf) || return 1
    carveoutctl --json attach --reach-bits 28 "$bdf" >/tmp/attach.json 2>&1 ||
        { say "attach: $(cat /tmp/attach.json)"; return 1; }
    bus=$(json_file_num bus_addr /tmp/attach.json)
    [ -n "$bus" ] || { say "no bus address in $(cat /tmp/attach.json)"; return 1; }
    grep -q '"translated":true' /tmp/attach.json || { say "not translated: $(cat /tmp/attach.json)"; return 1; }
    say "attached: $(cat /tmp/attach.json)"
}

# attached_then_vfio_bound SEED: edu attached with a 28-bit reach ($bdf, $bus), SEED's pattern
# DMAed through the bus address, then edu bound to vfio-pci after a dmesg mark.
attached_then_vfio_bound() {
    iommu_load || return 1
    attach_reach28 || return 1
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" to-carveout --seed "$1" || return 1
    dmesg_mark
    bind_vfio "$bdf"
}

# revoked_on_bind: dmesg since the mark says vfio-pci's bind revoked edu's attachment.
revoked_on_bind() {
    dmesg_since_mark | grep -q "vfio-pci binds to $bdf, $REVOKED_LINE $bdf\$" ||
        { say "no dmesg line for the revocation: $(dmesg_since_mark)"; return 1; }
}

# dmar_fault_at ADDR: dmesg since the mark holds a DMAR fault of edu at ADDR.
dmar_fault_at() {
    fault=$(dmesg_since_mark | grep -E "DMAR: \[DMA (Read|Write) NO_PASID\] Request device \[$bdf\] fault addr $1 " | head -n 1)
    [ -n "$fault" ] || { say "no DMAR fault of $bdf at $1:"; dmesg_since_mark | grep DMAR | tail -n 5; return 1; }
    say "the kernel logged: ${fault#*] }"
}

# The issue's five steps: attached (reach 28, translated); edu bound to vfio-pci and its group
# put in a VFIO type1v2 container; detach while VFIO holds it returns 0; VFIO closed and
# vfio-pci unbound (the group is back on its default domain); raw edu DMA to the old bus address
# arrives nowhere, and the IOMMU names that address in a fault.
case_detach_after_vfio_took_group_revokes() {
    attached_then_vfio_bound 0x7a01 || return 1
    ok=1
    revoked_on_bind || ok=0
    [ "$(dma_devices)" = "$bdf - revoked" ] || { say "dma_devices: $(dma_devices)"; ok=0; }
    # carveout_vfio opens the group, VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU (type1v2), maps
    # the region in the container, then runs the detach while it holds all that.
    carveout_vfio "$DEV" "$bdf" -- carveoutctl detach "$bdf" >/tmp/vfio.out 2>&1 ||
        { say "detach while VFIO holds the group: $(cat /tmp/vfio.out)"; ok=0; }
    say "while VFIO held the group: $(tr '\n' ' ' </tmp/vfio.out)"
    [ -z "$(dma_devices)" ] || { say "still listed: $(dma_devices)"; ok=0; }
    unbind_vfio "$bdf"
    type=$(group_type "$bdf")
    say "vfio-pci unbound: $bdf's group type $type, driver '$(bound_driver "$bdf")'"
    case $type in DMA | DMA-FQ) ;; *) ok=0 ;; esac
    # DMA-FQ unmaps lazily (within 10 ms): wait past that, as in iommu_detach_revokes.
    sleep 1
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" blocked --seed 0x7a02 ||
        { say "edu's DMA to $(hex "$bus") reached the region"; ok=0; }
    dmar_fault_at "$(hex "$bus")" || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

# While edu is bound to vfio-pci, and while VFIO owns its group: attach is refused with EBUSY and
# one line naming the driver; nothing is attached. Once unbound, attach works again.
case_attach_refused_while_vfio_owns() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    bind_vfio "$bdf" || return 1
    ok=1
    pattern="attach $bdf: $bdf is bound to vfio-pci, which may hand DMA in its IOMMU group to userspace"
    refused EBUSY "$pattern" carveoutctl attach "$bdf" || ok=0
    # VFIO owns the group (a container with the type1v2 IOMMU) while carveout_vfio runs.
    rm -f /tmp/owned /tmp/release
    # shellcheck disable=SC2016 # expanded by the inner shell
    carveout_vfio "$DEV" "$bdf" -- sh -c \
        'touch /tmp/owned; n=0; until [ -e /tmp/release ] || [ $n -ge 600 ]; do sleep 0.1; n=$((n + 1)); done' \
        >/tmp/vfio.out 2>&1 &
    owner=$!
    tries=0
    until [ -e /tmp/owned ]; do
        tries=$((tries + 1))
        if [ "$tries" -ge 300 ] || ! kill -0 "$owner" 2>/dev/null; then
            say "VFIO never took the group: $(cat /tmp/vfio.out)"
            unbind_vfio "$bdf"
            return 1
        fi
        sleep 0.1
    done
    refused EBUSY "$pattern" carveoutctl attach "$bdf" || ok=0
    make_high_region || ok=0
    refused "Device or resource busy" "$pattern" sh -c "echo $bdf >$CFS/hi/attach" || ok=0
    if [ -n "$(dma_devices)" ] || [ -n "$(dma_devices carveout-hi)" ]; then
        say "attached: $(dma_devices) $(dma_devices carveout-hi)"
        ok=0
    fi
    touch /tmp/release
    wait "$owner"
    drop_region hi
    unbind_vfio "$bdf"
    attach_reach28 || ok=0
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" to-carveout --seed 0x7a03 || ok=0
    carveoutctl detach "$bdf" >/dev/null || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

# The chosen behaviour when VFIO takes the group of an attached device: binding vfio-pci revokes
# the mapping (before vfio-pci's probe, while the group is on its default domain); VFIO then
# takes the group and works as usual (edu DMAs into the region through its own container); after
# VFIO lets go and vfio-pci is unbound, the old bus address reaches nothing. Detach of the
# revoked attachment returns 0.
case_vfio_take_while_attached() {
    attached_then_vfio_bound 0x7a04 || return 1
    ok=1
    revoked_on_bind || ok=0
    carveoutctl --json info >/tmp/info.json || ok=0
    grep -q '"ioctl_error":"ENODEV"' /tmp/info.json || { say "info: $(cat /tmp/info.json)"; ok=0; }
    edu-dma --vfio --dma-mask "$EDU_MASK" to-carveout --seed 0x7a05 ||
        { say "VFIO's own DMA failed after the revocation"; ok=0; }
    unbind_vfio "$bdf"
    sleep 1
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" blocked --seed 0x7a06 ||
        { say "edu's DMA to $(hex "$bus") reached the region after the revocation"; ok=0; }
    dmar_fault_at "$(hex "$bus")" || ok=0
    carveoutctl detach "$bdf" >/dev/null || ok=0
    [ -z "$(dma_devices)" ] || { say "still listed: $(dma_devices)"; ok=0; }
    [ "$ok" = 1 ] && dmesg_clean
}

DMA_API_DUMP=/sys/kernel/debug/dma-api/dump
INTEL_IOMMU_DEBUG=/sys/kernel/debug/iommu/intel

# dma_api_entries BDF: the DMA-API debug dump's entries for BDF (none on a kernel without
# CONFIG_DMA_API_DEBUG).
dma_api_entries() {
    [ -r "$DMA_API_DUMP" ] || return 0
    grep " $1 " "$DMA_API_DUMP" || true
}

# region_leaves BDF: the leaves of BDF's IOMMU page table (intel-iommu's debugfs dump of the
# device's domain, CONFIG_INTEL_IOMMU_DEBUGFS) that lead into the region, one "IOVA PHYS SIZE"
# line each (decimal); fails if the kernel has no dump for BDF. A dump line is the IOVA's page
# number, then the entry of each level down to the leaf: 5 fields for a 1 GiB leaf, 6 for
# 2 MiB, 7 for 4 KiB. The address is bits 12 to 51 of the leaf.
region_leaves() {
    table=$INTEL_IOMMU_DEBUG/$1/domain_translation_struct
    [ -r "$table" ] || { say "no $table (CONFIG_INTEL_IOMMU_DEBUGFS)"; return 1; }
    awk -v base="$((BASE))" -v size="$((SIZE))" '
        function low52(s,   v, i) {
            s = substr(s, length(s) - 12)
            v = 0
            for (i = 1; i <= 13; i++)
                v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return v
        }
        /^0x/ && $2 == "|" && NF >= 5 && NF <= 7 {
            len = NF == 5 ? 1073741824 : (NF == 6 ? 2097152 : 4096)
            phys = low52($NF)
            phys -= phys % len
            if (phys < base + size && phys + len > base)
                printf "%.0f %.0f %.0f\n", low52($1) * 4096, phys, len
        }' "$table"
}

# region_unmapped_for BDF WHEN: no IOVA of BDF's domain leads into the region.
region_unmapped_for() {
    leaves=$(region_leaves "$1") || return 1
    [ -z "$leaves" ] && return 0
    say "$2: intel-iommu's page table of $1 still leads into the region (IOVA PHYS SIZE):"
    echo "$leaves" | head -n 5 | sed 's/^/# /'
    return 1
}

# region_mapped_for BDF BUS: BDF's domain maps the whole region at bus address BUS (decimal),
# and nothing else leads into it.
region_mapped_for() {
    leaves=$(region_leaves "$1") || return 1
    summary=$(echo "$leaves" | awk -v base="$((BASE))" -v size="$((SIZE))" -v bus="$2" '
        NF == 3 {
            n++
            if ($1 - bus != $2 - base || $2 < base || $2 + $3 > base + size) bad++
            covered += $3
        }
        END { printf "%d leaves, %.0f bytes, %d astray", n, covered, bad; exit !(bad == 0 && covered == size) }') && {
        say "intel-iommu's page table of $1 maps the region at $(hex "$2"): $summary"
        return 0
    }
    say "intel-iommu's page table of $1 does not map the region at $(hex "$2") as one: $summary"
    echo "$leaves" | head -n 5 | sed 's/^/# /'
    return 1
}

# Attach and detach, 200 rounds (carveout-test attach-rounds: ioctls from one process, which TCG
# runs far faster than a process per request), against edu's removal and rescan in a loop: every
# request succeeds or finds the device gone (ENODEV) or not attached (ENOENT); no stale
# dma_devices entry, no warning, nothing left mapped for edu (the DMA-API debug dump on the debug
# kernel; intel-iommu's page table of edu, read from its debugfs, after the race, and again after
# an attach, where it must map the region at the bus address, and its detach); edu still attaches
# and DMAs afterwards.
case_attach_vs_remove_race() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    [ -r "$DMA_API_DUMP" ] || say "no $DMA_API_DUMP (CONFIG_DMA_API_DEBUG): the DMA-API half is not checked"
    region_leaves "$bdf" >/dev/null || return 1
    rm -f /tmp/race.stop /tmp/race.count
    (
        n=0
        while [ ! -e /tmp/race.stop ]; do
            [ -e "/sys/bus/pci/devices/$bdf/remove" ] && echo 1 >"/sys/bus/pci/devices/$bdf/remove"
            echo 1 >/sys/bus/pci/rescan
            n=$((n + 1))
            # Room for the attaches (at full speed the loop starves them under TCG).
            sleep 0.05
        done
        echo "$n" >/tmp/race.count
    ) 2>/dev/null &
    racer=$!
    start=$(cut -d' ' -f1 /proc/uptime)
    ok=1
    carveout-test attach-rounds --rounds 200 --pause-ms 20 --reach-bits 28 "$bdf" >/tmp/race.out 2>&1 ||
        ok=0
    touch /tmp/race.stop
    wait "$racer"
    end=$(cut -d' ' -f1 /proc/uptime)
    [ -e "/sys/bus/pci/devices/$bdf" ] || echo 1 >/sys/bus/pci/rescan
    say "200 rounds in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s: $(cat /tmp/race.out); $(cat /tmp/race.count) removals and rescans"
    grep -q "^[1-9][0-9]* attached" /tmp/race.out || { say "no attach succeeded"; ok=0; }
    # The race happened: some attaches found edu gone, or edu went while attached.
    grep -qE "attached, ([1-9][0-9]* found|0 found the device gone, [1-9])" /tmp/race.out ||
        { say "no removal overlapped the attaches"; ok=0; }
    [ -z "$(dma_devices)" ] || { say "stale: $(dma_devices)"; ok=0; }
    entries=$(dma_api_entries "$bdf")
    [ -z "$entries" ] || { say "DMA-API mappings left for $bdf:"; echo "$entries" | head -n 5 | sed 's/^/# /'; ok=0; }
    region_unmapped_for "$bdf" "after the race" || ok=0
    # The device found again still attaches and reaches the region; its page table maps the
    # region while attached, and no longer after the detach.
    attach_reach28 || return 1
    region_mapped_for "$bdf" "$bus" || ok=0
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" to-carveout --seed 0x7a07 || ok=0
    carveoutctl detach "$bdf" >/dev/null || ok=0
    region_unmapped_for "$bdf" "after the detach" || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

suite_group_owner() {
    run_case detach_after_vfio_took_group_revokes case_detach_after_vfio_took_group_revokes
    unload_quietly
    run_case attach_refused_while_vfio_owns case_attach_refused_while_vfio_owns
    unload_quietly
    run_case vfio_take_while_attached case_vfio_take_while_attached
    unload_quietly
    run_case attach_vs_remove_race case_attach_vs_remove_race
    unload_quietly
}
IOMMU_SUITES="$IOMMU_SUITES group_owner"

FAILSLAB=/sys/kernel/debug/failslab

# An attach failing at each allocation it makes in turn (/proc/thread-self/fail-nth, failslab
# failing sleeping allocations too): every failed attach leaves nothing mapped for edu (the
# DMA-API debug dump) and nothing listed, and one of them failed after the region was mapped
# (the line saying so). Needs fault injection and DMA-API debugging: the debug kernel.
case_attach_failure_leaves_nothing_mapped() {
    if [ ! -e /proc/self/fail-nth ] || [ ! -d "$FAILSLAB" ] || [ ! -r "$DMA_API_DUMP" ]; then
        # shellcheck disable=SC2034 # read by run_case (lib.sh)
        skip_reason="no fault injection (CONFIG_FAULT_INJECTION, FAILSLAB, FAULT_INJECTION_DEBUG_FS) or DMA-API debugging in this kernel (make test-debug has them)"
        return 1
    fi
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    echo 0 >"$FAILSLAB/ignore-gfp-wait"
    echo 0 >"$FAILSLAB/verbose"
    ok=1 nth=0 after_map=0 result=""
    dmesg_mark
    while [ "$nth" -lt 100 ]; do
        nth=$((nth + 1))
        result=$(carveout-test attach-fail-nth --nth "$nth" --reach-bits 28 "$bdf") || { ok=0; break; }
        case $result in
        *" not-injected") break ;;
        attached*)
            # (A fault the attach got past, e.g. an IOVA allocation it retried.) Reloaded after
            # the detach: the region's list of attachments keeps its capacity, and the next
            # attach must allocate it again for the fault after the map to be reached.
            carveoutctl detach "$bdf" >/dev/null || ok=0
            unload_quietly
            iommu_load || return 1
            ;;
        *)
            [ -z "$(dma_devices)" ] || { say "fault $nth ($result): listed $(dma_devices)"; ok=0; }
            ;;
        esac
        entries=$(dma_api_entries "$bdf")
        [ -z "$entries" ] || { say "fault $nth ($result): DMA-API mappings left:"; echo "$entries" | sed 's/^/# /'; ok=0; }
    done
    echo 1 >"$FAILSLAB/ignore-gfp-wait"
    say "$nth attaches, the last one without a fault: $result"
    case $result in attached*" not-injected") ;; *) say "the attach never got through"; ok=0 ;; esac
    after_map=$(dmesg_since_mark | grep -c "attach $bdf: no memory to record the attachment: unmapped again")
    say "failures after the region was mapped: $after_map"
    [ "$after_map" -ge 1 ] || ok=0
    carveoutctl detach "$bdf" >/dev/null 2>&1
    [ -z "$(dma_api_entries "$bdf")" ] || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

suite_attach_faults() {
    run_case attach_failure_leaves_nothing_mapped case_attach_failure_leaves_nothing_mapped
    unload_quietly
}
IOMMU_SUITES="$IOMMU_SUITES attach_faults"
