# shellcheck shell=sh
# Cache attributes (issue #3): each attribute maps with the memory type PAT records for the
# range; changing it under a mapping is refused; write-protect maps read-only; bad values are
# refused; sysfs agrees with the ioctls.

PAT_LIST=/sys/kernel/debug/x86/pat_memtype_list

# The memory type PAT records for the whole region right now, or nothing.
pat_type() {
    pattern=$(printf 'PAT: \\[mem 0x%016x-0x%016x\\] ' "$BASE" $((BASE + SIZE)))
    grep "^$pattern" "$PAT_LIST" | sed 's/.*\] //' | head -n 1
}

# case_attr_maps ATTR PAT_TYPES: with ATTR set, a mapping carries one of PAT_TYPES (a regex),
# and (unless the region is read-only) a pattern written through it lands in the carve-out.
case_attr_maps() {
    attr=$1
    types=$2
    [ -r "$PAT_LIST" ] || { say "no $PAT_LIST (debugfs, PAT)"; return 1; }
    carveout-test attr-set "$attr" || return 1
    shown=$(cat /sys/class/carveout/carveout0/attr)
    [ "$shown" = "$attr" ] || { say "sysfs attr says $shown"; return 1; }
    ro=""
    if [ "$attr" = wp ]; then
        ro=--read-only
    else
        carveout-test roundtrip --seed 0xa770 || return 1
    fi
    # shellcheck disable=SC2086 # ro is empty or one word
    hold_mapping $ro || return 1
    type=$(pat_type)
    [ -n "$type" ] || sed 's/^/# pat: /' "$PAT_LIST"
    release_mapping
    say "PAT records the mapping as: ${type:-nothing}"
    after=$(pat_type)
    carveout-test attr-set wb
    echo "$type" | grep -qxE "$types" || { say "expected $types"; return 1; }
    [ -z "$after" ] || { say "PAT still records $after after munmap"; return 1; }
}

case_attr_busy_while_mapped() {
    hold_mapping || return 1
    busy=$(carveout-test attr-get)
    say "while mapped: $busy"
    if carveout-test attr-set wc 2>/tmp/attr.err; then
        release_mapping
        say "SET_ATTR succeeded under a mapping"
        return 1
    fi
    release_mapping
    say "$(cat /tmp/attr.err)"
    grep -q 'busy' /tmp/attr.err || { say "expected EBUSY"; return 1; }
    case $busy in *"attr=wb busy=1"*) ;; *) say "GET_ATTR did not report wb and BUSY"; return 1 ;; esac
    carveout-test attr-set wc || { say "SET_ATTR failed after munmap"; return 1; }
    carveout-test attr-get | grep -q 'attr=wc busy=0' || return 1
    carveout-test attr-set wb
}

case_attr_wp_refuses_write() {
    carveout-test fill --seed 0x3b || return 1
    carveout-test attr-set wp || return 1
    ok=0
    carveout-test wp-check || ok=1
    carveout-test verify --devmem --seed 0x3b || { say "contents changed"; ok=1; }
    carveout-test attr-set wb
    return "$ok"
}

case_attr_bad_value_refused() {
    ok=0
    for flags in 0 0x3 0x18 0x20 0x8000000 0x40000000 0x80000000; do
        if carveout-test attr-set --raw "$flags" 2>/tmp/attr.err; then
            say "flags $flags accepted"
            ok=1
        elif ! grep -q 'Invalid argument' /tmp/attr.err; then
            say "flags $flags: $(cat /tmp/attr.err), expected EINVAL"
            ok=1
        fi
    done
    carveout-test attr-get | grep -q 'attr=wb ' || { say "the attribute changed"; ok=1; }
    # The module parameter too: refused at load, with the reason.
    rmmod carveout
    expect_refused 'Invalid argument' 'refusing attr=0x3' "base=$(hex "$BASE")" "size=$(hex "$SIZE")" attr=3 || ok=1
    load || ok=1
    return "$ok"
}

# sysfs_file NAME: the region's read-only sysfs attribute NAME.
sysfs_file() { cat "/sys/class/carveout/carveout0/$1"; }

case_sysfs_matches_ioctl() {
    info=$(carveout-test info) || return 1
    hold_mapping || return 1
    attr_line=$(carveout-test attr-get)
    maps=$(sysfs_file map_count)
    release_mapping
    say "ioctl: $info; $attr_line"
    say "sysfs: phys_addr=$(sysfs_file phys_addr) size=$(sysfs_file size) attr=$(sysfs_file attr) map_count=$maps mode=$(sysfs_file mode) gid=$(sysfs_file gid)"
    case $info in "base=$(sysfs_file phys_addr) size=$(hex "$(sysfs_file size)") "*) ;; *) say "base/size differ"; return 1 ;; esac
    case $attr_line in *"attr=$(sysfs_file attr) busy=1"*) ;; *) say "attr/busy differ"; return 1 ;; esac
    [ "$maps" = 1 ] || { say "map_count $maps while one mapping exists"; return 1; }
    [ "$(sysfs_file map_count)" = 0 ] || { say "map_count not 0 after munmap"; return 1; }
    carveout-test attr-get | grep -q 'busy=0' || { say "still BUSY after munmap"; return 1; }
}

suite_attrs() {
    load || return
    run_case attr_uc_maps case_attr_maps uc 'uncached-minus|uncached'
    run_case attr_wc_maps case_attr_maps wc write-combining
    run_case attr_wt_maps case_attr_maps wt write-through
    run_case attr_wb_maps case_attr_maps wb write-back
    run_case attr_wp_maps case_attr_maps wp 'write-protect(ed)?'
    run_case attr_busy_while_mapped case_attr_busy_while_mapped
    run_case attr_wp_refuses_write case_attr_wp_refuses_write
    run_case attr_bad_value_refused case_attr_bad_value_refused
    run_case sysfs_matches_ioctl case_sysfs_matches_ioctl
}
SUITES="$SUITES attrs"
