# shellcheck shell=sh
# Leaks, last in the IOMMU guest (issue 14): after attach, detach, enable=0, rmdir, rmmod and
# the removal of an attached device, kmemleak on the debug kernel finds nothing that carveout
# allocated and did not free, and no device reference it kept (a pci_dev whose last reference
# leaked is unreferenced once the device is removed).

suite_iommu_leaks() {
    run_case iommu_kmemleak_clean case_kmemleak_clean
}
IOMMU_SUITES="$IOMMU_SUITES iommu_leaks"
