#!/usr/bin/env bash
# Installs what building and testing carveout needs, and only what is missing.
# Idempotent: a second run changes nothing and takes a few seconds.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

packages=(
    build-essential bc bison flex cpio kmod libelf-dev libssl-dev
    "libclang-${LLVM_VERSION}-dev" "clang-${LLVM_VERSION}"
    # The debug kernel (make test-debug) is built with LLVM=-$LLVM_VERSION: lld, llvm-ar, ...
    "lld-${LLVM_VERSION}" "llvm-${LLVM_VERSION}"
    qemu-system-x86 busybox-static xz-utils zstd shellcheck
    dpkg-dev debhelper
    # The 32-bit caller of the compat_ioctl case (gcc -m32 -static); the DKMS case's dkms.
    gcc-multilib dkms
)

ensure_debian_packages "${packages[@]}"

command -v rustup >/dev/null ||
    die "rustup not found" "install Rust with rustup (https://rustup.rs), then run again"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    log "adding rustup component rust-src"
    rustup component add rust-src >/dev/null ||
        die "rustup component add rust-src failed" "check that crates.io/rustup is reachable"
fi
if ! rustup target list --installed 2>/dev/null | grep -q '^x86_64-unknown-linux-musl$'; then
    log "adding rustup target x86_64-unknown-linux-musl (static guest binaries)"
    rustup target add x86_64-unknown-linux-musl >/dev/null ||
        die "rustup target add x86_64-unknown-linux-musl failed"
fi

if [[ $(bindgen --version 2>/dev/null || true) != "bindgen $BINDGEN_VERSION" ]]; then
    log "installing bindgen-cli $BINDGEN_VERSION (a few minutes, once)"
    cargo install --quiet --locked --version "$BINDGEN_VERSION" bindgen-cli ||
        die "cargo install bindgen-cli $BINDGEN_VERSION failed" \
            "check that crates.io is reachable"
fi

[[ -e $LIBCLANG_PATH/libclang.so ]] || [[ -e $LIBCLANG_PATH/libclang-${LLVM_VERSION}.so ]] ||
    die "libclang not found in $LIBCLANG_PATH (the kernel's Rust support needs libclang >= 17)" \
        "apt-get install libclang-${LLVM_VERSION}-dev, or set LIBCLANG_PATH"

log "host ready: $(rustc --version), $(bindgen --version), libclang ${LLVM_VERSION}"
