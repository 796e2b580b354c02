#!/usr/bin/env bash
# Builds everything the guest runs and packs it into an initramfs (uncompressed cpio):
# busybox, /init, carveout.ko (against KDIR), the C test programs (one of them 32-bit) and the Rust tools
# (carveout-test, carveoutctl, carveout-bench, edu-dma, carveout-fuzz; static), and the
# documentation's examples marked `run` (scripts/readme-examples.sh). Prints the initramfs path.
#   usage: build-guest.sh KDIR OUTDIR
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

kdir=$1
out=$2
root="$out/initramfs"

# A kernel built with clang (CARVEOUT_LLVM=1) needs its modules built the same way.
llvm=()
grep -qx CONFIG_CC_IS_CLANG=y "$kdir/.config" && llvm=(LLVM="-$LLVM_VERSION")
log "building carveout.ko against $kdir${llvm[*]:+ with ${llvm[*]}}"
make -s -C "$CARVEOUT_ROOT" KDIR="$kdir" "${llvm[@]}" modules >&2 ||
    die "building carveout.ko failed (see above)"

log "building the guest test programs (static)"
mkdir -p "$out"
gcc -static -O2 -Wall -Wextra -Werror -I"$CARVEOUT_ROOT/include" \
    -o "$out/carveout_test" "$CARVEOUT_ROOT/userspace-test/c/carveout_test.c" ||
    die "building the C test program failed"
gcc -static -O2 -Wall -Wextra -Werror -I"$CARVEOUT_ROOT/include" \
    -o "$out/carveout_vfio" "$CARVEOUT_ROOT/userspace-test/c/carveout_vfio.c" ||
    die "building the C VFIO program failed"
# The iommufd program needs the test kernel's uapi headers (<linux/iommufd.h>, the VFIO cdev).
uapi=$("$CARVEOUT_ROOT/scripts/kernel-uapi.sh")
gcc -static -O2 -Wall -Wextra -Werror -I"$uapi" -I"$CARVEOUT_ROOT/include" \
    -o "$out/carveout_iommufd" "$CARVEOUT_ROOT/userspace-test/c/carveout_iommufd.c" ||
    die "building the C iommufd program failed"
# The 32-bit caller (case compat_32bit_caller): i386, static, through the kernel's compat layer.
gcc -m32 -static -O2 -Wall -Wextra -Werror -I"$CARVEOUT_ROOT/include" \
    -o "$out/carveout_compat32" "$CARVEOUT_ROOT/userspace-test/c/carveout_compat32.c" ||
    die "building the 32-bit C program failed" "apt-get install gcc-multilib"
cargo build --quiet --release --locked --target x86_64-unknown-linux-musl \
    --manifest-path "$CARVEOUT_ROOT/userspace-test/Cargo.toml" ||
    die "building the Rust test tool failed" "check that crates.io is reachable"

# The examples the guest runs (case readme_examples_run). One that does not build is not
# installed: the case then fails, naming it (run.list lists what was asked for).
examples=$out/readme-examples
"$CARVEOUT_ROOT/scripts/readme-examples.sh" --target x86_64-unknown-linux-musl --run-only \
    "$examples" >"$out/readme-examples.log" 2>&1 ||
    log "some documentation examples marked run do not build (see $out/readme-examples.log)"
mkdir -p "$examples"
touch "$examples/index.tsv" "$examples/run.list"
grep -P '\trun\t' "$examples/index.tsv" | cut -f1 >"$out/readme-examples.wanted" || true

rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$CARVEOUT_ROOT/qemu/guest/init" "$root/init"
mkdir -p "$root/lib/carveout"
install -m 0644 "$CARVEOUT_ROOT"/qemu/guest/*.sh "$root/lib/carveout/"
install -m 0644 "$CARVEOUT_ROOT/carveout.ko" "$root/lib/modules/carveout.ko"
install -m 0755 "$out/carveout_test" "$root/bin/carveout_test"
install -m 0755 "$out/carveout_vfio" "$root/bin/carveout_vfio"
install -m 0755 "$out/carveout_iommufd" "$root/bin/carveout_iommufd"
install -m 0755 "$out/carveout_compat32" "$root/bin/carveout_compat32"
for tool in carveout-test carveoutctl carveout-bench edu-dma carveout-fuzz; do
    install -m 0755 "$CARVEOUT_ROOT/userspace-test/target/x86_64-unknown-linux-musl/release/$tool" \
        "$root/bin/$tool"
done
mkdir -p "$root/lib/carveout/examples"
install -m 0644 "$out/readme-examples.wanted" "$root/lib/carveout/examples/wanted"
while IFS= read -r name; do
    install -m 0755 "$examples/bin/$name" "$root/lib/carveout/examples/$name"
done <"$examples/run.list"
# The installed system qemu/guest/47-installed.sh chroots into (make install DESTDIR=...).
"$CARVEOUT_ROOT/scripts/build-installed-root.sh" "$kdir" "$root/installed"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$out/initramfs.cpio"
echo "$out/initramfs.cpio"
