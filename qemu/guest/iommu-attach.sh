# shellcheck shell=sh
# Regions attached to a PCI device (CARVEOUT_ATTACH, configfs attach/detach) in the IOMMU guest
# (issue 14): the driver maps the region for edu through the DMA API and reports the bus
# address edu must use, an IOVA under edu's translating (DMA-FQ) domain; edu, driven through
# sysfs with that address, reaches the region (checked through /dev/mem); detach and removal
# of the device take it back. And CARVEOUT_SYNC, the cache maintenance for devices that do not
# snoop. edu_bdf, group_type, iommu_load come from iommu-dma.sh; make_region, drop_region and
# CFS from 30-regions.sh.

# 2 MiB at 64 GiB, beyond the guest's RAM and q35's 64-bit PCI window, and beyond a 32-bit DMA
# mask: a configfs region claimed with allow_unlisted (a memmap= for it would be a range
# `carveoutctl check` finds unheld in the other cases). Nothing reads or writes it: it is
# attached only.
HIGH_BASE=0x1000000000
HIGH_SIZE=0x200000

# make_high_region: configfs region "hi" at HIGH_BASE.
make_high_region() {
    mkdir "$CFS/hi" || return 1
    echo 1 >"$CFS/hi/allow_unlisted" || return 1
    echo "$HIGH_BASE" >"$CFS/hi/base" || return 1
    echo "$HIGH_SIZE" >"$CFS/hi/size" || return 1
    echo 1 >"$CFS/hi/enable"
}

# json_file_num KEY FILE: the number KEY holds in the (compact) JSON in FILE.
json_file_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$2" | head -n 1; }

dma_devices() { cat "/sys/class/carveout/${1:-carveout0}/dma_devices"; }

dmar_faults() { dmesg | grep -c 'DMAR: \[DMA'; }

# attach_edu: attaches edu to carveout0 with carveoutctl, through the ioctl; sets bdf, bus
# (decimal) and translated.
attach_edu() {
    bdf=$(edu_bdf) || return 1
    carveoutctl --json attach "$bdf" >/tmp/attach.json 2>&1 ||
        { say "attach: $(cat /tmp/attach.json)"; return 1; }
    bus=$(json_file_num bus_addr /tmp/attach.json)
    translated=$(sed -n 's/.*"translated":\([a-z]*\).*/\1/p' /tmp/attach.json)
    [ -n "$bus" ] || { say "no bus address in $(cat /tmp/attach.json)"; return 1; }
    say "attached: $(cat /tmp/attach.json)"
}

