#!/usr/bin/env bash
# Fetches Debian's linux-source-$KERNEL_SERIES from $KERNEL_SUITE with a private
# apt configuration (own sources file, lists and cache: the system's apt setup
# is neither read for sources nor changed), verifies it and unpacks it into the
# cache. Prints the unpacked directory; records it and the exact version.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

apt_root="$CARVEOUT_CACHE/apt"
pkg="linux-source-$KERNEL_SERIES"

stamp="$CARVEOUT_CACHE/kernel-src.path"
if [[ -f $stamp && -f $(cat "$stamp")/Makefile ]]; then
    cat "$stamp"
    exit 0
fi

private_apt_init "$apt_root" "$KERNEL_SUITE"
version=$(apt-cache "${private_apt[@]}" -o "APT::Default-Release=$KERNEL_SUITE" show "$pkg" \
    2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -n 1)
[[ -n $version ]] || die "$pkg is not in $KERNEL_SUITE" \
    "set KERNEL_SERIES to a series that $KERNEL_SUITE carries"

deb=$(debian_download "$CARVEOUT_CACHE/deb" "$pkg=$version")
src=$(unpack_linux_source "$deb" "$version")
echo "$version" >"$CARVEOUT_CACHE/kernel-src.version"
echo "$src" >"$stamp"
log "kernel source: Debian $pkg $version ($(make -s -C "$src" kernelversion))"
echo "$src"
