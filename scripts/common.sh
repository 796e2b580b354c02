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

# The directory the pinned kernel source is unpacked in (set by fetch-kernel.sh).
kernel_src_dir() {
    cat "$CARVEOUT_CACHE/kernel-src.path" 2>/dev/null || true
}