case_iommu_attach_reports_bus_address() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    type=$(group_type "$bdf")
    case $type in DMA | DMA-FQ) ;; *) say "edu's domain is $type, not DMA/DMA-FQ"; return 1 ;; esac
    carveoutctl attach "$bdf" >/tmp/attach.txt 2>&1 || { cat /tmp/attach.txt; return 1; }
    sed 's/^/# /' /tmp/attach.txt
    carveoutctl --json info >/tmp/info.json || return 1
    bus=$(json_file_num bus_addr /tmp/info.json)
    ioctl_bus=$(json_file_num ioctl_bus_addr /tmp/info.json)
    say "info --json: $(cat /tmp/info.json)"
    ok=1
    if [ -z "$bus" ] || [ "$bus" != "$ioctl_bus" ]; then
        say "sysfs and CARVEOUT_BUS_ADDR disagree"
        ok=0
    fi
    [ "$bus" != "$((BASE))" ] || { say "the bus address is the physical one under $type"; ok=0; }
    grep -q '"translated":true' /tmp/info.json || { say "not reported translated"; ok=0; }
    line=$(dma_devices)
    [ "$line" = "$bdf $(hex "$bus") translated" ] || { say "dma_devices: $line"; ok=0; }
    grep -q "bus address $(hex "$bus") (an IOVA" /tmp/attach.txt || { say "attach printed no IOVA"; ok=0; }
    carveoutctl info >/tmp/info.txt || ok=0
    grep -q "dma     $bdf bus address $(hex "$bus") (IOVA, translated" /tmp/info.txt ||
        { cat /tmp/info.txt; say "info lists no attached edu"; ok=0; }
    dmesg | grep -q "attached $bdf: bus address $(hex "$bus") (translated" ||
        { say "no dmesg line for the attach"; ok=0; }
    # carveoutctl check looks at attached devices without being told (--pci).
    carveoutctl check >/tmp/check.out 2>&1 || { cat /tmp/check.out; ok=0; }
    grep -q "^ok: $bdf: /dev/carveout0 is attached to it: the device must use bus address $(hex "$bus") (an IOVA" \
        /tmp/check.out || { cat /tmp/check.out; say "check does not report the attachment"; ok=0; }
    carveoutctl detach "$bdf" >/dev/null || ok=0
    [ -z "$(dma_devices)" ] || { say "still listed after detach: $(dma_devices)"; ok=0; }

    # Through configfs, a region edu cannot reach physically (64 GiB, 32-bit mask): its IOMMU
    # maps it below 4 GiB.
    make_high_region || return 1
    echo "$bdf" >"$CFS/hi/attach" || { drop_region hi; return 1; }
    shown=$(cat "$CFS/hi/attach")
    sysfs=$(dma_devices carveout-hi)
    say "configfs attach shows: $shown; sysfs: $sysfs"
    hbus=${shown#* }
    [ "$shown" = "$bdf $hbus" ] || ok=0
    [ "$sysfs" = "$bdf $hbus translated" ] || ok=0
    if [ $((hbus)) -ge $((0x100000000)) ] || [ $((hbus)) = $((HIGH_BASE)) ]; then
        say "$hbus is not an IOVA below 4 GiB"
        ok=0
    fi
    carveoutctl --json info hi >/tmp/info.json || ok=0
    [ "$(json_file_num bus_addr /tmp/info.json)" = "$((hbus))" ] || { say "info hi: $(cat /tmp/info.json)"; ok=0; }
    echo "$bdf" >"$CFS/hi/detach" || ok=0
    [ -z "$(cat "$CFS/hi/attach")" ] || ok=0
    drop_region hi
    [ "$ok" = 1 ] && dmesg_clean
}

