# shellcheck shell=sh
# `make bench`: carveout-bench in the guest; the host collects the @@bench and @@md lines.

run_bench() {
    runs=${cvt_runs:-5}
    echo "== carveout-bench: a $(hex "$SIZE") reservation at $(hex "$BASE"), $runs runs each"
    say "transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
    carveout-bench all --module "$MOD" --base "$(hex "$BASE")" --size "$(hex "$SIZE")" \
        --runs "$runs" || echo "@@bench-failed"
    bench_pages_mode_load "$runs" || echo "@@bench-failed"
    echo "@@bench-done"
    qemu_exit
}

# The kernel's clock (seconds, to the microsecond) at the last dmesg line matching PATTERN among
# the lines since the mark (the mark's own with "mark").
ktime_since_mark() {
    if [ "$1" = mark ]; then
        dmesg | grep -F "$DMESG_MARK" | tail -n 1
    else
        dmesg_since_mark | grep -E "$1" | tail -n 1
    fi | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'
}

# stats FILE: the median, min, max and count of the values in FILE (one a line).
stats() {
    sort -n "$1" | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) exit 1
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print med, v[1], v[NR], NR
        }'
}

# bench_line NAME UNIT MEDIAN MIN MAX RUNS: one @@bench line and one @@md row.
bench_line() {
    printf '@@bench {"name":"%s","unit":"%s","median":%s,"min":%s,"max":%s,"runs":%s}\n' "$@"
    # shellcheck disable=SC2016 # the backquotes are Markdown's
    printf '@@md | `%s` | %s | %.3f | %.3f | %.3f | %s |\n' "$@"
}

# pages_mode_load_overhead (issue 22): loading the whole reservation with pages=1 (struct pages,
# their memory map initialised page by page: linear in the size, as memremap_pages is) over
# without, each timed on the kernel's clock from a mark written just before insmod to the
# driver's "claimed" line; and the memory map's cost, as MemFree shrinks at the load.
bench_pages_mode_load() {
    unload_quietly
    for mode in 0 1; do
        : >"/tmp/load.$mode"
        : >"/tmp/memmap.$mode"
        i=0
        while [ "$i" -lt "$1" ]; do
            i=$((i + 1))
            free0=$(awk '/^MemFree:/ { print $2 }' /proc/meminfo)
            dmesg_mark
            insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" "pages=$mode" || return 1
            free1=$(awk '/^MemFree:/ { print $2 }' /proc/meminfo)
            t0=$(ktime_since_mark mark)
            t1=$(ktime_since_mark 'carveout.*: claimed 0x')
            rmmod carveout || return 1
            if [ -z "$t0" ] || [ -z "$t1" ]; then
                say "no kernel timestamps for the load"
                return 1
            fi
            awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }' >>"/tmp/load.$mode"
            echo $((free0 - free1)) >>"/tmp/memmap.$mode"
        done
    done
    plain=$(stats /tmp/load.0) || return 1
    paged=$(stats /tmp/load.1) || return 1
    # shellcheck disable=SC2086 # four numbers
    bench_line load_whole_reservation ms $plain
    # shellcheck disable=SC2086
    bench_line pages_mode_load_whole_reservation ms $paged
    # The ratio of the medians; min and max the ratios of the extremes (as carveout-bench's).
    ratio=$(echo "$paged $plain" |
        awk '$5 > 0 && $6 > 0 && $7 > 0 { printf "%.3f %.3f %.3f %d", $1 / $5, $2 / $7, $3 / $6, $4 }')
    [ -n "$ratio" ] || return 1
    # shellcheck disable=SC2086
    bench_line pages_mode_load_overhead ratio $ratio
    memmap=$(stats /tmp/memmap.1) || return 1
    # shellcheck disable=SC2086
    bench_line pages_mode_memmap_cost KiB $memmap
    say "the driver says: $(dmesg | grep -m 1 'pages mode: struct pages for the range' | sed 's/^\[[^]]*\] //')"
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
