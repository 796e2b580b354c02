# shellcheck shell=sh
# Only reserved memory is claimed (issue 11): a hole, a device's BAR and ACPI tables are
# refused; allow_unlisted=1 opts in to a range no map lists, uncached by default; carveoutctl
# tells memory the firmware itself reserved from RAM the command line set aside.
#
# The guest boots with memmap=1M#ACPI_BASE (qemu/run.sh): an "ACPI Tables" entry.

ACPI_BASE=${cvt_acpi_base:-}
ACPI_SIZE=${cvt_acpi_size:-}
HOLE_SIZE=0x200000

# The first 2 MiB-aligned 2 MiB at or above 4 GiB that no /proc/iomem entry touches, in
# decimal. Not lower: with ACPI the PCI bus window ("PCI Bus 0000:00") spans 0x20000000 to
# 0xfebfffff, and above it the local APIC sits at 0xfee00000 without an iomem entry.
iomem_hole() {
    awk -v size=$((HOLE_SIZE)) '
        function num(h,    i, c, v) {
            v = 0; h = tolower(h)
            for (i = 1; i <= length(h); i++) { c = index("0123456789abcdef", substr(h, i, 1)) - 1; v = v * 16 + c }
            return v
        }
        { split($1, r, "-"); s[n] = num(r[1]); e[n] = num(r[2]); n++ }
        END {
            at = 4294967296
            moved = 1
            while (moved) {
                moved = 0
                for (i = 0; i < n; i++)
                    if (s[i] <= at + size - 1 && e[i] >= at) {
                        at = (int((e[i] + 1) / size) + ((e[i] + 1) % size != 0)) * size
                        moved = 1
                    }
            }
            printf "%.0f\n", at
        }' /proc/iomem
}

# iomem_line START LAST NAME: /proc/iomem has "START-LAST : NAME" at some depth.
iomem_line() { grep -q "^ *$(printf '%08x-%08x' "$1" "$2") : $3\$" /proc/iomem; }

case_refuses_unlisted_range() {
    hole=$(iomem_hole)
    say "no /proc/iomem entry touches $(hex "$hole")-$(hex $((hole + HOLE_SIZE - 1)))"
    expect_refused 'Invalid argument' "refusing $(hex "$hole")-0x[0-9a-f]+: not reserved memory: .*hole" \
        "base=$(hex "$hole")" "size=$HOLE_SIZE"
}

# The sysfs directory of QEMU's edu device (1234:11e8).
edu_sysfs() {
    for d in /sys/bus/pci/devices/*; do
        if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

case_refuses_device_bar() {
    dev=$(edu_sysfs) || { say "no edu device"; return 1; }
    bdf=${dev##*/}
    # BAR0: the first line of `resource`, "START END FLAGS".
    read -r bar_start bar_end _ <"$dev/resource"
    start=$((${bar_start:-0}))
    last=$((${bar_end:-0}))
    [ "$start" != 0 ] || { say "edu's BAR0 is not assigned"; return 1; }
    grep -B1 "$(printf '%08x-%08x' "$start" "$last")" /proc/iomem | sed 's/^/# /'
    iomem_line "$start" "$last" "$bdf" || { say "no '$bdf' entry for edu's BAR0 in /proc/iomem"; return 1; }
    expect_refused 'Invalid argument' "not reserved memory: .*(PCI Bus|$bdf)" \
        "base=$(hex "$start")" "size=$(hex $((last - start + 1)))"
}

case_refuses_acpi_range() {
    [ -n "$ACPI_BASE" ] || { say "no ACPI range configured (cvt_acpi_base)"; return 1; }
    last=$((ACPI_BASE + ACPI_SIZE - 1))
    iomem_line "$ACPI_BASE" "$last" "ACPI Tables" ||
        { say "/proc/iomem shows no ACPI Tables at $(hex "$ACPI_BASE")-$(hex "$last") (memmap=#?)"; return 1; }
    say "$(grep ' : ACPI Tables$' /proc/iomem)"
    expect_refused 'Invalid argument' "not reserved memory: .*ACPI Tables" \
        "base=$(hex "$ACPI_BASE")" "size=$(hex "$ACPI_SIZE")"
}

# sysfs_of NODE_NAME FILE: the region's sysfs attribute FILE, or why not.
sysfs_of() { cat "/sys/class/carveout/$1/$2" 2>&1; }