# case_iommu_dma DIRECTION SEED: edu through the reported bus address.
case_iommu_dma() {
    iommu_load || return 1
    attach_edu || return 1
    faults=$(dmar_faults)
    ok=1
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" "$1" --seed "$2" || ok=0
    [ "$(dmar_faults)" = "$faults" ] || { say "DMAR faults during the transfers"; ok=0; }
    carveoutctl detach "$bdf" >/dev/null || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

case_iommu_detach_revokes() {
    iommu_load || return 1
    attach_edu || return 1
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" to-carveout --seed 0xde7a || return 1
    carveoutctl detach "$bdf" || return 1
    [ -z "$(dma_devices)" ] || { say "still listed: $(dma_devices)"; return 1; }
    # DMA-FQ unmaps lazily: the IOTLB is flushed from a queue within 10 ms (a strict DMA domain
    # at once). Wait past that; then the same address must fault.
    sleep 1
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" blocked --seed 0xde7b || return 1
    fault=$(dmesg | grep -E "DMAR: \[DMA Write NO_PASID\] Request device \[$bdf\] fault addr $(hex "$bus") " | head -n 1)
    [ -n "$fault" ] || { say "no DMAR write fault at $(hex "$bus")"; dmesg | grep DMAR | tail -n 5; return 1; }
    say "the kernel logged: ${fault#*] }"
    # rmmod while attached unmaps too: attached again, unloaded, loaded again (no attachment),
    # nothing the device writes to the old address arrives. (The fault may not be logged again
    # so soon: QEMU collapses a device's faults while one is pending, the kernel rate-limits.)
    attach_edu || return 1
    rmmod carveout || { say "rmmod while attached failed"; return 1; }
    iommu_load || return 1
    [ -z "$(dma_devices)" ] || { say "attached after a reload: $(dma_devices)"; return 1; }
    sleep 1
    faults=$(dmar_faults)
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" blocked --seed 0xde7c || return 1
    say "DMAR fault lines logged since the reload: $(($(dmar_faults) - faults))"
    dmesg_clean
}

case_iommu_device_removed_while_attached() {
    iommu_load || return 1
    attach_edu || return 1
    echo 1 >"/sys/bus/pci/devices/$bdf/remove" || return 1
    [ ! -e "/sys/bus/pci/devices/$bdf" ] || { say "$bdf is still there"; return 1; }
    ok=1
    dmesg | grep -q "$bdf is being removed: the carve-out is no longer mapped for it" ||
        { say "no dmesg line for the removal"; ok=0; }
    [ "$(dma_devices)" = "$bdf - removed" ] || { say "dma_devices: $(dma_devices)"; ok=0; }
    carveoutctl --json info >/tmp/info.json || ok=0
    if ! grep -q '"removed":true' /tmp/info.json || ! grep -q '"ioctl_error":"ENODEV"' /tmp/info.json; then
        say "info: $(cat /tmp/info.json)"
        ok=0
    fi
    carveoutctl detach "$bdf" || ok=0
    [ -z "$(dma_devices)" ] || ok=0
    rmmod carveout || ok=0
    echo 1 >/sys/bus/pci/rescan
    bdf=$(edu_bdf) || return 1
    say "after the rescan: $bdf, IOMMU group type $(group_type "$bdf")"
    # The device is back, and can be attached again.
    iommu_load || return 1
    attach_edu || return 1
    carveoutctl detach "$bdf" >/dev/null || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

# attach_configfs_region NAME: loads the module without a param region and makes configfs
# region NAME of the same range, write-back, attached to edu through configfs; sets bdf and
# bus.
attach_configfs_region() {
    bdf=$(edu_bdf) || return 1
    insmod "$MOD" || return 1
    make_region "$1" "$(hex "$BASE")" "$(hex "$SIZE")" || return 1
    echo wb >"$CFS/$1/attr" || return 1
    echo "$bdf" >"$CFS/$1/attach" || return 1
    shown=$(cat "$CFS/$1/attach")
    bus=${shown#"$bdf "}
    say "configfs region $1 attached: $shown"
    [ "$shown" = "$bdf $bus" ] && [ -n "$bus" ]
}

# released_while_attached NAME: the region went while attached to edu; it said so, and once
# made again (not attached) edu's DMA through the old bus address is stopped: nothing arrives.
released_while_attached() {
    ok=1
    dmesg_since_mark | grep -q ": released while attached to $bdf: no longer mapped for it\$" ||
        { say "no dmesg line for the release: $(dmesg_since_mark)"; ok=0; }
    [ -d "$CFS/$1" ] || make_region "$1" "$(hex "$BASE")" "$(hex "$SIZE")" || return 1
    [ "$(cat "$CFS/$1/enable")" = 1 ] || echo 1 >"$CFS/$1/enable" || return 1
    [ -z "$(cat "$CFS/$1/attach")" ] || { say "attached again: $(cat "$CFS/$1/attach")"; ok=0; }
    # DMA-FQ unmaps lazily (within 10 ms), as in iommu_detach_revokes.
    sleep 1
    edu-dma --dev "/dev/carveout/$1" --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" blocked \
        --seed 0xb10c || ok=0
    drop_region "$1"
    [ "$ok" = 1 ]
}

# enable = 0 while attached: the region is released, its mapping for edu with it.
case_iommu_disable_while_attached() {
    attach_configfs_region io || { drop_region io; return 1; }
    edu-dma --dev /dev/carveout/io --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" to-carveout \
        --seed 0xd15a || { drop_region io; return 1; }
    dmesg_mark
    echo 0 >"$CFS/io/enable" || { say "enable=0 while attached failed"; drop_region io; return 1; }
    released_while_attached io && dmesg_clean
}

# rmdir while attached (enabled, nothing open): the same. Then edu is removed and found again:
# the device reference went with the region (kmemleak, last in this guest, would report a
# pci_dev whose reference leaked).
case_iommu_rmdir_while_attached() {
    attach_configfs_region io || { drop_region io; return 1; }
    edu-dma --dev /dev/carveout/io --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" \
        from-carveout --seed 0x4d1a || { drop_region io; return 1; }
    dmesg_mark
    rmdir "$CFS/io" || { say "rmdir while attached failed"; drop_region io; return 1; }
    ok=1
    released_while_attached io || ok=0
    echo 1 >"/sys/bus/pci/devices/$bdf/remove" || ok=0
    echo 1 >/sys/bus/pci/rescan
    bdf=$(edu_bdf) || return 1
    [ "$ok" = 1 ] && dmesg_clean
}

case_attach_bad_input_refused() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    ok=1
    refused ENODEV "attach 0000:00:1e.7: no such PCI device (0x[0-9a-f]*-0x[0-9a-f]*)\$" \
        carveoutctl attach 0000:00:1e.7 || ok=0
    refused EINVAL "not a PCI device name" carveoutctl attach 00:01.0 || ok=0
    refused EINVAL "not a PCI device name" carveoutctl attach "$bdf/x" || ok=0
    refused ENOENT "detach $bdf: not attached" carveoutctl detach "$bdf" || ok=0
    [ -z "$(dma_devices)" ] || { say "attached: $(dma_devices)"; ok=0; }
    attach_edu || return 1
    refused EEXIST "attach $bdf: already attached" carveoutctl attach "$bdf" || ok=0
    [ "$(dma_devices | wc -l)" = 1 ] || { say "dma_devices: $(dma_devices)"; ok=0; }
    carveoutctl detach "$bdf" >/dev/null || ok=0
    # configfs checks the name the same way.
    make_high_region || return 1
    refused "Invalid argument" "configfs: attach: not a PCI device name" sh -c "echo edu >$CFS/hi/attach" || ok=0
    # Out of reach: with an identity domain edu's DMA is untranslated, and its 32-bit mask
    # does not reach 64 GiB. Never bounced: refused.
    grp=/sys/bus/pci/devices/$bdf/iommu_group
    before=$(group_type "$bdf")
    echo identity >"$grp/type" || { drop_region hi; return 1; }
    refused ERANGE "attach $bdf: no IOMMU translates for it and its DMA mask does not reach the region" \
        carveoutctl attach "$bdf" hi || ok=0
    refused "Numerical result out of range|Result not representable" "DMA mask 0xffffffff" \
        sh -c "echo $bdf >$CFS/hi/attach" || ok=0
    [ -z "$(dma_devices carveout-hi)" ] || { say "attached: $(dma_devices carveout-hi)"; ok=0; }
    # The param region, below 4 GiB, is within reach: the physical address, direct.
    attach_edu || ok=0
    if [ "$bus" != "$((BASE))" ] || [ "$translated" != false ]; then
        say "identity domain: bus $bus, translated $translated"
        ok=0
    fi
    carveoutctl detach "$bdf" >/dev/null || ok=0
    echo "$before" >"$grp/type"
    drop_region hi
    [ "$ok" = 1 ] && dmesg_clean
}

# A stated reach (carveoutctl attach --reach-bits, configfs DEVICE@BITS): edu has no driver,
# so its DMA mask is the PCI default of 32 bits (sysfs dma_mask_bits). Stated 28 bits, its
# IOMMU maps the region below 2^28 and edu reaches it there; the mask is put back after.
# Stated 64 bits under an identity domain, edu reaches the region at 64 GiB directly, which
# its own mask does not (attach_bad_input_refused). Refused: a reach outside 12 to 64 bits,
# one the region does not fit below, a reach for a device with a driver (vfio-pci).
case_attach_reach_bits() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    mask_bits=/sys/bus/pci/devices/$bdf/dma_mask_bits
    before=$(cat "$mask_bits")
    ok=1
    carveoutctl --json attach --reach-bits 28 "$bdf" >/tmp/attach.json 2>&1 ||
        { cat /tmp/attach.json; return 1; }
    bus=$(json_file_num bus_addr /tmp/attach.json)
    say "reach 28 bits: $(cat /tmp/attach.json); dma_mask_bits $before, now $(cat "$mask_bits")"
    [ $((bus + SIZE)) -le $((1 << 28)) ] || { say "$(hex "$bus") + $(hex "$SIZE") is beyond 2^28"; ok=0; }
    [ "$(cat "$mask_bits")" = "$before" ] || { say "edu's DMA mask was not put back"; ok=0; }
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" to-carveout --seed 0x28b1 || ok=0
    carveoutctl detach "$bdf" >/dev/null || ok=0

    refused ENOMEM "attach $bdf: the DMA API refused to map the region" \
        carveoutctl attach --reach-bits 12 "$bdf" || ok=0
    [ "$(cat "$mask_bits")" = "$before" ] || { say "the mask changed after a refusal"; ok=0; }
    make_high_region || return 1
    refused "Invalid argument" "a reach of 65 address bits: give 12 to 64" \
        sh -c "echo $bdf@65 >$CFS/hi/attach" || ok=0
    refused "Invalid argument" "the reach after @ is a number of address bits" \
        sh -c "echo $bdf@x >$CFS/hi/attach" || ok=0
    grp=/sys/bus/pci/devices/$bdf/iommu_group
    type=$(group_type "$bdf")
    echo identity >"$grp/type" || { drop_region hi; return 1; }
    echo "$bdf@64" >"$CFS/hi/attach" || ok=0
    shown=$(dma_devices carveout-hi)
    say "identity domain, reach 64 bits, region at $(hex "$HIGH_BASE"): $shown"
    [ "$shown" = "$bdf $(hex "$HIGH_BASE") direct" ] || ok=0
    echo "$bdf" >"$CFS/hi/detach" || ok=0
    echo "$type" >"$grp/type" || ok=0
    drop_region hi

    bind_vfio "$bdf" || return 1
    refused EBUSY "attach $bdf: a driver is bound to it and its DMA mask rules" \
        carveoutctl attach --reach-bits 32 "$bdf" || ok=0
    unbind_vfio "$bdf"
    [ -z "$(dma_devices)" ] || { say "attached: $(dma_devices)"; ok=0; }
    [ "$ok" = 1 ] && dmesg_clean
}

# The attach= parameter: the param region is mapped for the devices it names at load
# (DEVICE@BITS states a reach as configfs does); a name that is not one, or a device not
# there, fails the load with a line saying why, and nothing is claimed.
case_attach_param_at_load() {
    bdf=$(edu_bdf) || return 1
    ok=1
    insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" "attach=$bdf@28" || return 1
    line=$(dma_devices)
    say "loaded with attach=$bdf@28: $line"
    bus=$(echo "$line" | cut -d' ' -f2)
    case $line in "$bdf 0x"*" translated") ;; *) ok=0 ;; esac
    [ $((bus + SIZE)) -le $((1 << 28)) ] || { say "$bus + $(hex "$SIZE") is beyond 2^28"; ok=0; }
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$bus" to-carveout --seed 0xa77a || ok=0
    rmmod carveout || ok=0
    # Each refusal and the line that must say why, word for word.
    for spec in "$bdf@7" "edu" "0000:00:1e.7"; do
        case $spec in
        *@7) want="carveout: attach: a reach of 7 address bits: give 12 to 64 (0: the device's DMA mask)" ;;
        edu) want='carveout: attach=: not a PCI device name (DDDD:BB:DD.F[@BITS]): "edu"' ;;
        *) want="carveout: carveout0: attach $spec: no such PCI device ($(hex "$BASE")-$(hex "$LAST"))" ;;
        esac
        dmesg_mark
        if insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" "attach=$spec" 2>/dev/null; then
            say "attach=$spec loaded"
            rmmod carveout
            ok=0
            continue
        fi
        dmesg_since_mark | sed 's/^\[[^]]*\] //' >/tmp/attach.dmesg
        sed "s/^/# attach=$spec: dmesg: /" /tmp/attach.dmesg
        grep -qxF "$want" /tmp/attach.dmesg || { say "no line says: $want"; ok=0; }
        ! iomem_has_name carveout || { say "claimed after a refused load"; ok=0; }
    done
    [ "$ok" = 1 ] && dmesg_clean
}

