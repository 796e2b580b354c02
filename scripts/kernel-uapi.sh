#!/usr/bin/env bash
# The pinned kernel's userspace API headers (make headers_install of its source), for the guest
# programs that use interfaces newer than the host's linux-libc-dev (Debian 12's 6.1 has no
# <linux/iommufd.h>, and its <linux/vfio.h> no VFIO device cdev). Installed once into
# $CARVEOUT_CACHE/uapi/VERSION; prints the include directory (put it first: -I DIR).
#   usage: kernel-uapi.sh
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

src=$("$CARVEOUT_ROOT/scripts/fetch-kernel.sh")
version=$(cat "$CARVEOUT_CACHE/kernel-src.version")
out="$CARVEOUT_CACHE/uapi/$version"

if [[ -f $out/.carveout-installed ]]; then
    echo "$out/include"
    exit 0
fi

log "installing kernel $version's uapi headers in $out"
rm -rf "$out"
mkdir -p "$out/build"
make -s -C "$src" O="$out/build" ARCH=x86_64 INSTALL_HDR_PATH="$out" headers_install >&2 ||
    die "make headers_install of $src failed (see above)"
rm -rf "$out/build"
[[ -f $out/include/linux/iommufd.h ]] || die "no linux/iommufd.h among $out's headers"
touch "$out/.carveout-installed"
echo "$out/include"
