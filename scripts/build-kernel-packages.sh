#!/usr/bin/env bash
# Builds a kernel with Rust enabled as installable Debian packages (make bindeb-pkg) or RPM
# packages (make binrpm-pkg, for openSUSE and Fedora), from Debian's linux-source-$KERNEL_SERIES
# (fetched from the host's Debian mirror, or deb.debian.org on an Ubuntu host), on a Debian or
# Ubuntu build machine, as root (what it needs is installed first: scripts/setup-host.sh),
# and adds to the headers package (linux-headers-*.deb, kernel-devel-*.rpm) the Rust build
# files an external Rust module needs (Linux's install-extmod-build copies none of them).
#
#   usage: build-kernel-packages.sh [--rpm] [--config FILE] [--localversion STR] [--with-dbg]
#                                   [--seed KDIR]
#
#   --rpm                RPM packages instead of Debian packages (rpmbuild: the Debian package
#                        rpm, installed when missing); the same build tree and cache directory
#
#   --config FILE        the configuration to start from (default: /boot/config-$(uname -r),
#                        the running kernel's); CONFIG_RUST=y is forced and what Rust needs
#                        resolved
#   --localversion STR   appended to the kernel release (default: -rust)
#   --with-dbg           also build the linux-image-*-dbg (kernel-debuginfo) package (large)
#   --seed KDIR          start a new build tree from a copy of KDIR, a compiled build of the
#                        same source and (nearly) the same configuration: Kbuild then recompiles
#                        only what the differences touch (qemu/extmod.sh seeds from the test
#                        kernel, whose configuration it packages)
#
# The packages land in a cache directory keyed by the kernel version, the configuration and
# the options, so an unchanged request is never rebuilt. Prints that directory; it holds
# linux-image-*.deb, linux-headers-*.deb (with the Rust build files) and linux-libc-dev*.deb,
# and with --rpm kernel-*.rpm, kernel-devel-*.rpm (with the Rust build files) and
# kernel-headers-*.rpm. Debian and RPM packages of one configuration share the kernel build.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

config=/boot/config-$(uname -r)
localversion=-rust
with_dbg=0
format=deb
seed=""
while (($#)); do
    case $1 in
    --rpm) format=rpm; shift ;;
    --seed) seed=${2:?--seed needs a kernel build directory}; shift 2 ;;
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --localversion) localversion=${2?--localversion needs a value}; shift 2 ;;
    --with-dbg) with_dbg=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" "see $0 --help" ;;
    esac
done

[[ -r $config ]] || die "kernel configuration $config not found" \
    "pass one with --config FILE (e.g. a distribution kernel's /boot/config-*)"

# What building the kernel needs (the compilers, rustup's Rust and bindgen, libclang), as for
# the test kernel; then what a package build needs on top: the build dependencies the
# kernel's generated debian/control declares, and pahole for configurations with BTF.
"$CARVEOUT_ROOT/scripts/setup-host.sh" ||
    die "setting up the build host failed (scripts/setup-host.sh, see above)"
needs=(dpkg-dev debhelper libdw-dev rsync python3)
grep -q '^CONFIG_DEBUG_INFO_BTF=y' "$config" && needs+=(dwarves)
# rpm brings rpmbuild, rpm2cpio (to repack kernel-devel) and debugedit (kernel-debuginfo).
[[ $format == deb ]] || needs+=(rpm rpm2cpio cpio)
ensure_debian_packages "${needs[@]}"

src=$("$CARVEOUT_ROOT/scripts/fetch-kernel.sh")
version=$(cat "$CARVEOUT_CACHE/kernel-src.version")
key=$({
    cat "$config"
    echo "localversion=$localversion dbg=$with_dbg"
} | sha256sum | cut -c1-12)
out="$CARVEOUT_CACHE/kernel-deb/$version-$key"
build="$out/build"

# What add_rust_build_files adds; bump it when that changes, so that cached packages get the
# new contents without a kernel rebuild.
additions=1
# The markers of a finished build and of a finished repack, per format (the Debian ones keep
# the names they had before RPM packages existed).
built_marker=$out/.carveout-built
packaged_marker=$out/.carveout-packaged
if [[ $format == rpm ]]; then
    built_marker=$out/.carveout-built-rpm
    packaged_marker=$out/.carveout-packaged-rpm
fi
# zstd: seconds where xz takes minutes (dpkg reads it since 1.21.18: Debian 12 and later).
compress=zstd

