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
# pc; q35 for the guest with an IOMMU). Callers add the serial port and devices.
qemu_guest() {
    local accel=(-accel tcg -cpu max)
    [[ ${CARVEOUT_KVM:-0} == 1 ]] && accel=(-accel kvm -cpu host)
    # The array is the function's result (SC2034); QEMU's options are comma-separated (SC2054).
    # shellcheck disable=SC2034,SC2054
    qemu=(
        qemu-system-x86_64 -machine "${5:-pc}" "${accel[@]}" -m "$1" -smp 1
        -nodefaults -no-user-config -display none
        -kernel "$2" -initrd "$3" -append "$4"
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
    )
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
