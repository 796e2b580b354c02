#!/usr/bin/env bash
# Debian's stock kernel, no kernel build: for a Debian headers directory whose kernel has
# CONFIG_RUST=y but whose package lacks the Rust build files (rust/*.rmeta, rust/*.so,
# scripts/target.json), makes them once and prints a directory to build carveout against:
#   KDIR=$(scripts/debian-stock-kdir.sh /lib/modules/$(uname -r)/build)
#   "$KDIR/carveout-run" make -C "$KDIR" M="$PWD" modules     (from the module's directory)
# carveout-run runs a command with the compilers the kernel was built with: directly on a host
# of the kernel's own Debian release, else inside a Debian root of that release (debootstrap,
# --variant=minbase) with $CARVEOUT_CACHE, the headers and the current directory bind-mounted
# at their own paths, in a mount namespace of its own (unshare: as root, or as a user where
# user namespaces are allowed). `"$KDIR/carveout-run" rustc --version` is the kernel's rustc.
#
# How, all cached under $CARVEOUT_CACHE/stock (minutes once, a second on every later call):
#   - the kernel's exact Debian version (include/generated/package.h) and release (+debNN:
#     the Debian release it belongs to); its linux-source-SERIES of that very version from
#     Debian's archive (private apt, as scripts/fetch-kernel.sh), unpacked
#   - the compilers its configuration names (CONFIG_CC_VERSION_TEXT, CONFIG_RUSTC_VERSION_TEXT,
#     CONFIG_BINDGEN_VERSION_TEXT) from that Debian release: the host's packages on that
#     release, else a root made with debootstrap ($CARVEOUT_CACHE/stock/root-CODENAME)
#   - Debian's .config from the headers; `make olddefconfig` must leave it unchanged (the same
#     compilers, pahole, openssl), then `make prepare` in $CARVEOUT_CACHE/stock/RELEASE/build
#   - before every use: the compilers' version strings equal the configuration's, and the Rust
#     exports the build generated (rust/exports_*_generated.h) equal the Rust entries (_R*,
#     rust_helper_*) of the kernel's Module.symvers: the names a module links against are the
#     ones the running kernel exports
#   - the printed directory ($CARVEOUT_CACHE/stock/RELEASE/kdir): the headers' own files
#     (symlinks), their Makefile pointed at it, plus rust/*.rmeta, rust/*.so and
#     scripts/target.json from the build, and carveout-run
# Any mismatch stops with one line naming it; nothing is used half-made.
#   usage: debian-stock-kdir.sh KDIR     (KDIR: Debian's linux-headers-RELEASE directory)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

headers=$(realpath "${1:?usage: debian-stock-kdir.sh KDIR}")
conf=$headers/.config
[[ -f $conf && -f $headers/include/config/auto.conf ]] ||
    die "$headers is not a kernel headers directory (no .config, include/config/auto.conf)"
grep -qx 'CONFIG_RUST=y' "$conf" || die "the kernel of $headers is built without CONFIG_RUST"
release=$(cat "$headers/include/config/kernel.release")
version=$(sed -n 's/^#define LINUX_PACKAGE_ID " *Debian \(.*\)"$/\1/p' \
    "$headers/include/generated/package.h" 2>/dev/null || true)
