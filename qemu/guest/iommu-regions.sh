# shellcheck shell=sh
# Regions of other cache attributes attached to a device in the IOMMU guest (issue 21): an
# uncached region (the param region, attached through CARVEOUT_ATTACH) and a write-combining
# one (a configfs region, attached through configfs) are mapped for edu under its translating
# domain, and edu's transfers through the reported bus address land in the region and read
# from it (checked through /dev/mem and the mapping); the attribute is the region's still.
# edu_bdf, EDU_MASK and iommu_load come from iommu-dma.sh; make_region, drop_region and CFS
# from 30-regions.sh.

# regions_dma NODE BUS SEED: edu's transfers both ways through bus address BUS.
regions_dma() {
    edu-dma --dev "$1" --dma-mask "$EDU_MASK" --bus-addr "$2" to-carveout --seed "$3" &&
        edu-dma --dev "$1" --dma-mask "$EDU_MASK" --bus-addr "$2" from-carveout --seed $(($3 + 1))
}

case_attach_uc_wc_regions() {
    iommu_load || return 1
    bdf=$(edu_bdf) || return 1
    ok=1
    # uc, the param region, through the ioctl.
    carveout-test attr-set uc >/dev/null || return 1
    carveoutctl --json attach "$bdf" >/tmp/regions.json 2>&1 ||
        { say "attach of the uc region: $(cat /tmp/regions.json)"; return 1; }
    bus=$(sed -n 's/.*"bus_addr":\([0-9]*\).*/\1/p' /tmp/regions.json)
    say "uc region attached: $(cat /tmp/regions.json)"
    [ -n "$bus" ] || { say "no bus address"; return 1; }
    [ "$bus" != "$((BASE))" ] || { say "the bus address is the physical one: not translated"; ok=0; }
    regions_dma "$DEV" "$(hex "$bus")" 0x0c00 || { say "DMA with the uc region failed"; ok=0; }
    [ "$(cat /sys/class/carveout/carveout0/attr)" = uc ] || { say "attr is no longer uc"; ok=0; }
    carveoutctl detach "$bdf" >/dev/null || ok=0
    carveout-test attr-set wb >/dev/null || ok=0
    rmmod carveout || return 1

    # wc, a configfs region, through configfs.
    insmod "$MOD" || return 1
    make_region wc "$(hex "$BASE")" "$(hex "$SIZE")" || { drop_region wc; return 1; }
    echo wc >"$CFS/wc/attr" || { drop_region wc; return 1; }
    if ! echo "$bdf" >"$CFS/wc/attach"; then
        say "configfs attach of the wc region refused"
        drop_region wc
        return 1
    fi
    shown=$(cat "$CFS/wc/attach")
    bus=${shown#"$bdf "}
    say "wc region attached: $shown; sysfs: $(cat /sys/class/carveout/carveout-wc/dma_devices)"
    if [ "$shown" != "$bdf $bus" ] || [ $((bus)) = $((BASE)) ]; then
        say "not a translated bus address"
        ok=0
    fi
    regions_dma /dev/carveout/wc "$bus" 0x0c10 || { say "DMA with the wc region failed"; ok=0; }
    [ "$(cat "$CFS/wc/attr")" = wc ] || { say "attr is no longer wc"; ok=0; }
    echo "$bdf" >"$CFS/wc/detach" || ok=0
    drop_region wc
    [ "$ok" = 1 ] && dmesg_clean
}

suite_attach_attrs() {
    run_case attach_uc_wc_regions case_attach_uc_wc_regions
    unload_quietly
}
IOMMU_SUITES="$IOMMU_SUITES attach_attrs"
