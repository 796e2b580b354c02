# shellcheck shell=sh
# Regions claimed by reserve_mem= name (issue #7): the guest boots with
# reserve_mem=4M:4096:cvtest.

RESERVE_MEM_NAME=cvtest
RESERVE_MEM_SIZE=0x400000

# The base GET_INFO reports for the reserve_mem region (module loaded).
reserve_mem_base() { carveout-test info | sed 's/^base=\(0x[0-9a-f]*\) .*/\1/'; }

case_reserve_mem_by_name() {
    insmod "$MOD" reserve_mem="$RESERVE_MEM_NAME" || return 1
    info=$(carveout-test info) || return 1
    say "$info"
    mem_base=$(reserve_mem_base)
    case $info in *" size=$RESERVE_MEM_SIZE "*) ;; *) say "expected size $RESERVE_MEM_SIZE"; return 1 ;; esac
    claim=$(printf '%08x-%08x : carveout' "$mem_base" $((mem_base + RESERVE_MEM_SIZE - 1)))
    grep -q "^ *$claim\$" /proc/iomem || { say "no '$claim' in /proc/iomem"; return 1; }
    grep -B2 "$claim" /proc/iomem | sed 's/^/# /'
    carveout-test roundtrip --seed 0x4e5e || return 1
    # The firmware's map shows this RAM as usable: carveoutctl plan must not propose it while
    # carveout holds it. Asked for the highest 4 MiB ending at its end, it proposes one below.
    carveoutctl --json plan --size 4M --align 4K --below $((mem_base + RESERVE_MEM_SIZE)) \
        >/tmp/plan.json || { cat /tmp/plan.json; return 1; }
    planned=$(grep -o '"base":[0-9]*' /tmp/plan.json | head -n 1 | cut -d: -f2)
    say "plan below the end of $(hex "$mem_base")+$(hex "$RESERVE_MEM_SIZE"): $(hex "$planned")"
    if [ -z "$planned" ] || [ $((planned + 4194304)) -gt $((mem_base)) ]; then
        say "the plan overlaps the reserve_mem region carveout holds"
        return 1
    fi
}

case_reserve_mem_survives_reload() {
    mem_base=$(reserve_mem_base)
    carveout-test fill --seed 0x4e5f || return 1
    rmmod carveout || return 1
    carveout-test devmem-verify --phys "$mem_base" --len "$RESERVE_MEM_SIZE" --seed 0x4e5f ||
        { say "changed while unloaded"; return 1; }
    insmod "$MOD" reserve_mem="$RESERVE_MEM_NAME" || return 1
    [ "$(reserve_mem_base)" = "$mem_base" ] || { say "the address moved"; return 1; }
    carveout-test verify --seed 0x4e5f
}

case_reserve_mem_refusals() {
    rmmod carveout
    ok=0
    expect_refused 'No such device' 'no such region' reserve_mem=nosuch || ok=1
    expect_refused 'Invalid argument' 'give one or the other' reserve_mem="$RESERVE_MEM_NAME" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" || ok=1
    expect_refused 'not supported' 'only wb' reserve_mem="$RESERVE_MEM_NAME" attr=2 || ok=1
    return "$ok"
}

suite_reserve_mem() {
    run_case reserve_mem_by_name case_reserve_mem_by_name
    run_case reserve_mem_survives_reload case_reserve_mem_survives_reload
    run_case reserve_mem_refusals case_reserve_mem_refusals
}
SUITES="$SUITES reserve_mem"
