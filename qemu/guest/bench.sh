# shellcheck shell=sh
# `make bench`: carveout-bench in the guest; the host collects the @@bench and @@md lines.

run_bench() {
    runs=${cvt_runs:-5}
    echo "== carveout-bench: a $(hex "$SIZE") reservation at $(hex "$BASE"), $runs runs each"
    say "transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
    carveout-bench all --module "$MOD" --base "$(hex "$BASE")" --size "$(hex "$SIZE")" \
        --runs "$runs" || echo "@@bench-failed"
    echo "@@bench-done"
    qemu_exit
}
