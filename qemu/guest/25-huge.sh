# shellcheck shell=sh
# 2 MiB mappings (issue 6): a mapping whose user address is congruent to the region's physical
# address modulo 2 MiB is filled at fault time with 2 MiB entries, 4 KiB entries at unaligned
# ends. carveout-bench places the mappings (an over-sized reservation, then MAP_FIXED), or lets
# the driver place one (mmap(NULL, ...): its get_unmapped_area keeps the congruence).

# hold_huge [--read-only]: maps the whole region 2 MiB aligned in the background and waits
# until it is mapped and touched; the holder's pid is in $holder.
hold_huge() {
    start_holder carveout-bench hold --seconds 120 "$@"
}

case_huge_mapping_used() {
    load || return 1
    carveout-bench huge-used
}

case_huge_mapping_matches() {
    load || return 1
    carveout-bench huge-matches
}

# case_huge_attr_maps ATTR PAT_TYPES: a 2 MiB mapping carries the attribute's memory type
# while it exists (pat_type, from 20-attrs.sh), and the record goes with it.
case_huge_attr_maps() {
    attr=$1
    types=$2
    load || return 1
    carveout-test attr-set "$attr" || return 1
    ro=""
    [ "$attr" = wp ] && ro=--read-only
    # shellcheck disable=SC2086 # ro is empty or one word
    hold_huge $ro || return 1
    type=$(pat_type)
    release_mapping
    after=$(pat_type)
    say "PAT records the 2 MiB mapping as: ${type:-nothing}"
    carveout-test attr-set wb
    echo "$type" | grep -qxE "$types" || { say "expected $types"; return 1; }
    [ -z "$after" ] || { say "PAT still records $after after munmap"; return 1; }
}

suite_huge() {
    run_case huge_mapping_used case_huge_mapping_used
    unload_quietly
    run_case huge_mapping_matches case_huge_mapping_matches
    unload_quietly
    run_case huge_attr_uc_maps case_huge_attr_maps uc 'uncached-minus|uncached'
    unload_quietly
    run_case huge_attr_wc_maps case_huge_attr_maps wc write-combining
    unload_quietly
    run_case huge_attr_wt_maps case_huge_attr_maps wt write-through
    unload_quietly
    run_case huge_attr_wp_maps case_huge_attr_maps wp 'write-protect(ed)?'
    unload_quietly
}
SUITES="$SUITES huge"
