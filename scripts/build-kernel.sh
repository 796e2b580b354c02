#!/usr/bin/env bash
# Builds the QEMU test kernel: tinyconfig + qemu/kernel.config, into a cache
# directory keyed by the kernel version and the fragment's hash, so an
# unchanged kernel is never rebuilt. Prints the build directory.
#   usage: build-kernel.sh [FRAGMENT...]   (default: qemu/kernel.config)
# CARVEOUT_LLVM=1 builds with clang/lld $LLVM_VERSION (LLVM=-$LLVM_VERSION), which KASAN with Rust
# needs; modules for that kernel must be built the same way (scripts/build-guest.sh does).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

fragments=("$@")
((${#fragments[@]})) || fragments=("$CARVEOUT_ROOT/qemu/kernel.config")

src=$("$CARVEOUT_ROOT/scripts/fetch-kernel.sh")
version=$(cat "$CARVEOUT_CACHE/kernel-src.version")
llvm=()
[[ ${CARVEOUT_LLVM:-0} == 1 ]] && llvm=(LLVM="-$LLVM_VERSION")
key=$(if ((${#llvm[@]})); then echo "${llvm[*]}"; fi | cat "${fragments[@]}" - | sha256sum | cut -c1-12)
out="$CARVEOUT_CACHE/kernel/$version-$key"

if [[ -f $out/arch/x86/boot/bzImage && -f $out/.carveout-built ]]; then
    echo "$out"
    exit 0
fi

mkdir -p "$out"
kmake=(make -C "$src" O="$out" ARCH=x86_64 "${llvm[@]}" -j"$(nproc)")
"${kmake[@]}" -s rustavailable >&2 ||
    die "the kernel does not accept this Rust toolchain (see above)" \
        "run scripts/setup-host.sh; check LIBCLANG_PATH=$LIBCLANG_PATH"

log "configuring kernel $version (fragment hash $key)"
"${kmake[@]}" -s tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${fragments[@]}" >/dev/null
"${kmake[@]}" -s olddefconfig >/dev/null

# Every option the fragments ask for must have survived olddefconfig.
for frag in "${fragments[@]}"; do
    while IFS= read -r line; do
        case $line in
        CONFIG_*=*) grep -qx -- "$line" "$out/.config" ||
            die "kernel option not applied: $line (its dependencies are missing?)" \
                "edit $frag" ;;
        "# CONFIG_"*" is not set")
            name=${line#\# }
            name=${name%% *}
            ! grep -q "^$name=" "$out/.config" ||
                die "kernel option not disabled: $name" "edit $frag" ;;
        esac
    done <"$frag"
done

log "building kernel $version${llvm[*]:+ with ${llvm[*]}} in $out (about 8 minutes on 2 cores, once)"
"${kmake[@]}" -s bzImage modules >"$out/build.log" 2>&1 || {
    tail -n 30 "$out/build.log" >&2
    die "kernel build failed; full log: $out/build.log"
}
touch "$out/.carveout-built"
log "kernel ready: $out/arch/x86/boot/bzImage"
echo "$out"
