#!/usr/bin/env bash
# The case extmod_from_headers_package: the path a researcher takes on a real machine, on the
# small test configuration. Builds the test kernel's configuration as Debian packages
# (scripts/build-kernel-packages.sh, cached), unpacks the linux-headers package into a scratch
# root, builds carveout.ko from its DKMS sources against that directory alone, and boots the
# linux-image package's kernel with that module in QEMU (guest mode `extmod`).
# With --rpm, the case extmod_from_rpm_package: the same with RPM packages (make binrpm-pkg),
# as openSUSE and Fedora users take it: kernel-devel unpacked (rpm2cpio | cpio), the kernel
# package's lib/modules/RELEASE/vmlinuz booted.
#   usage: extmod.sh [--rpm] KDIR GUEST_OUT BASE SIZE
#     KDIR       the test kernel's build directory (its .config is the configuration)
#     GUEST_OUT  scripts/build-guest.sh's output directory (its initramfs tree is reused)
# Prints the case's result lines ("@@case ...", "# ...") for qemu/run.sh's report; everything
# else goes to stderr. A step that fails reports the case as not ok, saying which step.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/../scripts/common.sh"

format=deb
if [[ ${1:-} == --rpm ]]; then
    format=rpm
    shift
fi
kdir=$(realpath "$1")
guest=$(realpath "$2")
base=$3
size=$4
if [[ $format == rpm ]]; then
    name=extmod_from_rpm_package
    work=$guest/extmod-rpm
    pkg_args=(--rpm)
else
    name=extmod_from_headers_package
    work=$guest/extmod
    pkg_args=()
fi
exec 3>&1 1>&2

fail() {
    log "$name: $1"
    printf '# %s: %s\n@@case not ok %s\n' "$name" "$1" "$name" >&3
    exit 0
}

start=$SECONDS
pkgs=$("$CARVEOUT_ROOT/scripts/build-kernel-packages.sh" "${pkg_args[@]}" --config "$kdir/.config" \
    --seed "$kdir") ||
    fail "building the kernel packages failed (scripts/build-kernel-packages.sh, see above)"
rel=$(cat "$pkgs/kernel.release")
rm -rf "$work"
mkdir -p "$work/root" "$work/image"
if [[ $format == rpm ]]; then
    # RPM versions write the release's dashes as underscores.
    devel_pkg=$(find "$pkgs" -maxdepth 1 -name "kernel-devel-${rel//-/_}-*.rpm" -print -quit)
    image_pkg=$(find "$pkgs" -maxdepth 1 -name "kernel-${rel//-/_}-*.rpm" -print -quit)
    [[ -n $devel_pkg && -n $image_pkg ]] || fail "no kernel-devel/kernel package in $pkgs"
    (cd "$work/root" && rpm2cpio "$devel_pkg" | cpio -idm --quiet) ||
        fail "could not unpack $(basename "$devel_pkg")"
    (cd "$work/image" && rpm2cpio "$image_pkg" | cpio -idm --quiet) ||
        fail "could not unpack $(basename "$image_pkg")"
    headers=$work/root/usr/src/kernels/$rel
    vmlinuz=$work/image/lib/modules/$rel/vmlinuz
    [[ -L $work/root/lib/modules/$rel/build ]] ||
        fail "$(basename "$devel_pkg") has no lib/modules/$rel/build link"
else
    devel_pkg=$(find "$pkgs" -maxdepth 1 -name "linux-headers-${rel}_*.deb" -print -quit)
    image_pkg=$(find "$pkgs" -maxdepth 1 -name "linux-image-${rel}_*.deb" -print -quit)
    [[ -n $devel_pkg && -n $image_pkg ]] || fail "no linux-headers/linux-image package in $pkgs"
    dpkg-deb -x "$devel_pkg" "$work/root"
    dpkg-deb -x "$image_pkg" "$work/image"
    headers=$work/root/usr/src/linux-headers-$rel
    vmlinuz=$work/image/boot/vmlinuz-$rel
fi
[[ -f $headers/Makefile ]] || fail "$(basename "$devel_pkg") has no ${headers#"$work/root/"}"
[[ -f $vmlinuz ]] || fail "$(basename "$image_pkg") has no ${vmlinuz#"$work/image/"}"

# The module's DKMS source set, built the way DKMS builds it.
make -s -C "$CARVEOUT_ROOT" DESTDIR="$work/dkms" dkms-source >/dev/null ||
    fail "make dkms-source failed"
msrc=$(find "$work/dkms/usr/src" -maxdepth 1 -name 'carveout-*' -print -quit)
log "building carveout.ko against $headers alone"
make -s -C "$msrc" KDIR="$headers" modules ||
    fail "building carveout.ko against the unpacked $(basename "$devel_pkg") failed (see above)"
# Nothing of the build may come from the kernel's build or source tree: every dependency Kbuild
# recorded lies in the unpacked package, the module's sources or the toolchain.
leaks=$(find "$msrc" -name '.*.cmd' -exec grep -ho "$CARVEOUT_CACHE/[^ ]*" {} + | sort -u | head -n 5 ||
    true)
[[ -z $leaks ]] || fail "the module build used files outside the package: ${leaks//$'\n'/ }"
vermagic=$(modinfo -F vermagic "$msrc/carveout.ko")
[[ $vermagic == "$rel "* ]] || fail "carveout.ko has vermagic '$vermagic', the package's kernel is $rel"

rm -rf "$work/initramfs"
cp -a "$guest/initramfs" "$work/initramfs"
install -m 0644 "$msrc/carveout.ko" "$work/initramfs/lib/modules/carveout.ko"
(cd "$work/initramfs" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initramfs.cpio"

append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic "memmap=$size\$$base"
    cvt_mode=extmod "cvt_package=$format" "cvt_base=$base" "cvt_size=$size"
)
console=$work/console.log
text=$work/console.txt
log "booting the packaged kernel $rel with it (TCG); console: $console"
boot_case_guest "$name" "$vmlinuz" "$work/initramfs.cpio" "${append[*]}" "$console" "$text"
log "$name: $((SECONDS - start))s (packages, module, boot)"
why=$(case_unreported "$name" "$text" "the packaged kernel's guest")
[[ -z $why ]] || fail "$why"
