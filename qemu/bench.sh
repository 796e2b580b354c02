#!/usr/bin/env bash
# `make bench`: boots the test kernel in QEMU with a 1 GiB reservation and runs carveout-bench
# in the guest; writes bench/results.json (one object per measurement and ratio: name, unit,
# median, min, max, runs) and bench/results.md (the same as a Markdown table).
# Environment: CARVEOUT_BENCH_RUNS (default 5), CARVEOUT_TIMEOUT (seconds, default 3600),
# CARVEOUT_KVM=1 to opt in to KVM.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/../scripts/common.sh"

runs=${CARVEOUT_BENCH_RUNS:-5}
timeout_s=${CARVEOUT_TIMEOUT:-3600}

# 1 GiB reserved at 1 GiB, 2 MiB (and 1 GiB) aligned. With -m 3G QEMU's pc machine keeps all
# RAM below 4 GiB (it moves RAM above 4 GiB only from 3.5 GiB on), so 1–2 GiB is usable RAM;
# 2 GiB stay for the kernel and the anonymous 1 GiB the bench compares against.
base=0x40000000
size=0x40000000
# And 2 GiB at 4 GiB, 1 GiB aligned, for map_setup_2m_over_1g (issue 22): -m 5G, of which the
# pc machine keeps 3 GiB below 4 GiB (as with 3G) and puts 2 GiB at 4 GiB, all of it reserved.
gib_base=0x100000000
# A 16 MiB pmem block device at 2.25 GiB (memmap=!), for the zero-copy writes.
pmem_base=0x90000000

kdir=$("$CARVEOUT_ROOT/scripts/build-kernel.sh")
out="$CARVEOUT_ROOT/build/bench"
initramfs=$("$CARVEOUT_ROOT/scripts/build-guest.sh" "$kdir" "$out")

append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic
    "memmap=1G\$$base" "memmap=2G\$$gib_base" "memmap=16M!$pmem_base" "cvt_gib_base=$gib_base"
    "cvt_mode=bench" "cvt_base=$base" "cvt_size=$size" "cvt_runs=$runs"
)
console="$out/console.log"
log "booting the guest ($([[ ${CARVEOUT_KVM:-0} == 1 ]] && echo KVM || echo TCG), 5 GiB): ${append[*]}"
log "console: $console"
status=0
qemu_guest 5G "$kdir/arch/x86/boot/bzImage" "$initramfs" "${append[*]}"
# QEMU backs guest RAM with host memory on the guest's first write to each page: without
# -mem-prealloc the first mapping of the region after boot (first_map_since_boot_over_steady)
# and the first anonymous runs paid for the host's allocation (seconds per GiB on a loaded
# host), not for anything in the guest. Preallocated, every run measures the guest.
qemu+=(-mem-prealloc)
timeout --foreground "$timeout_s" "${qemu[@]}" -serial "file:$console" || status=$?
tr -d '\r' <"$console" >"$console.txt"
grep -E '^(# |== )' "$console.txt" >&2 || true
[[ $status == 1 ]] || die "the guest did not finish cleanly (status $status); see $console"
grep -q '^@@bench-done' "$console.txt" || die "the guest never finished the bench; see $console"
! grep -q '^@@bench-failed' "$console.txt" || die "carveout-bench failed in the guest; see $console"

# The IOMMU bench (issue 14): q35 with QEMU's intel-iommu in front of edu, 1 GiB reserved at
# 64 GiB (beyond the guest's RAM and q35's 64-bit PCI window: attaching maps it, nothing
# touches it), CARVEOUT_ATTACH of regions up to 1 GiB for edu.
iommu_base=0x1000000000
iommu_size=0x40000000
iommu_append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic "memmap=1G\$$iommu_base" intel_iommu=on
    cvt_mode=bench-iommu "cvt_base=$iommu_base" "cvt_size=$iommu_size" "cvt_runs=$runs"
)
iommu_console="$out/iommu-console.log"
log "booting the IOMMU bench guest (q35, intel-iommu; 512 MiB): ${iommu_append[*]}"
status=0
qemu_guest 512M "$kdir/arch/x86/boot/bzImage" "$initramfs" "${iommu_append[*]}" q35
edu_dev=edu,dma_mask=0xffffffffffffffff
qemu+=(-device intel-iommu -device "$edu_dev")
timeout --foreground "$timeout_s" "${qemu[@]}" -serial "file:$iommu_console" || status=$?
tr -d '\r' <"$iommu_console" >"$iommu_console.txt"
grep -E '^(# |== )' "$iommu_console.txt" >&2 || true
[[ $status == 1 ]] || die "the IOMMU bench guest did not finish cleanly (status $status); see $iommu_console"
grep -q '^@@bench-done' "$iommu_console.txt" ||
    die "the IOMMU bench guest never finished; see $iommu_console"
! grep -q '^@@bench-failed' "$iommu_console.txt" ||
    die "carveout-bench iommu-attach failed in the guest; see $iommu_console"

dir="$CARVEOUT_ROOT/bench"
mkdir -p "$dir"
{
    echo "["
    sed -n 's/^@@bench //p' "$console.txt" "$iommu_console.txt" | sed '$!s/$/,/; s/^/  /'
    echo "]"
} >"$dir/results.json"
{
    # Each carveout-bench command prints a table: one header.
    sed -n 's/^@@md //p' "$console.txt" | awk 'NR <= 2 || !/^\| (measurement|---) \|/'
    sed -n 's/^@@md //p' "$iommu_console.txt" | tail -n +3
} >"$dir/results.md"
log "wrote $dir/results.json and $dir/results.md"
cat "$dir/results.md"
