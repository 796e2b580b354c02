# shellcheck shell=sh
# Regions created at runtime through configfs (issue #3), and who may open them.

CFS=/sys/kernel/config/carveout
MIB=1048576

# make_region NAME BASE SIZE [MODE [GID]]: creates and enables configfs region NAME.
make_region() {
    mkdir "$CFS/$1" || return 1
    echo "$2" >"$CFS/$1/base" || return 1
    echo "$3" >"$CFS/$1/size" || return 1
    [ -z "${4:-}" ] || echo "$4" >"$CFS/$1/mode" || return 1
    [ -z "${5:-}" ] || echo "$5" >"$CFS/$1/gid" || return 1
    echo 1 >"$CFS/$1/enable"
}

# drop_region NAME: disables and removes configfs region NAME, whatever its state.
drop_region() {
    [ -d "$CFS/$1" ] || return 0
    echo 0 >"$CFS/$1/enable" 2>/dev/null
    rmdir "$CFS/$1"
}

region_a=$BASE
region_b=$((BASE + 16 * MIB))

case_regions_two_at_once() {
    make_region a "$(hex "$region_a")" 16M || return 1
    make_region b "$(hex "$region_b")" 16M || return 1
    if [ ! -c /dev/carveout/a ] || [ ! -c /dev/carveout/b ]; then
        say "nodes missing: $(ls /dev/carveout)"
        return 1
    fi
    grep carveout /proc/iomem | sed 's/^/# /'
    carveout-test --dev /dev/carveout/a fill --seed 0xaaaa || return 1
    carveout-test --dev /dev/carveout/b fill --seed 0xbbbb || return 1
    carveout-test devmem-verify --phys "$region_a" --len $((16 * MIB)) --seed 0xaaaa || return 1
    carveout-test devmem-verify --phys "$region_b" --len $((16 * MIB)) --seed 0xbbbb || return 1
    iomem_claim_inside_reserved "$region_a" $((region_a + 16 * MIB - 1)) carveout &&
        iomem_claim_inside_reserved "$region_b" $((region_b + 16 * MIB - 1)) carveout
}

case_region_overlap_refused() {
    mkdir "$CFS/c" || return 1
    hex $((region_a + 8 * MIB)) >"$CFS/c/base"
    echo 16M >"$CFS/c/size"
    dmesg_mark
    if echo 1 2>/tmp/enable.err >"$CFS/c/enable"; then
        say "an overlapping region was enabled"
        return 1
    fi
    say "enable: $(cat /tmp/enable.err)"
    ok=0
    grep -q 'busy' /tmp/enable.err || { say "expected EBUSY"; ok=1; }
    dmesg_since_mark | grep -q 'already claimed' || { say "no dmesg line"; ok=1; }
    [ ! -e /dev/carveout/c ] || { say "a node appeared"; ok=1; }
    [ "$(cat "$CFS/c/enable")" = 0 ] || ok=1
    rmdir "$CFS/c"
    return "$ok"
}

# refused_busy WHAT COMMAND...: COMMAND fails with EBUSY (else says WHAT happened).
refused_busy() {
    what=$1
    shift
    if "$@" 2>/tmp/refused.err; then
        say "$what"
        return 1
    fi
    grep -q busy /tmp/refused.err || { say "$what: expected EBUSY, got $(cat /tmp/refused.err)"; return 1; }
}

# Neither `enable` = 0 nor rmdir takes a region away while it is mapped or open.
case_region_disable_busy() {
    hold_mapping --dev /dev/carveout/a || return 1
    ok=0
    refused_busy "disabled under a mapping" sh -c "echo 0 >$CFS/a/enable" || ok=1
    refused_busy "rmdir under a mapping" rmdir "$CFS/a" || ok=1
    if echo 0x1000 2>/dev/null >"$CFS/a/base"; then
        say "base changed while enabled"
        ok=1
    fi
    release_mapping
    # An open file without a mapping holds it too.
    start_holder sh -c 'exec 3</dev/carveout/a && echo holding && exec sleep 120' || return 1
    refused_busy "disabled while open" sh -c "echo 0 >$CFS/a/enable" || ok=1
    refused_busy "rmdir while open" rmdir "$CFS/a" || ok=1
    if [ ! -c /dev/carveout/a ] || [ ! -d "$CFS/a" ]; then
        say "region gone while open"
        ok=1
    fi
    release_mapping
    echo 0 >"$CFS/a/enable" || { say "disable failed after close"; ok=1; }
    [ ! -e /dev/carveout/a ] || { say "node left behind"; ok=1; }
    if grep "$(printf '%08x' "$region_a")-" /proc/iomem | grep -q carveout; then
        say "claim left behind"
        ok=1
    fi
    return "$ok"
}

case_region_recreate_keeps_contents() {
    # Region a (disabled by the previous case) held the pattern 0xaaaa.
    drop_region a || return 1
    make_region a "$(hex "$region_a")" 16M || return 1
    carveout-test --dev /dev/carveout/a verify --seed 0xaaaa
}

case_nonroot_denied() {
    make_region priv "$(hex $((BASE + 32 * MIB)))" 4M || return 1
    mode=$(stat -c %a /dev/carveout/priv)
    [ "$mode" = 600 ] || { say "mode $mode, expected 600"; return 1; }
    if carveout-test --dev /dev/carveout/priv --as-user 1000:1000 info 2>/tmp/open.err; then
        say "an unprivileged user opened a 0600 region"
        return 1
    fi
    say "$(cat /tmp/open.err)"
    grep -q 'Permission denied' /tmp/open.err
}

case_group_access_granted() {
    make_region grp "$(hex $((BASE + 40 * MIB)))" 4M 0660 1234 || return 1
    node=/dev/carveout/grp
    # As devtmpfs made it: no udev in the guest.
    owner=$(stat -c '%a %u:%g' "$node")
    [ "$owner" = "660 0:1234" ] || { say "node is $owner, expected 660 0:1234"; return 1; }
    [ "$(cat /sys/class/carveout/carveout-grp/gid)" = 1234 ] || { say "sysfs gid differs"; return 1; }
    carveout-test --dev "$node" --as-user 1000:1000:1234 fill --seed 0x6a || return 1
    carveout-test devmem-verify --phys $((BASE + 40 * MIB)) --len $((4 * MIB)) --seed 0x6a || return 1
    if carveout-test --dev "$node" --as-user 1001:1001 info 2>/dev/null; then
        say "a user outside the group opened it"
        return 1
    fi
}

suite_regions() {
    # The module without parameters: regions come from configfs only.
    insmod "$MOD" || return
    [ -d "$CFS" ] || say "no $CFS"
    run_case regions_two_at_once case_regions_two_at_once
    run_case region_overlap_refused case_region_overlap_refused
    run_case region_disable_busy case_region_disable_busy
    run_case region_recreate_keeps_contents case_region_recreate_keeps_contents
    run_case nonroot_denied case_nonroot_denied
    run_case group_access_granted case_group_access_granted
    for region in a b c priv grp; do
        drop_region "$region"
    done
}
SUITES="$SUITES regions"