[[ -n $version ]] || die "$headers is not a Debian kernel's (no Debian version in include/generated/package.h)"
debnum=$(sed -n 's/^[0-9.]*+deb\([0-9]*\)-.*/\1/p' <<<"$release")
case $debnum in
12) codename=bookworm ;;
13) codename=trixie ;;
14) codename=forky ;;
*) die "kernel release $release: no +debNN naming a Debian release this script knows" ;;
esac
series=$(sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p' <<<"$release")

conf_text() { sed -n "s/^CONFIG_$1=\"\(.*\)\"\$/\1/p" "$conf"; }
want_cc=$(conf_text CC_VERSION_TEXT)
want_rustc=$(conf_text RUSTC_VERSION_TEXT)
want_bindgen=$(conf_text BINDGEN_VERSION_TEXT)
cc=${want_cc%% *}
gcc_pkg=$(sed -n 's/^.*-\(gcc-[0-9]*\)$/\1/p' <<<"$cc")
[[ -n $gcc_pkg && -n $want_rustc && -n $want_bindgen ]] ||
    die "$conf names no gcc-N compiler, rustc or bindgen (CONFIG_CC/RUSTC/BINDGEN_VERSION_TEXT)"
llvm=$LLVM_VERSION
packages=(rustc rust-src bindgen "libclang-$llvm-dev" "$gcc_pkg" libc6-dev make bc flex bison
    libelf-dev libssl-dev openssl pahole kmod xz-utils python3)

stock=$CARVEOUT_CACHE/stock
work=$stock/$release
build=$work/build
kdir=$work/kdir
# The host's own compilers on a host of the kernel's Debian release, else a root of that release.
root=$stock/root-$codename
[[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") != "$codename" ]] || root=""

# The headers' parts a build reads: the directory itself, the -common directory its Makefile
# includes (by absolute path: an unpacked, not installed, package has it next to itself) and
# linux-kbuild's scripts behind its `scripts` link.
common=$(sed -n 's|^include \(.*\)/Makefile$|\1|p' "$headers/Makefile")
[[ -d $common ]] || common=$(dirname "$headers")/$(basename "$common")
[[ -f $common/Makefile ]] || die "$headers/Makefile includes $common/Makefile, which is missing" \
    "install linux-headers-$release's dependencies (linux-headers-*-common, linux-kbuild-*)"
kbuild=$(realpath "$headers/scripts/..")
binds=("$CARVEOUT_CACHE" "$headers" "$common" "$kbuild")

# in_root CMD...: CMD with the kernel's compilers, in $PWD.
in_root() {
    if [[ -z $root ]]; then
        "$@"
    else
        "$kdir.run" "$@"
    fi
}

# write_runner FILE: the command runner (see the top): written first, for in_root, then into
# the kdir.
write_runner() {
    local file=$1
    {
        echo '#!/bin/bash'
        echo "# carveout: runs a command with the compilers of Debian's $release kernel, in the"
        echo "# current directory (written by scripts/debian-stock-kdir.sh)."
        echo 'set -euo pipefail'
        if [[ -z $root ]]; then
            echo 'exec "$@"'
        else
            echo "# Inside the Debian $codename root, in a mount namespace of its own, with the carveout"
            echo "# cache, the headers, the current directory and \$CARVEOUT_BIND (colon-separated)"
            echo "# bind-mounted at their own paths."
            printf 'root=%q\n' "$root"
            printf 'binds=(%s)\n' "$(printf '%q ' "${binds[@]}")"
            cat <<'EOF2'
if [[ ${1:-} != --in-namespace ]]; then
    ns=(--user --map-root-user --mount)
    ((EUID != 0)) || ns=(--mount --propagation private)
    exec unshare "${ns[@]}" "$0" --in-namespace "$@"
fi
shift
IFS=: read -ra extra <<<"${CARVEOUT_BIND:-}"
for dir in /proc /dev "${binds[@]}" "$PWD" "${extra[@]}"; do
    [[ -d $dir ]] || continue
    mkdir -p "$root$dir"
    mount --rbind "$dir" "$root$dir"
done
exec chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$PWD" "$@"
EOF2
        fi
    } >"$file.tmp"
    chmod 0755 "$file.tmp"
    mv -f "$file.tmp" "$file"
}

# The Debian root with the compilers, made once (root-CODENAME.ready lists its packages).
make_root() {
    local ready=$root.ready
    [[ -f $ready && $(cat "$ready") == "${packages[*]}" ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "making the Debian $codename root needs root (once)" \
        "run this once as root: sudo $0 $headers"
    ensure_debian_packages debootstrap
    if [[ ! -x $root/usr/bin/apt-get ]]; then
        log "making a Debian $codename root for its compilers (debootstrap, about a minute, once): $root"
        rm -rf "$root.tmp"
        debootstrap --variant=minbase "$codename" "$root.tmp" "$(debian_mirror)" \
            >"$stock/debootstrap.log" 2>&1 ||
            die "debootstrap $codename failed (see $stock/debootstrap.log)"
        mv "$root.tmp" "$root"
    fi
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    log "installing ${packages[*]} in the $codename root (about 2 minutes, once)"
    # shellcheck disable=SC2016 # expanded by that shell
    unshare --mount --propagation private sh -euc '
        for dir in /proc /dev; do mount --rbind "$dir" "$1$dir"; done
        chroot "$1" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install \
            -y -q --no-install-recommends $2"' sh "$root" "${packages[*]}" \
        >"$stock/root-install.log" 2>&1 ||
        die "installing the compilers in the $codename root failed (see $stock/root-install.log)"
    echo "${packages[*]}" >"$ready"
}

# The compilers are the configuration's: one line naming the first that differs.
check_compilers() {
    local have
    have=$(in_root "$cc" --version 2>/dev/null | head -n 1) || have="no $cc"
    [[ $have == "$want_cc" ]] || die "compiler mismatch: $cc is '$have', the kernel was built with '$want_cc'"
    have=$(in_root rustc --version 2>/dev/null) || have="no rustc"
    [[ $have == "$want_rustc" ]] || die "rustc mismatch: '$have', the kernel was built with '$want_rustc'"
    have=$(in_root bindgen --version 2>/dev/null) || have="no bindgen"
    [[ $have == "$want_bindgen" ]] || die "bindgen mismatch: '$have', the kernel was built with '$want_bindgen'"
}

# The Rust exports the build generated are the kernel's: every one is in Module.symvers, and
# every Rust-mangled (_R*) or Rust helper (rust_helper_*) name there is one of them.
check_exports() {
    local ours theirs missing extra
    ours=$(sed -n 's/^EXPORT_SYMBOL_RUST_GPL(\(.*\));$/\1/p' "$build"/rust/exports_*_generated.h | sort -u)
    [[ -n $ours ]] || die "Rust export mismatch: the build generated none ($build/rust/exports_*_generated.h)"
    theirs=$(awk '{print $2}' "$headers/Module.symvers" | sort -u)
    missing=$(comm -23 <(echo "$ours") <(echo "$theirs"))
    extra=$(comm -13 <(echo "$ours") <(grep -E '^(_R|rust_helper_)' <<<"$theirs"))
    [[ -z $missing ]] || die "Rust export mismatch: $(wc -l <<<"$missing") of the build's Rust exports are not in $headers/Module.symvers (first: $(head -n 1 <<<"$missing"))"
    [[ -z $extra ]] || die "Rust export mismatch: $(wc -l <<<"$extra") Rust exports of $headers/Module.symvers are not the build's (first: $(head -n 1 <<<"$extra"))"
    wc -l <<<"$ours"
}

mkdir -p "$work"
# One at a time (two DKMS builds, make and make install): they share the root and the tree.
exec 9>"$stock/.lock"
flock 9
if [[ -n $root ]]; then
    make_root
    write_runner "$kdir.run"
else
    ensure_debian_packages "${packages[@]}"
fi
check_compilers

if [[ ! -f $work/prepared || $(cat "$work/prepared") != "$version" ]]; then
    private_apt_init "$stock/apt" "$codename" "$codename-updates" "$codename-security" "$codename-backports"
    deb=$(debian_download "$CARVEOUT_CACHE/deb" "linux-source-$series=$version")
    src=$(unpack_linux_source "$deb" "$version")
    export CARVEOUT_BIND=$src
    rm -rf "$build" "$kdir"
    mkdir -p "$build"
    cp "$conf" "$build/.config"
    kmake=(make -C "$src" O="$build" CROSS_COMPILE="${cc%gcc-*}" CC="$cc" -j"$(nproc)")
    log "configuring Debian's $release configuration in $build"
    (cd "$build" && in_root "${kmake[@]}" -s olddefconfig) >"$work/prepare.log" 2>&1 ||
        die "make olddefconfig failed (see $work/prepare.log)"
    if ! cmp -s "$conf" "$build/.config"; then
        die "configuration mismatch: make olddefconfig changed Debian's .config ($(diff "$conf" "$build/.config" |
            grep -m1 '^[<>] [C#]' || true)); see diff $conf $build/.config"
    fi
    log "make prepare for $release (Rust crates and exports; about 5 minutes on 2 cores, once)"
    (cd "$build" && in_root "${kmake[@]}" prepare) >>"$work/prepare.log" 2>&1 || {
        tail -n 20 "$work/prepare.log" >&2
        die "make prepare failed (see $work/prepare.log)"
    }
    echo "$version" >"$work/prepared"
    unset CARVEOUT_BIND
fi
for f in include/generated/rustc_cfg include/generated/autoconf.h; do
    cmp -s "$headers/$f" "$build/$f" || die "mismatch: $f of the build differs from the headers' ($build)"
done
nexports=$(check_exports)

# The directory to build against: the headers (links), a Makefile of its own and the Rust files.
if [[ ! -f $kdir/.ready || $(cat "$kdir/.ready") != "$headers" ]]; then
    rm -rf "$kdir"
    mkdir -p "$kdir/rust" "$kdir/scripts"
    for entry in "$headers"/* "$headers"/.config "$headers"/.kernelvariables; do
        case ${entry##*/} in Makefile | scripts | rust) continue ;; esac
        [[ -e $entry ]] && ln -s "$entry" "$kdir/${entry##*/}"
    done
    for entry in "$headers"/scripts/*; do
        ln -s "$entry" "$kdir/scripts/${entry##*/}"
    done
    [[ -e $headers/rust ]] && for entry in "$headers"/rust/*; do
        ln -s "$entry" "$kdir/rust/${entry##*/}"
    done
    cp "$build"/rust/*.rmeta "$build"/rust/*.so "$kdir/rust/"
    cp "$build/scripts/target.json" "$kdir/scripts/"
    printf 'KBUILD_OUTPUT=%s\ninclude %s/Makefile\n' "$kdir" "$common" >"$kdir/Makefile"
    write_runner "$kdir/carveout-run"
    echo "$headers" >"$kdir/.ready"
fi
log "Debian $version ($release): Rust build files made and checked ($want_rustc, $nexports Rust exports as in Module.symvers)${root:+; builds run in $root}"
echo "$kdir"