# info_flags [DEV]: the flags word GET_INFO reports.
info_flags() {
    flags=$(carveout-test --dev "${1:-$DEV}" info | sed -n 's/.* flags=\(0x[0-9a-f]*\) .*/\1/p')
    echo "${flags:-0}"
}

# unlisted_region_ok NODE SYSFS_NAME: the region is marked unlisted in sysfs and GET_INFO, is
# uncached, and its mapping's page-table entries are uncached.
unlisted_region_ok() {
    uok=0
    [ "$(sysfs_of "$2" unlisted)" = 1 ] || { say "sysfs unlisted: $(sysfs_of "$2" unlisted)"; uok=1; }
    flags=$(info_flags "$1")
    [ $((flags & 0x80)) != 0 ] || { say "GET_INFO flags $flags lack CARVEOUT_MR_UNLISTED (0x80)"; uok=1; }
    carveoutctl info "$1" | grep flags | sed 's/^/# /'
    [ "$(sysfs_of "$2" attr)" = uc ] || { say "sysfs attr: $(sysfs_of "$2" attr), expected uc"; uok=1; }
    carveout-test --dev "$1" attr-get | grep -q 'attr=uc ' ||
        { say "GET_ATTR: $(carveout-test --dev "$1" attr-get)"; uok=1; }
    # Read-touched only: nothing is behind a hole.
    pte_check --dev "$1" pte --attr uc --placement huge || uok=1
    return "$uok"
}

case_unlisted_opt_in_maps_uc() {
    unload_quietly
    hole=$(iomem_hole)
    last=$((hole + HOLE_SIZE - 1))
    dmesg_mark
    insmod "$MOD" "base=$(hex "$hole")" "size=$HOLE_SIZE" allow_unlisted=1 ||
        { say "insmod with allow_unlisted=1 failed"; return 1; }
    dmesg_since_mark >/tmp/dmesg.new
    sed 's/^/# dmesg: /' /tmp/dmesg.new
    ok=0
    grep -q "carveout.*is not listed as reserved memory.*; claimed because allow_unlisted=1" /tmp/dmesg.new ||
        { say "no dmesg line saying it was claimed because of allow_unlisted=1"; ok=1; }
    if grep -q 'WARNING:' /tmp/dmesg.new; then
        say "a WARNING: line: the kernel's warning format, not a driver's message"
        ok=1
    fi
    iomem_line "$hole" "$last" carveout || { say "no carveout claim at $(hex "$hole")-$(hex "$last")"; ok=1; }
    unlisted_region_ok "$DEV" carveout0 || ok=1
    rmmod carveout || ok=1

    # A listed range: not marked, write-back by default.
    load || return 1
    [ "$(sysfs_of carveout0 unlisted)" = 0 ] || { say "a reserved range: sysfs unlisted $(sysfs_of carveout0 unlisted)"; ok=1; }
    flags=$(info_flags)
    [ $((flags & 0x80)) = 0 ] || { say "a reserved range: GET_INFO flags $flags"; ok=1; }
    [ "$(sysfs_of carveout0 attr)" = wb ] || { say "a reserved range defaults to $(sysfs_of carveout0 attr)"; ok=1; }
    rmmod carveout || ok=1

    # configfs: refused until allow_unlisted is written 1, then uncached.
    insmod "$MOD" || return 1
    mkdir "$CFS/u" || return 1
    hex "$hole" >"$CFS/u/base"
    echo "$HOLE_SIZE" >"$CFS/u/size"
    dmesg_mark
    if echo 1 2>/tmp/enable.err >"$CFS/u/enable"; then
        say "configfs enabled the hole without allow_unlisted"
        echo 0 >"$CFS/u/enable"
        ok=1
    else
        say "enable: $(cat /tmp/enable.err)"
        grep -q 'Invalid argument' /tmp/enable.err || { say "expected EINVAL"; ok=1; }
        dmesg_since_mark | grep -q 'not reserved memory: .*hole' ||
            { say "no dmesg line naming the hole"; ok=1; }
    fi
    if echo 1 >"$CFS/u/allow_unlisted" && echo 1 >"$CFS/u/enable"; then
        unlisted_region_ok /dev/carveout/u carveout-u || ok=1
    else
        say "configfs: allow_unlisted=1 and enable failed"
        ok=1
    fi
    drop_region u
    unload_quietly
    return "$ok"
}

