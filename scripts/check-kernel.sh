#!/usr/bin/env bash
# Checks that an out-of-tree Rust module can be built against the kernel build directory KDIR
# (a kernel build tree, or an installed headers directory such as /lib/modules/REL/build), and
# stops saying what is missing and how to get it:
#   - a prepared build directory (Makefile, .config results, Module.symvers, fixdep, modpost)
#   - CONFIG_RUST=y, and what the module itself uses: x86-64 (CONFIG_X86_64), PAT
#     (CONFIG_X86_PAT: cache attributes), transparent huge pages (CONFIG_TRANSPARENT_HUGEPAGE:
#     thp_get_unmapped_area, 2 MiB entries) and configfs (CONFIG_CONFIGFS_FS, built in or a
#     module: carveout.ko then depends on configfs.ko, which modprobe loads first); each missing
#     one is named
#   - the Rust build files: rust/lib*.rmeta for every crate a module links against, the
#     proc-macro libraries (rust/libmacros.so ...), the target spec (scripts/target.json)
#   - the rustc the kernel was built with ($RUSTC, default rustc): crate metadata only loads
#     in the very compiler that wrote it
# A bindgen that differs from the kernel's is reported but does not stop the build: bindgen
# only runs when the kernel itself is built, never for an external module.
#   usage: check-kernel.sh KDIR
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

kdir=${1:?usage: check-kernel.sh KDIR}
kdir=${kdir%/}
rustc=${RUSTC:-rustc}
# What fixes missing Rust support: a kernel (and headers package) built by this project.
get_kernel="build a Rust-enabled kernel and headers package: scripts/build-kernel-packages.sh"
get_kernel+=" (README: \"Quick start\"), install both, boot it"

[[ -f $kdir/Makefile ]] || die "no kernel build directory at $kdir" \
    "install the headers package of the kernel you build for (linux-headers-REL), or" \
    "pass KDIR=/path/to/the/kernel/build/directory"
conf=$kdir/include/config/auto.conf
[[ -f $conf ]] || die "$kdir is not a configured kernel build directory (no include/config/auto.conf)" \
    "in a kernel source tree: make olddefconfig modules_prepare; or use a headers package"

grep -q '^CONFIG_RUST=y' "$conf" || die "the kernel in $kdir is built without CONFIG_RUST" \
    "$get_kernel"
# What the module uses beyond Rust: each option missing is named.
needed=(X86_64 X86_PAT TRANSPARENT_HUGEPAGE)
absent=()
for option in "${needed[@]}"; do
    grep -q "^CONFIG_$option=y" "$conf" || absent+=("CONFIG_$option")
done
# configfs may be a module (Debian builds it so): modpost records the dependency.
grep -qE '^CONFIG_CONFIGFS_FS=[ym]' "$conf" || absent+=(CONFIG_CONFIGFS_FS)
((${#absent[@]} == 0)) || die "the kernel in $kdir is built without ${absent[*]}: carveout needs" \
    "x86-64 (CONFIG_X86_64), PAT (CONFIG_X86_PAT), transparent huge pages" \
    "(CONFIG_TRANSPARENT_HUGEPAGE) and configfs (CONFIG_CONFIGFS_FS, y or m)" "$get_kernel"

# Debian's stock kernel: its headers lack the Rust build files; scripts/debian-stock-kdir.sh makes
# them (once) with the kernel's own compilers and checks them against the kernel.
if debian_stock_headers "$kdir"; then
    "$CARVEOUT_ROOT/scripts/debian-stock-kdir.sh" "$kdir" >/dev/null
    exit 0
fi

for f in Module.symvers scripts/basic/fixdep scripts/mod/modpost; do
    [[ -e $kdir/$f ]] || die "$kdir has no $f: the build directory is not prepared for modules" \
        "in a kernel build tree: make modules_prepare (after a full build, for Module.symvers)"
done

# The kernel's own build rules: in KDIR itself (headers package) or behind its `source` link
# (a build tree made with O=).
srcdir=$kdir
[[ -f $kdir/scripts/Makefile.build || ! -e $kdir/source/scripts/Makefile.build ]] ||
    srcdir=$kdir/source
[[ -f $srcdir/scripts/Makefile.build ]] || die "$kdir has no scripts/Makefile.build" \
    "use the kernel's build directory or its complete headers package"

# The crates an external Rust module is compiled against: the kernel's own --extern list,
# plus core and the proc macros those crates need.
mapfile -t crates < <(grep -ho -- '--extern [a-z_]*' "$srcdir/scripts/Makefile.build" |
    awk '{print $2}' | sort -u)
missing=()
for crate in core compiler_builtins "${crates[@]}"; do
    [[ -e $kdir/rust/lib$crate.rmeta || -e $kdir/rust/lib$crate.so ]] || missing+=("rust/lib$crate.(rmeta|so)")
done
[[ -e $kdir/rust/libmacros.so ]] || missing+=(rust/libmacros.so)
[[ -e $kdir/scripts/target.json ]] || ! grep -qs 'scripts/target.json' "$srcdir/arch/x86/Makefile" ||
    missing+=(scripts/target.json)
((${#missing[@]} == 0)) || die "$kdir lacks the Rust build files an external module needs: ${missing[*]}" \
    "Debian's own 7.x headers packages (and make bindeb-pkg's) carry none of them" \
    "$get_kernel" \
    "or point KDIR at the full build tree of the kernel you run"

# auto.conf strings: quoted or not, depending on the kernel version.
conf_text() { sed -n "s/^CONFIG_$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$conf"; }
want=$(conf_text RUSTC_VERSION_TEXT)
wanted=$(awk '{print $2}' <<<"$want")
# Where that compiler comes from: a distribution's own build (Debian's, Ubuntu's versioned
# rustc-1.xx: "built from a source tarball"; rustup's release of the same number differs), or
# rustup's release.
if [[ $want == *"source tarball"* ]]; then
    get_rustc=("install the distribution's rustc of that version (Debian: rustc; Ubuntu:"
        "rustc-${wanted%.*}; Arch: rust), not rustup's: its crates differ (E0514)"
        "then build with RUSTC=/path/to/that/rustc if it is not the rustc in PATH")
else
    get_rustc=("rustup toolchain install $wanted"
        "then build with RUSTC=\"\$(rustup which --toolchain $wanted rustc)\"")
fi
have=$("$rustc" --version 2>/dev/null) ||
    die "$rustc not found: the kernel was built with $want" "${get_rustc[@]}" \
        "(DKMS builds run as root: root needs it in PATH)"
[[ $have == "$want" ]] || die "$rustc is '$have', but the kernel was built with '$want'" \
    "Rust crate metadata only loads in the same compiler (else E0514)" "${get_rustc[@]}"

want_bg=$(conf_text BINDGEN_VERSION_TEXT)
have_bg=$("${BINDGEN:-bindgen}" --version 2>/dev/null || echo "no bindgen")
[[ -z $want_bg || $have_bg == "$want_bg" ]] ||
    log "note: $have_bg here, the kernel used $want_bg; not needed for a module build, going on"
exit 0
