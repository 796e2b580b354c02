# shellcheck shell=bash
# Shared helpers for carveout's scripts. Sourced, never run.

CARVEOUT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything downloaded or built lives outside the checkout, so a fresh clone
# reuses it and `git clean` never throws away a kernel build.
CARVEOUT_CACHE=${CARVEOUT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/carveout}
# The kernel series the project is pinned to (Debian's linux-source-<series>).
KERNEL_SERIES=${KERNEL_SERIES:-7.3}
KERNEL_SUITE=${KERNEL_SUITE:-trixie-backports}
BINDGEN_VERSION=${BINDGEN_VERSION:-0.72.1}
LLVM_VERSION=${LLVM_VERSION:-19}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-${LLVM_VERSION}/lib}
export PATH="$HOME/.cargo/bin:$PATH"
export CARVEOUT_ROOT CARVEOUT_CACHE

# qemu_guest MEMORY KERNEL INITRD APPEND [MACHINE]: sets the array `qemu` to the command that
# boots the guest: TCG by default (KVM guests hang on these machines; CARVEOUT_KVM=1 opts in),
# no default devices, isa-debug-exit for a clean exit. MACHINE is QEMU's -machine (default
# pc; q35 for the guest with an IOMMU). Callers add the serial port and devices. Under TCG the
# CPU has 4-level paging (la57=off), no fast strings (TCG_CPU) and tcg_clock_args join APPEND:
# see below.
qemu_guest() {
    local accel=(-accel tcg -cpu "$TCG_CPU") append=$4
    if [[ ${CARVEOUT_KVM:-0} == 1 ]]; then
        accel=(-accel kvm -cpu host)
    else
        append+=" $(tcg_clock_args)"
    fi
    # The array is the function's result (SC2034); QEMU's options are comma-separated (SC2054).
    # shellcheck disable=SC2034,SC2054
    qemu=(
        qemu-system-x86_64 -machine "${5:-pc}" "${accel[@]}" -m "$1" -smp 1
        -nodefaults -no-user-config -display none
        -kernel "$2" -initrd "$3" -append "$append"
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
    )
}

# The TCG guests' CPU: QEMU's max, with 4-level paging (see tcg_clock_args) and without the
# fast-string features ERMS and FSRM. With them the kernel copies and clears with
# `rep movsb`/`rep stosb` (copy_to_user, copy_from_user, clear_page, memcpy), which TCG
# (QEMU 7.2) runs one byte per iteration; without them with `rep movsq`/`rep stosq` or
# unrolled moves, eight bytes at a time. Real CPUs run `rep movsb` at full speed. The
# region's file I/O (issue 13) copied at a seventh of userspace memcpy's speed with them,
# and the debug guest's file-I/O suite took 20 minutes.
TCG_CPU=max,la57=off,erms=off,fsrm=off

# What keeps a TCG guest's early boot independent of the host's load. Under TCG (no -icount)
# the guest's TSC is the host's and QEMU's PIT, HPET and APIC timer follow the host's clock, so
# whenever the host deschedules QEMU the guest sees time jump:
#  - its TSC calibration against the PIT fails and falls back on the HPET with an error
#    ("tsc: Fast TSC calibration failed", "tsc: Unable to calibrate against PIT"), or takes
#    a PIT run the host interrupted before it began for good: once here "PIT calibration
#    deviates from HPET", 134 MHz for a 2445 MHz TSC, udelay() and the clock 18 times off.
#    The host measures its TSC (scripts/host-tsc-khz.c) and hands the rate on:
#    tsc_early_khz= skips the calibration, loops_per_jiffy follows from it, and tsc=reliable
#    keeps the clocksource watchdog (TSC against an HPET read late) from switching
#    clocksources mid-suite. A host whose TSC is not invariant gets neither (logged).
#  - the IO-APIC timer check (timer_irq_works) wants 5 ticks within 160M TSC cycles (65 ms
#    here); ticks QEMU raises while it is descheduled coalesce into one, the check fails and
#    the boot panics "IO-APIC + timer doesn't work!" (seen on a warm reboot under load).
#    no_timer_check skips it, as the kernel does itself on KVM, Hyper-V and VMware.
#  - its timer interrupts land wherever the host's scheduler puts them, also inside
#    identify_cpu(), which clears boot_cpu_data's feature bits and sets them again while
#    interrupts are on and before alternatives are patched. A handler there sees "no LA57":
#    with 5-level paging, KASAN's bounds of the kernel's address space (from
#    pgtable_l5_enabled()) exclude the direct map and every per-cpu access is a
#    "wild-memory-access" (the debug kernel's panic in rcu_is_watching). Hence la57=off in
#    qemu_guest: with 4-level paging the cleared bit is the right answer.
# CARVEOUT_GUEST_CLOCK=calibrate adds none of these (the guest as before, for comparison).
tcg_clock_args() {
    local khz
    [[ ${CARVEOUT_GUEST_CLOCK:-host} == calibrate ]] && return 0
    if khz=$("$(host_tool host-tsc-khz)"); then
        echo "tsc_early_khz=$khz tsc=reliable no_timer_check"
    else
        log "the host's TSC is not invariant: the guest calibrates its own (boot timing may vary)"
        echo no_timer_check
    fi
}

# host_tool NAME: the path of scripts/NAME.c built for the host (cached by the source's hash,
# so checkouts with different versions do not rebuild each other's).
host_tool() {
    local src="$CARVEOUT_ROOT/scripts/$1.c" bin
    bin="$CARVEOUT_CACHE/bin/$1-$(sha256sum "$src" | cut -c1-16)"
    if [[ ! -x $bin ]]; then
        mkdir -p "$CARVEOUT_CACHE/bin"
        gcc -O2 -Wall -Wextra -Werror -o "$bin.$$" "$src" >&2 ||
            die "building scripts/$1.c failed" "apt-get install gcc"
        mv -f "$bin.$$" "$bin"
    fi
    echo "$bin"
}

log() { printf '[carveout] %s\n' "$*" >&2; }

die() {
    printf '[carveout] error: %s\n' "$1" >&2
    shift
    local hint
    for hint in "$@"; do
        printf '[carveout]   fix: %s\n' "$hint" >&2
    done
    exit 1
}

# Installs the Debian packages named that are not installed yet (as root), or stops saying
# which are missing. Idempotent: nothing happens when all are there.
ensure_debian_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]}" \
        "run as root, or: sudo apt-get install ${missing[*]}"
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
        die "apt-get update failed: the Debian package registry is not reachable" \
            "check the network and /etc/apt/sources.list*, then run again"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed" "run it by hand to see why"
}

# The directory the pinned kernel source is unpacked in (set by fetch-kernel.sh).
kernel_src_dir() {
    cat "$CARVEOUT_CACHE/kernel-src.path" 2>/dev/null || true
}