# The group's default domain changed under a live attachment (no driver is bound, so sysfs lets
# root do it): the mapping went with the old domain, and detach must not unmap through the new
# one (the DMA API would WARN and free an IOVA it never handed out).
# Skipped with the DMA-API debugging (the debug kernel): it keeps its entry for a mapping that
# went with a replaced domain (its unmap hook, debug_dma_unmap_phys, is not exported), reports
# it when a driver later unbinds from edu, and its dump would name a removed edu.
case_iommu_domain_changed_while_attached() {
    if [ -e /sys/kernel/debug/dma-api ]; then
        # shellcheck disable=SC2034 # read by run_case (lib.sh)
        skip_reason="the DMA-API debugging would keep an entry for the mapping the replaced domain took (make test runs it)"
        return 1
    fi
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    grp=/sys/bus/pci/devices/$bdf/iommu_group
    before=$(group_type "$bdf")
    ok=1
    # Translated, then identity.
    attach_edu || return 1
    echo identity >"$grp/type" || ok=0
    carveoutctl detach "$bdf" >/dev/null || ok=0
    # Direct (identity), then translated.
    attach_edu || ok=0
    [ "$translated" = false ] || { say "attached under identity, translated: $translated"; ok=0; }
    echo "$before" >"$grp/type" || ok=0
    carveoutctl detach "$bdf" >/dev/null || ok=0
    n=$(dmesg | grep -c "$bdf: its IOMMU domain changed while the carve-out was mapped for it")
    [ "$n" = 2 ] || { say "$n dmesg lines about the domain change, expected 2"; ok=0; }
    [ "$(group_type "$bdf")" = "$before" ] || { echo "$before" >"$grp/type"; ok=0; }
    # A fresh attach works through the new domain.
    attach_edu || return 1
    edu-dma --dma-mask "$EDU_MASK" --bus-addr "$(hex "$bus")" to-carveout --seed 0xd0c0 || ok=0
    carveoutctl detach "$bdf" >/dev/null || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

suite_attach() {
    run_case iommu_attach_reports_bus_address case_iommu_attach_reports_bus_address
    unload_quietly
    run_case iommu_dma_to_carveout case_iommu_dma to-carveout 0xa7a0
    unload_quietly
    run_case iommu_dma_from_carveout case_iommu_dma from-carveout 0xa7a1
    unload_quietly
    run_case iommu_detach_revokes case_iommu_detach_revokes
    unload_quietly
    run_case attach_bad_input_refused case_attach_bad_input_refused
    unload_quietly
    run_case attach_reach_bits case_attach_reach_bits
    unload_quietly
    run_case attach_param_at_load case_attach_param_at_load
    unload_quietly
    run_case iommu_domain_changed_while_attached case_iommu_domain_changed_while_attached
    unload_quietly
    run_case iommu_device_removed_while_attached case_iommu_device_removed_while_attached
    unload_quietly
    run_case iommu_disable_while_attached case_iommu_disable_while_attached
    unload_quietly
    run_case iommu_rmdir_while_attached case_iommu_rmdir_while_attached
    unload_quietly
}
IOMMU_SUITES="$IOMMU_SUITES attach"

# CARVEOUT_SYNC. TCG does not model caches: a write-back or an invalidate changes nothing QEMU
# can show. What the driver asks of the kernel can be seen, through kprobe events: each piece
# of the range mapped (memremap: physical address, length, MEMREMAP_WB 1 or MEMREMAP_WT 2) and
# its lines flushed (clflush_cache_range on that mapping, the same length), in pieces of at most
# 2 MiB; nothing for UC and WC, which the CPU does not cache (a memory barrier, not seen). And
# the errnos the header documents, contents unchanged (through /dev/mem), a clean dmesg.

SYNC_PIECE=2097152

sync_probes() {
    kprobe_define cvt_memremap "p:cvt_memremap memremap phys=%di:u64 len=%si:u64 flags=%dx:u64 comm=\$comm" &&
        kprobe_define cvt_memremap_ret "r:cvt_memremap_ret memremap addr=\$retval:x64 comm=\$comm" &&
        kprobe_define cvt_flush "p:cvt_flush clflush_cache_range addr=%di:x64 len=%si:u32 comm=\$comm"
}

# sync_flushes TRACE: the flushes carveoutctl and carveout-test made, one "PHYS LEN FLAGS
# FLUSHED" line each: the memremap of the address flushed, and the length flushed.
sync_flushes() {
    awk '{
            f["phys"] = f["len"] = f["flags"] = f["addr"] = f["comm"] = ""
            for (i = 1; i <= NF; i++)
                if (split($i, kv, "=") == 2) { gsub(/"/, "", kv[2]); f[kv[1]] = kv[2] }
        }
        f["comm"] != "carveoutctl" && f["comm"] != "carveout-test" { next }
        / cvt_memremap: / { pending = f["phys"] " " f["len"] " " f["flags"] }
        / cvt_memremap_ret: / { mapped[f["addr"]] = pending }
        / cvt_flush: / { print ((f["addr"] in mapped) ? mapped[f["addr"]] : "unmapped:" f["addr"]) " " f["len"] }' "$1"
}

# sync_pieces OFFSET LEN FLAGS: the lines sync_flushes must give for a sync of OFFSET+LEN of a
# region whose pieces memremap maps with FLAGS (none for 0).
sync_pieces() {
    [ "$3" = 0 ] && return 0
    o=$(($1))
    e=$((o + $2))
    while [ "$o" -lt "$e" ]; do
        n=$((e - o))
        [ "$n" -le "$SYNC_PIECE" ] || n=$SYNC_PIECE
        echo "$((BASE + o)) $n $3 $n"
        o=$((o + n))
    done
}

# sync_traced OFFSET LEN FLAGS CMD...: runs CMD (its output in /tmp/sync.cmd) with the probes
# on; fails unless it flushed exactly sync_pieces OFFSET LEN FLAGS (LEN 0: nothing) and CMD
# succeeded.
sync_traced() {
    t_off=$1 t_len=$2 t_flags=$3
    shift 3
    trace_start cvt_memremap cvt_memremap_ret cvt_flush || return 1
    "$@" >/tmp/sync.cmd 2>&1
    t_rc=$?
    trace_stop /tmp/sync.trace || return 1
    sync_flushes /tmp/sync.trace >/tmp/sync.got
    if [ "$t_len" = 0 ]; then : >/tmp/sync.want; else sync_pieces "$t_off" "$t_len" "$t_flags" >/tmp/sync.want; fi
    if ! cmp -s /tmp/sync.got /tmp/sync.want; then
        say "$*: flushed (phys len flags flushed) [$(tr '\n' ';' </tmp/sync.got)], expected [$(tr '\n' ';' </tmp/sync.want)]"
        return 1
    fi
    [ ! -s /tmp/sync.got ] || say "$*: flushed, as expected: $(tr '\n' ';' </tmp/sync.got)"
    return "$t_rc"
}

# sync_expect WANT OFFSET LEN DIRECTION [PAD0]: CARVEOUT_SYNC answers WANT (ok or an errno
# name); accepted, it flushed the range at SYNC_FLAGS (the memremap flags of the region's
# attribute), refused, nothing.
sync_expect() {
    if [ "$1" = ok ]; then f_len=$3; else f_len=0; fi
    s_ok=0
    sync_traced "$2" "$f_len" "$SYNC_FLAGS" \
        carveout-test sync-raw --offset "$2" --len "$3" --direction "$4" --pad0 "${5:-0}" || s_ok=1
    got=$(cat /tmp/sync.cmd)
    [ "$got" = "$1" ] || { say "sync offset $2 len $3 direction $4 pad0 ${5:-0}: $got, expected $1"; s_ok=1; }
    return "$s_ok"
}

case_sync_ioctl_bounds() {
    iommu_load || return 1
    sync_probes || return 1
    SYNC_FLAGS=1
    carveout-test fill --seed 0x5ec0 >/dev/null || return 1
    ok=1
    : >/tmp/sync.out
    for dir in device cpu; do
        sync_traced 0 "$SIZE" 1 carveoutctl sync --for "$dir" || ok=0
        cat /tmp/sync.cmd >>/tmp/sync.out
        sync_traced 4096 8192 1 carveoutctl --json sync --for "$dir" --offset 4K --len 8K || ok=0
        cat /tmp/sync.cmd >>/tmp/sync.out
        sync_traced $((SIZE - 4096)) 4096 1 carveoutctl sync --for "$dir" --offset $((SIZE - 4096)) --len 4K || ok=0
        cat /tmp/sync.cmd >>/tmp/sync.out
    done
    sed 's/^/# /' /tmp/sync.out
    grep -q '"offset":4096,"len":8192,"for":"cpu"' /tmp/sync.out || ok=0
    for d in 1 2; do
        sync_expect ok 0 "$SIZE" "$d" || ok=0
        sync_expect ok $((SIZE / 2)) 0x200000 "$d" || ok=0
        sync_expect ok $((SIZE / 2 + 4096)) 0x200000 "$d" || ok=0
        sync_expect EINVAL 1 4096 "$d" || ok=0
        sync_expect EINVAL 0 100 "$d" || ok=0
        sync_expect EINVAL 4096 0 "$d" || ok=0
        sync_expect ENXIO "$SIZE" 4096 "$d" || ok=0
        sync_expect ENXIO $((SIZE - 4096)) 8192 "$d" || ok=0
        sync_expect ENXIO 0 $((SIZE + 4096)) "$d" || ok=0
        sync_expect EINVAL 0xfffffffffffff000 0x2000 "$d" || ok=0
        sync_expect EINVAL 0x1000 0xfffffffffffff000 "$d" || ok=0
    done
    if sync_traced 0 0 0 carveoutctl sync --for cpu --offset 3 --len 4K; then ok=0; fi
    grep -q EINVAL /tmp/sync.cmd || { cat /tmp/sync.cmd; ok=0; }
    carveout-test verify --devmem --seed 0x5ec0 || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

case_sync_bad_direction_refused() {
    iommu_load || return 1
    sync_probes || return 1
    SYNC_FLAGS=1
    carveout-test fill --seed 0x5ec1 >/dev/null || return 1
    ok=1
    for d in 0 3 4 0x80000001 0xffffffff; do
        sync_expect EINVAL 0 4096 "$d" || ok=0
    done
    sync_expect EINVAL 0 4096 1 1 || ok=0
    sync_expect EINVAL 0 4096 2 0x80000000 || ok=0
    # The control: the same request with a good direction flushes.
    sync_expect ok 0 4096 1 || ok=0
    carveout-test verify --devmem --seed 0x5ec1 || ok=0
    [ "$ok" = 1 ] && dmesg_clean
}

case_sync_while_mapped() {
    iommu_load || return 1
    sync_probes || return 1
    ok=1
    for attr in wb wt wc uc; do
        case $attr in wb) flags=1 ;; wt) flags=2 ;; *) flags=0 ;; esac
        carveout-test attr-set "$attr" >/dev/null || return 1
        carveout-test fill --seed 0x5ec2 >/dev/null || return 1
        hold_mapping || return 1
        maps=$(cat /sys/class/carveout/carveout0/map_count)
        sync_traced 0 "$SIZE" "$flags" carveoutctl sync --for device || ok=0
        cat /tmp/sync.cmd >/tmp/sync.out
        sync_traced $((2 << 20)) $((2 << 20)) "$flags" carveoutctl sync --for cpu --offset 2M --len 2M || ok=0
        cat /tmp/sync.cmd >>/tmp/sync.out
        say "$attr, $maps mapping(s): $(tr '\n' ' ' </tmp/sync.out)"
        [ "$maps" -ge 1 ] || { say "not mapped"; ok=0; }
        release_mapping
        carveout-test verify --devmem --seed 0x5ec2 || ok=0
    done
    carveout-test attr-set wb >/dev/null
    [ "$ok" = 1 ] && dmesg_clean
}

suite_sync() {
    run_case sync_ioctl_bounds case_sync_ioctl_bounds
    unload_quietly
    run_case sync_bad_direction_refused case_sync_bad_direction_refused
    unload_quietly
    run_case sync_while_mapped case_sync_while_mapped
    unload_quietly
}
IOMMU_SUITES="$IOMMU_SUITES sync"
