#!/usr/bin/env bash
# Builds the root of an installed system for the guest (qemu/guest/47-installed.sh chroots into
# it): what `make install DESTDIR=ROOT` puts there for KDIR (the module under
# lib/modules/RELEASE/updates with depmod's files, the udev rule, the modprobe.d example,
# carveoutctl), plus the tools a user's system loads and applies them with: kmod's modprobe
# (this host's) and udevadm (Debian's udev package, downloaded once into the cache with
# apt-get download), each with the shared libraries it needs, and an /etc/group with the
# group the rule names.
#   usage: build-installed-root.sh KDIR ROOT
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

kdir=$1
root=$2

llvm=()
grep -qx CONFIG_CC_IS_CLANG=y "$kdir/.config" && llvm=(LLVM="-$LLVM_VERSION")

# udevadm from Debian's udev package, unpacked into the cache (apt-get download checks it
# against the signed index).
udev_cache=$CARVEOUT_CACHE/udev
# (Nothing, not a failure, before the package is unpacked: the first run on an empty cache.)
udevadm_in_cache() {
    [[ -d $udev_cache/root ]] || return 0
    find "$udev_cache/root" -name udevadm -type f -perm -u+x -print -quit
}
udevadm=$(udevadm_in_cache)
if [[ -z $udevadm ]]; then
    log "downloading Debian's udev package (udevadm for the guest; once)"
    rm -rf "$udev_cache"
    mkdir -p "$udev_cache/deb"
    (cd "$udev_cache/deb" && apt-get download -q udev >/dev/null 2>&1) ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
            (cd "$udev_cache/deb" && apt-get download -q udev >/dev/null 2>&1); } ||
        die "apt-get download udev failed" "check that the Debian package registry is reachable"
    dpkg-deb -x "$udev_cache"/deb/udev_*.deb "$udev_cache/root"
    udevadm=$(udevadm_in_cache)
    [[ -n $udevadm ]] || die "the udev package holds no udevadm"
fi

# copy_with_libs FILE DEST: FILE to ROOT/DEST, and each library ldd names for it to the same
# path under ROOT.
copy_with_libs() {
    local lib
    [[ $1 -ef $root/$2 ]] || install -D -m 0755 "$1" "$root/$2"
    ldd "$1" | grep -q 'not found' && die "$1 needs a library this host lacks: $(ldd "$1" | grep 'not found')"
    for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
        [[ -e $root/$lib ]] || install -D -m 0755 "$(realpath "$lib")" "$root/$lib"
    done
}

# The kernel's own lists, as a system with this kernel has them (depmod reads them).
rel=$(cat "$kdir/include/config/kernel.release")
rm -rf "$root"
mkdir -p "$root/lib/modules/$rel"
for f in modules.order modules.builtin modules.builtin.modinfo; do
    [[ ! -f $kdir/$f ]] || cp "$kdir/$f" "$root/lib/modules/$rel/"
done
make -s -C "$CARVEOUT_ROOT" install KDIR="$kdir" "${llvm[@]}" DESTDIR="$root" >&2 ||
    die "make install DESTDIR=$root failed"
rm -rf "$root/usr/local/share" "$root/usr/local/include"
copy_with_libs "$(realpath "$(command -v kmod)")" usr/bin/kmod
ln -s ../bin/kmod "$root/usr/sbin/modprobe" 2>/dev/null ||
    { mkdir -p "$root/usr/sbin" && ln -s ../bin/kmod "$root/usr/sbin/modprobe"; }
copy_with_libs "$udevadm" usr/bin/udevadm
copy_with_libs "$root/usr/local/bin/carveoutctl" usr/local/bin/carveoutctl
mkdir -p "$root"/{proc,sys,dev,run,tmp}
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
# What install-files.sh's groupadd --system gives on a system: a gid below 1000.
printf 'root:x:0:\ncarveout:x:990:\n' >"$root/etc/group"