# Adds to the headers package rust/*.rmeta, the proc-macro libraries (rust/*.so) and, with
# inline helpers, the helpers' bitcode: the crates an external module links against (the
# target spec, scripts/target.json, is already in it). Also .config, which DKMS reads for
# BUILD_EXCLUSIVE_CONFIG, as in Debian's own headers packages. Repacking twice is harmless.
# copy_rust_build_files DIR: copies them into DIR, an unpacked package's kernel build tree;
# sets `files` to what it copied.
copy_rust_build_files() {
    local dir=$1
    [[ -f $dir/scripts/target.json ]] ||
        die "the headers package has no scripts/target.json (the Rust target spec)" \
            "is CONFIG_RUST=y in $build/.config?"
    files=("$build/.config" "$build"/rust/*.rmeta "$build"/rust/*.so)
    grep -q '^CONFIG_RUST_INLINE_HELPERS=y' "$build/include/config/auto.conf" &&
        files+=("$build/rust/helpers/helpers_module.bc")
    [[ -f $build/rust/libkernel.rmeta ]] ||
        die "$build/rust has no libkernel.rmeta: the kernel build made no Rust crates" \
            "see $out/build.log"
    tar -cf - -C "$build" "${files[@]#"$build/"}" | tar -xf - -C "$dir"
}

add_rust_build_files() {
    local deb=$1 rel=$2 tmp files
    tmp="$out/headers-repack"
    rm -rf "$tmp"
    dpkg-deb -R "$deb" "$tmp"
    copy_rust_build_files "$tmp/usr/src/linux-headers-$rel"
    # Keep the package consistent: checksums and the installed size.
    (cd "$tmp" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
        xargs -0 md5sum) >"$tmp/DEBIAN/md5sums"
    sed -i "s/^Installed-Size: .*/Installed-Size: $(du -sk --exclude=DEBIAN "$tmp" | cut -f1)/" \
        "$tmp/DEBIAN/control"
    dpkg-deb --root-owner-group -Z"$compress" -b "$tmp" "$deb.new" >/dev/null
    mv "$deb.new" "$deb"
    rm -rf "$tmp"
    log "added the Rust build files (${#files[@]} files) to $(basename "$deb")"
}

# rpm_field RPM FORMAT: a field of a package file (rpm --queryformat).
rpm_field() { rpm -qp --queryformat "$2" "$1" 2>/dev/null; }

# The same for kernel-devel-*.rpm: unpacked (rpm2cpio), the files added under
# usr/src/kernels/RELEASE, and packed again by rpmbuild under the original's name, version,
# release, architecture, summary and description, owning the same paths (its %files: the
# build tree and the lib/modules/RELEASE/build link; rpmbuild adds the build-id links as it did
# for the original). Checks that the new package lists every file of the old one and provides
# the same.
add_rust_build_files_rpm() {
    local rpm=$1 rel=$2 tmp tree arch spec new files tag value
    tmp="$out/devel-repack"
    tree=$tmp/tree
    rm -rf "$tmp"
    mkdir -p "$tree" "$tmp/rpmbuild"
    (cd "$tree" && rpm2cpio "$rpm" | cpio -idm --quiet) ||
        die "could not unpack $(basename "$rpm") (rpm2cpio | cpio)"
    copy_rust_build_files "$tree/usr/src/kernels/$rel"
    # rpmbuild makes the build-id links of the package's ELF files again (and for the added
    # proc-macro libraries), as it did for the original.
    rm -rf "$tree/usr/lib/.build-id"
    rmdir -p "$tree/usr/lib" 2>/dev/null || true
    arch=$(rpm_field "$rpm" '%{ARCH}')
    spec=$tmp/kernel-devel.spec
    {
        for tag in Name Version Release Summary License Group Vendor URL; do
            value=$(rpm_field "$rpm" "%{$tag}")
            [[ $value == "(none)" ]] || echo "$tag: $value"
        done
        echo "AutoReqProv: no"
        echo "%description"
        rpm_field "$rpm" '%{DESCRIPTION}'
        echo
        echo "With the Rust build files an external Rust module needs (carveout's"
        echo "scripts/build-kernel-packages.sh)."
        echo "%install"
        echo "cp -a '$tree/.' %{buildroot}/"
        echo "%files"
        echo "%defattr (-, root, root)"
        echo "/usr/src/kernels/$rel"
        echo "/lib/modules/$rel/build"
    } >"$spec"
    # Nothing rewritten on the way in (no stripping, no debuginfo package).
    rpmbuild -bb --quiet --target "$arch-linux" --define "_topdir $tmp/rpmbuild" \
        --define 'debug_package %{nil}' \
        --define '__os_install_post %{nil}' --define '__arch_install_post %{nil}' \
        "$spec" >"$tmp/rpmbuild.log" 2>&1 || {
        tail -n 20 "$tmp/rpmbuild.log" >&2
        die "rpmbuild could not pack kernel-devel again; log: $tmp/rpmbuild.log"
    }
    new=$(find "$tmp/rpmbuild/RPMS" -name '*.rpm' -print -quit)
    [[ -n $new ]] || die "rpmbuild made no package; log: $tmp/rpmbuild.log"
    if [[ -n $(comm -23 <(rpm -qlp "$rpm" | sort) <(rpm -qlp "$new" | sort)) ]]; then
        die "the repacked $(basename "$rpm") lacks files of the original"
    fi
    if [[ $(rpm -qp --provides "$rpm" | sort) != "$(rpm -qp --provides "$new" | sort)" ]]; then
        die "the repacked $(basename "$rpm") provides other capabilities than the original"
    fi
    mv "$new" "$rpm"
    rm -rf "$tmp"
    log "added the Rust build files (${#files[@]} files) to $(basename "$rpm")"
}

# One build per directory at a time: others sharing the cache wait for it and reuse it.
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [[ $(cat "$packaged_marker" 2>/dev/null) == "$additions" ]]; then
    echo "$out"
    exit 0
fi

# Configures and builds the kernel packages into $out; records the kernel release.
build_packages() {
    local kmake cfg opt profiles rel start rpms
    if [[ -n $seed && ! -e $build ]]; then
        [[ -f $seed/.config && -f $seed/vmlinux ]] ||
            die "--seed $seed is not a compiled kernel build directory"
        log "starting the build tree from a copy of $seed"
        rm -rf "$build.seed"
        cp -a "$seed" "$build.seed"
        rm -f "$build.seed/.carveout-built" "$build.seed/build.log"
        # Kbuild's records name some files by absolute path (tools/objtool's among them: a
        # rebuilt objtool rebuilds every object): point them at the copy.
        local from to
        from=$(printf '%s' "$(realpath "$seed")" | sed 's/[][\.*^$|]/\\&/g')
        to=$(printf '%s' "$build" | sed 's/[\&|]/\\&/g')
        find "$build.seed" -type f \( -name '*.cmd' -o -name '*.d' \) -print0 |
            { xargs -0 grep -lZF -- "$(realpath "$seed")" || true; } | xargs -0 -r sed -i "s|$from|$to|g"
        mv "$build.seed" "$build"
    fi
    mkdir -p "$build"
    kmake=(nice -n 10 make -C "$src" O="$build" ARCH=x86_64 -j"$(nproc)")
    "${kmake[@]}" -s rustavailable >&2 ||
        die "the kernel does not accept this Rust toolchain (see above)" \
            "run scripts/setup-host.sh; check LIBCLANG_PATH=$LIBCLANG_PATH"

    log "configuring kernel $version from $config (CONFIG_RUST=y, LOCALVERSION=$localversion)"
    cp "$config" "$build/.config"
    cfg=("$src/scripts/config" --file "$build/.config")
    "${cfg[@]}" --enable RUST --set-str LOCALVERSION "$localversion" --disable LOCALVERSION_AUTO
    # What Rust cannot live with, resolved the way a personal kernel can afford:
    # symbol versions from DWARF instead of genksyms (or none without debug info), no structure
    # layout randomisation, no KASAN with gcc.
    if grep -q '^CONFIG_MODVERSIONS=y' "$build/.config"; then
        if grep -q '^CONFIG_DEBUG_INFO=y' "$build/.config"; then
            "${cfg[@]}" --disable GENKSYMS --enable GENDWARFKSYMS
        else
            "${cfg[@]}" --disable MODVERSIONS
        fi
    fi
    "${cfg[@]}" --disable RANDSTRUCT_FULL --disable RANDSTRUCT_PERFORMANCE --enable RANDSTRUCT_NONE \
        --disable GCC_PLUGIN_RANDSTRUCT --disable KASAN
    # A distribution's signing and trust keys are not in the source tree (Debian's config names
    # debian/certs/... and output/signing_key.pem): trust none extra, and sign modules with a key
    # the build generates.
    for opt in SYSTEM_TRUSTED_KEYS SYSTEM_REVOCATION_KEYS; do
        if grep -q "^CONFIG_$opt=\"..*\"" "$build/.config"; then
            "${cfg[@]}" --set-str "$opt" ""
        fi
    done
    if grep -q '^CONFIG_MODULE_SIG_KEY=' "$build/.config" &&
        ! grep -qE '^CONFIG_MODULE_SIG_KEY="(certs/signing_key.pem|pkcs11:.*)"$' "$build/.config"; then
        "${cfg[@]}" --set-str MODULE_SIG_KEY certs/signing_key.pem
    fi
    "${kmake[@]}" -s olddefconfig >/dev/null
    # include/config/auto.conf, which the release is read from, follows .config (a seeded tree
    # has the seed's).
    "${kmake[@]}" -s syncconfig >/dev/null

    if ! grep -q '^CONFIG_RUST=y' "$build/.config"; then
        for opt in HAVE_RUST RUST_IS_AVAILABLE MODVERSIONS GENDWARFKSYMS RANDSTRUCT DEBUG_INFO_BTF \
            PAHOLE_HAS_LANG_EXCLUDE LTO CFI KASAN; do
            log "  CONFIG_$opt: $(grep -E "^(# )?CONFIG_${opt}[= ]" "$build/.config" || echo unset)"
        done
        die "CONFIG_RUST=y did not survive olddefconfig: one of its dependencies is unmet (above)" \
            "see 'config RUST' in $src/init/Kconfig and adjust $config" \
            "DEBUG_INFO_BTF needs pahole >= 1.24: apt-get install dwarves"
    fi

    rel=$("${kmake[@]}" -s kernelrelease)
    if [[ $format == rpm ]]; then
        log "building kernel $rel as RPM packages in $out (minutes to hours: a distribution" \
            "configuration takes hours on 2 cores); log: $out/build-rpm.log"
        rm -f "$out"/*.rpm
        rm -rf "$build/rpmbuild/RPMS"
        start=$SECONDS
        # No kernel-debuginfo unless asked for (as for Debian's linux-image-*-dbg).
        opt=""
        ((with_dbg)) || opt="--without debuginfo"
        "${kmake[@]}" binrpm-pkg RPMOPTS="$opt" >"$out/build-rpm.log" 2>&1 || {
            tail -n 30 "$out/build-rpm.log" >&2
            die "make binrpm-pkg failed; full log: $out/build-rpm.log" \
                "a missing tool shows above (the kernel's build needs bc, bison, flex, libelf-dev," \
                "libssl-dev); rpmbuild comes with the Debian package rpm"
        }
        mapfile -t rpms < <(find "$build/rpmbuild/RPMS" -name '*.rpm')
        ((${#rpms[@]})) || die "make binrpm-pkg made no package; see $out/build-rpm.log"
        cp "${rpms[@]}" "$out/"
        log "packages built in $((SECONDS - start))s"
        echo "$rel" >"$out/kernel.release"
        touch "$built_marker"
        return
    fi
    profiles=()
    ((with_dbg)) || profiles=(DEB_BUILD_PROFILES=pkg.linux-upstream.nokerneldbg)
    log "building kernel $rel as Debian packages in $out (minutes to hours: a distribution" \
        "configuration takes hours on 2 cores); log: $out/build.log"
    rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
    start=$SECONDS
    env "${profiles[@]}" KDEB_COMPRESS="$compress" "${kmake[@]}" bindeb-pkg >"$out/build.log" 2>&1 || {
        tail -n 30 "$out/build.log" >&2
        die "make bindeb-pkg failed; full log: $out/build.log" \
            "a missing tool shows above; Debian's kernel build needs: apt-get build-dep linux"
    }
    log "packages built in $((SECONDS - start))s"
    echo "$rel" >"$out/kernel.release"
    touch "$built_marker"
}

[[ -f $built_marker ]] || build_packages
rel=$(cat "$out/kernel.release")
if [[ $format == rpm ]]; then
    # RPM versions write the release's dashes as underscores (the kernel's kernel.spec).
    devel=$(find "$out" -maxdepth 1 -name "kernel-devel-${rel//-/_}-*.rpm" -print -quit)
    image=$(find "$out" -maxdepth 1 -name "kernel-${rel//-/_}-*.rpm" -print -quit)
    [[ -n $devel && -n $image ]] ||
        die "make binrpm-pkg made no kernel/kernel-devel package for $rel" "see $out/build-rpm.log"
    add_rust_build_files_rpm "$devel" "$rel"
    echo "$additions" >"$packaged_marker"
    log "packages ready in $out:"
    find "$out" -maxdepth 1 -name '*.rpm' -printf '[carveout]   %f\n' >&2
    echo "$out"
    exit 0
fi
headers=$(find "$out" -maxdepth 1 -name "linux-headers-${rel}_*.deb" -print -quit)
image=$(find "$out" -maxdepth 1 -name "linux-image-${rel}_*.deb" -print -quit)
[[ -n $headers && -n $image ]] || die "make bindeb-pkg made no linux-image/linux-headers package for $rel" \
    "see $out/build.log"
add_rust_build_files "$headers" "$rel"
echo "$additions" >"$packaged_marker"
log "packages ready in $out:"
find "$out" -maxdepth 1 -name '*.deb' -printf '[carveout]   %f\n' >&2
echo "$out"
