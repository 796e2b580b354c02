# shellcheck shell=sh
# A 32-bit caller (issue 19): carveout_compat32, a static i386 program (gcc -m32), calls every
# ioctl of include/carveout.h and maps the region, so its requests go through the driver's
# compat_ioctl and the 32-bit mmap2/pread64 calls (the kernel has CONFIG_IA32_EMULATION). Each
# answer is checked against the 64-bit view: the 64-bit C program's GET_INFO, sysfs, and data
# written by one side read back by the other through a mapping and /dev/mem.

COMPAT_SYSFS=/sys/class/carveout/carveout0

# compat_run ARGS...: carveout_compat32 ARGS, its output as diagnostics (also in /tmp/compat.out).
compat_run() {
    carveout_compat32 "$@" >/tmp/compat.out 2>&1
    rc=$?
    sed 's/^/# compat32: /' /tmp/compat.out
    return "$rc"
}

case_compat_32bit_caller() {
    # The program really is 32-bit: ELF class 1.
    class=$(dd if=/bin/carveout_compat32 bs=1 skip=4 count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
    [ "$class" = 1 ] || { say "carveout_compat32 is not a 32-bit ELF file (class $class)"; return 1; }
    load || return 1

    # GET_INFO: the same answer as the 64-bit C program's.
    compat_run info "$DEV" || return 1
    want=$(carveout_test info "$DEV") || return 1
    [ "$(cat /tmp/compat.out)" = "$want" ] || { say "64-bit GET_INFO says: $want"; return 1; }

    # GET_ATTR, SET_ATTR's and SYNC's refusals, an unknown request, a bad pointer.
    compat_run ioctls "$DEV" || return 1

    # SET_ATTR from 32 bits, seen by sysfs and the 64-bit GET_INFO; then back to wb.
    compat_run set-attr "$DEV" wc || return 1
    [ "$(cat "$COMPAT_SYSFS/attr")" = wc ] || { say "sysfs attr: $(cat "$COMPAT_SYSFS/attr"), not wc"; return 1; }
    carveout_test info "$DEV" | grep -q 'flags=0x[0-9a-f]*[2367abef] ' ||
        { say "64-bit GET_INFO after SET_ATTR wc: $(carveout_test info "$DEV")"; return 1; }
    compat_run set-attr "$DEV" wb || return 1
    [ "$(cat "$COMPAT_SYSFS/attr")" = wb ] || { say "sysfs attr: $(cat "$COMPAT_SYSFS/attr"), not wb"; return 1; }

    # ATTACH and BUS_ADDR of QEMU's edu device: sysfs lists it at the address reported; DETACH.
    edu=$(edu_sysfs) || { say "no edu device"; return 1; }
    bdf=${edu##*/}
    compat_run attach "$DEV" "$bdf" || return 1
    reported=$(tail -n 1 /tmp/compat.out | cut -d' ' -f1,2)
    listed=$(grep "^$bdf " "$COMPAT_SYSFS/dma_devices" | cut -d' ' -f1,2)
    say "sysfs dma_devices: $(cat "$COMPAT_SYSFS/dma_devices")"
    if [ -z "$listed" ] || [ "$listed" != "$reported" ]; then
        say "32-bit ATTACH reported '$reported', sysfs lists '$listed'"
        return 1
    fi
    compat_run detach "$DEV" "$bdf" || return 1
    ! grep -q "^$bdf " "$COMPAT_SYSFS/dma_devices" || { say "sysfs still lists $bdf after DETACH"; return 1; }

    # Data: the 64-bit tool's pattern read through 32-bit mappings and pread64; the 32-bit
    # mapping's pattern read by the 64-bit tool, through its mapping and /dev/mem.
    carveout-test fill --seed 0xc0a64 || return 1
    compat_run verify "$DEV" 0xc0a64 || return 1
    compat_run fill "$DEV" 0xc0a32 || return 1
    carveout-test verify --seed 0xc0a32 || return 1
    carveout-test verify --devmem --seed 0xc0a32 || return 1

    rmmod carveout || return 1
    dmesg_clean
}

suite_compat() {
    run_case compat_32bit_caller case_compat_32bit_caller
}
SUITES="$SUITES compat"
