# shellcheck shell=sh
# A device that DMAs (issue #5): QEMU's edu device writes into the region and reads from it,
# driven from userspace through sysfs (edu-dma). edu-dma fills the region with a pattern,
# makes the transfers, and checks every word of the region through /dev/mem (outside the
# driver) and through the mapping: the changed bytes hold what the device moved, all others
# still hold the pattern.

suite_dma() {
    load || say "load failed"
    run_case edu_dma_to_carveout edu-dma to-carveout --seed 0xed0a
    run_case edu_dma_from_carveout edu-dma from-carveout --seed 0xed0b
}
SUITES="$SUITES dma"