# The lowest firmware Reserved range above 1 MiB, page aligned, in /sys/firmware/memmap:
# "START LAST", decimal.
firmware_reserved_range() {
    for d in /sys/firmware/memmap/*; do
        [ "$(cat "$d/type")" = Reserved ] || continue
        s=$(($(cat "$d/start")))
        e=$(($(cat "$d/end")))
        if [ "$s" -ge 1048576 ] && [ $((s % 4096)) = 0 ] && [ $(((e + 1) % 4096)) = 0 ]; then
            echo "$s $e"
        fi
    done | sort -n | head -n 1
}

# firmware_type_at ADDR: the type /sys/firmware/memmap gives ADDR.
firmware_type_at() {
    for d in /sys/firmware/memmap/*; do
        if [ "$1" -ge $(($(cat "$d/start"))) ] && [ "$1" -le $(($(cat "$d/end"))) ]; then
            cat "$d/type"
        fi
    done
}

case_cli_check_flags_firmware_reserved() {
    [ -d /sys/firmware/memmap ] || { say "no /sys/firmware/memmap (CONFIG_FIRMWARE_MEMMAP)"; return 1; }
    range=$(firmware_reserved_range)
    [ -n "$range" ] || { say "the firmware reserved nothing above 1 MiB"; return 1; }
    fw_start=${range% *}
    fw_last=${range#* }
    span="$(hex "$fw_start")-$(hex "$fw_last")"
    entry="memmap=$(hex $((fw_last - fw_start + 1)))\$$(hex "$fw_start")"
    ok=0
    # The premise: the firmware's map keeps a memmap=$ range as RAM.
    ram=$(firmware_type_at $((BASE)))
    say "firmware Reserved: $span; the guest's memmap=\$ range there: $ram"
    [ "$ram" = "System RAM" ] || { say "expected System RAM"; ok=1; }
    printf 'console=ttyS0 %s\n' "$entry" >/tmp/fw.cmdline
    unload_quietly
    insmod "$MOD" || return 1
    expect_exit 1 carveoutctl check --cmdline /tmp/fw.cmdline || ok=1
    has "problem: $entry ($span) lies in memory the firmware itself reserved (/sys/firmware/memmap: Reserved $span)" || ok=1
    # The guest's own command line reserves RAM: no such finding.
    carveoutctl check >/tmp/out 2>&1
    if grep 'firmware itself reserved' /tmp/out; then
        say "the guest's memmap=\$ range was flagged"
        ok=1
    fi
    # load: refused without --force, nothing made.
    expect_exit 1 carveoutctl load --cmdline /tmp/fw.cmdline || ok=1
    has "memmap0: $entry ($span) lies in memory the firmware itself reserved" &&
        has "not loading it without --force" || ok=1
    if [ -e "$CFS/memmap0" ] || [ -e /dev/carveout/memmap0 ] || iomem_has_name carveout; then
        say "load made a region anyway"
        ok=1
    fi
    # --force: loaded; check and plan then name the region.
    expect_exit 0 carveoutctl load --cmdline /tmp/fw.cmdline --force || ok=1
    has "loading it anyway (--force)" && has "memmap0: created /dev/carveout/memmap0" || ok=1
    expect_exit 1 carveoutctl check || ok=1
    has "problem: /dev/carveout/memmap0 ($span) lies in memory the firmware itself reserved" || ok=1
    expect_exit 0 carveoutctl plan --size 4M || ok=1
    has "note: /dev/carveout/memmap0 ($span) lies in memory the firmware itself reserved" || ok=1
    drop_region memmap0
    unload_quietly
    return "$ok"
}

suite_reserved() {
    unload_quietly
    run_case refuses_unlisted_range case_refuses_unlisted_range
    run_case refuses_device_bar case_refuses_device_bar
    run_case refuses_acpi_range case_refuses_acpi_range
    run_case unlisted_opt_in_maps_uc case_unlisted_opt_in_maps_uc
    unload_quietly
    run_case cli_check_flags_firmware_reserved case_cli_check_flags_firmware_reserved
}
SUITES="$SUITES reserved"
