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

# The Debian mirror this machine already uses (no host is hard-coded here).
debian_mirror() {
    if [[ -n ${CARVEOUT_DEBIAN_MIRROR:-} ]]; then
        echo "$CARVEOUT_DEBIAN_MIRROR"
        return
    fi
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources |
        awk '{print $2}' | grep -v -- '-security' | grep '/debian/\?$' | head -n 1 || true)
    [[ -n $uri ]] || uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
        awk '{print $2}' | grep -v -- '-security' | grep '/debian/\?$' | head -n 1 || true)
    if [[ -z $uri ]]; then
        # An Ubuntu (or other Debian-derived) host: its mirrors do not carry Debian's suites.
        uri=https://deb.debian.org/debian
        log "no Debian mirror in /etc/apt/sources.list* (an Ubuntu host?): using $uri" \
            "(set CARVEOUT_DEBIAN_MIRROR for another)"
    fi
    echo "$uri"
}

# apt options that confine apt to $apt_root.
private_apt=(
    -o "Dir::State=$apt_root/state"
    -o "Dir::State::Lists=$apt_root/lists"
    -o "Dir::State::status=$apt_root/state/status"
    -o "Dir::Cache=$apt_root/cache"
    -o "Dir::Etc::SourceList=$apt_root/sources.list"
    -o "Dir::Etc::SourceParts=$apt_root/sources.list.d"
    -o "Dir::Etc::Preferences=$apt_root/preferences"
    -o "Dir::Etc::PreferencesParts=$apt_root/preferences.d"
    -o "APT::Default-Release=$KERNEL_SUITE"
    -o "APT::Sandbox::User=root"
)

stamp="$CARVEOUT_CACHE/kernel-src.path"
if [[ -f $stamp && -f $(cat "$stamp")/Makefile ]]; then
    cat "$stamp"
    exit 0
fi

# Debian's archive key (on Ubuntu too: its package debian-archive-keyring).
ensure_debian_packages debian-archive-keyring
mkdir -p "$apt_root"/{state,lists/partial,cache/archives/partial,sources.list.d,preferences.d}
: >"$apt_root/state/status"
: >"$apt_root/preferences"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f /usr/share/keyrings/debian-archive-trixie-automatic.gpg ]] &&
    keyring=/usr/share/keyrings/debian-archive-trixie-automatic.gpg
printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$(debian_mirror)" "$KERNEL_SUITE" \
    >"$apt_root/sources.list"

log "fetching the $KERNEL_SUITE package index (private apt state in $apt_root)"
apt-get "${private_apt[@]}" update -q >"$apt_root/update.log" 2>&1 ||
    die "apt-get update for $KERNEL_SUITE failed (see $apt_root/update.log)" \
        "check that the Debian package registry is reachable" \
        "if the archive key is unknown: apt-get install debian-archive-keyring"

version=$(apt-cache "${private_apt[@]}" show "$pkg" 2>/dev/null |
    awk '/^Version:/ {print $2}' | sort -V | tail -n 1)
[[ -n $version ]] || die "$pkg is not in $KERNEL_SUITE" \
    "set KERNEL_SERIES to a series that $KERNEL_SUITE carries"

dl="$CARVEOUT_CACHE/deb"
mkdir -p "$dl"
deb=$(find "$dl" -maxdepth 1 -name "${pkg}_${version//:/%3a}_*.deb" -print -quit)
if [[ -z $deb ]]; then
    log "downloading $pkg $version"
    # apt-get download checks the package against the signed index's hash.
    (cd "$dl" && apt-get "${private_apt[@]}" download -q "$pkg=$version" >/dev/null) ||
        die "apt-get download $pkg=$version failed"
    deb=$(find "$dl" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
fi

work="$CARVEOUT_CACHE/src/$version"
rm -rf "$work"
mkdir -p "$work"
log "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$work/deb"
tarball=$(find "$work/deb/usr/src" -maxdepth 1 -name "$pkg.tar.*" -print -quit)
[[ -n $tarball ]] || die "no $pkg.tar.* inside $(basename "$deb")"
tar -xf "$tarball" -C "$work"
rm -rf "$work/deb"
src="$work/$pkg"
[[ -f $src/Makefile ]] || die "unpacked tarball has no $pkg/Makefile"
echo "$version" >"$CARVEOUT_CACHE/kernel-src.version"
echo "$src" >"$stamp"
log "kernel source: Debian $pkg $version ($(make -s -C "$src" kernelversion))"
echo "$src"
