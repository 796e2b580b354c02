# shellcheck shell=sh
# `make bench`: carveout-bench in the guest; the host collects the @@bench and @@md lines.

run_bench() {
    runs=${cvt_runs:-5}
    echo "== carveout-bench: a $(hex "$SIZE") reservation at $(hex "$BASE"), $runs runs each"
    say "transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
    carveout-bench all --module "$MOD" --base "$(hex "$BASE")" --size "$(hex "$SIZE")" \
        --runs "$runs" --gib-base "${cvt_gib_base:-0}" || echo "@@bench-failed"
    carveout-bench zerocopy --module "$MOD" --base "$(hex "$BASE")" --pmem /dev/pmem0 \
        --runs "$runs" || echo "@@bench-failed"
    echo "@@bench-done"
    qemu_exit
}

# The IOMMU bench guest (cvt_mode=bench-iommu: q35, intel-iommu, edu): CARVEOUT_ATTACH time of
# regions up to $SIZE, mapped for edu through its IOMMU.
run_bench_iommu() {
    runs=${cvt_runs:-5}
    bdf=$(edu_bdf) || { echo "@@bench-failed"; qemu_exit; }
    echo "== carveout-bench iommu-attach: up to $(hex "$SIZE") at $(hex "$BASE") for $bdf ($(group_type "$bdf")), $runs runs each"
    # edu has no driver: its DMA mask is the PCI default of 32 bits, below which q35's PCI
    # windows leave no 1 GiB of IOVA. QEMU's edu decodes 64 bits here (dma_mask): stated.
    carveout-bench iommu-attach --module "$MOD" --base "$(hex "$BASE")" --size "$(hex "$SIZE")" \
        --device "$bdf" --reach-bits 64 --runs "$runs" || echo "@@bench-failed"
    echo "@@bench-done"
    qemu_exit
}
