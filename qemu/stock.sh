#!/usr/bin/env bash
# The cases of Debian's unmodified stock kernel (no kernel build):
#   stock_debian_build  Debian's linux-image, linux-headers (-amd64, -common) and linux-kbuild
#                       packages of $CARVEOUT_STOCK_ABI (default 7.3.4+deb13) from
#                       trixie-backports (private apt, cached, unpacked into the cache: nothing
#                       installed on the host); carveout built from its DKMS sources with
#                       `make KDIR=<the unpacked headers>`, which makes the Rust build files
#                       (scripts/debian-stock-kdir.sh); the module's vermagic is the kernel's,
#                       it depends on configfs alone, and every symbol it imports is exported by
#                       the kernel or configfs (the packages' Module.symvers); headers naming
#                       another rustc, or missing a Rust export, are refused with a line naming
#                       it; Debian's dkms adds, builds, installs and removes it (dkms-check.sh)
#   stock_debian_suite  the package's vmlinuz booted in QEMU with that module, Debian's own
#                       configfs, nvdimm and VFIO modules (dependencies from modules.dep) loaded
#                       by /init, iomem=relaxed (IO_STRICT_DEVMEM): the suites a user relies on
#                       (STOCK_SUITES, then the warm reboot), then the IOMMU guest's attach and
#                       VFIO suites (STOCK_IOMMU_SUITES). Fails if any case there fails or is not
#                       reported, or a console holds a kernel warning; the cases run there are
#                       listed as comments ("# stock: ok NAME"), so the top-level count is two.
#   usage: stock.sh GUEST_OUT MAIN_APPEND IOMMU_APPEND
#     GUEST_OUT     scripts/build-guest.sh's output directory (its initramfs tree is reused)
#     MAIN_APPEND   the main guest's kernel command line, IOMMU_APPEND the IOMMU guest's
#                   (qemu/run.sh's; their cvt_suites= is replaced)
# Prints the cases' result lines ("@@case ...", "# ...") for qemu/run.sh's report; everything
# else goes to stderr.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/../scripts/common.sh"

guest=$(realpath "$1")
main_append=$2
iommu_append=$3
abi=${CARVEOUT_STOCK_ABI:-7.3.4+deb13}
release=$abi-amd64
suite=trixie-backports
work=$guest/stock
# The suites a user relies on: claim, mmap, ioctls, refusals, reload (skeleton, reserved),
# attributes and the PAT record (attrs), configfs regions (regions; configfs is a module
# here), file I/O (files), a 32-bit program through compat_ioctl (compat: Debian's kernel has
# CONFIG_COMPAT), edu DMA (dma); every case in their files runs. The warm reboot follows them.
# PTDUMP (ptes) is not in Debian's kernel.
STOCK_SUITES=skeleton,reserved,attrs,regions,files,compat,dma
STOCK_SUITE_FILES=(10-skeleton 15-reserved 20-attrs 30-regions 46-files 47-compat 50-dma)
STOCK_IOMMU_SUITES=attach,sync,iommu,vfio
STOCK_IOMMU_FILES=(iommu-attach iommu-dma)
# Cases of those files that cannot run on Debian's kernel, with the reason (and every kunit_*
# case when its configuration has no CONFIG_KUNIT).
declare -A not_here=(
    [unlisted_opt_in_maps_uc]="reads the page tables through PTDUMP_DEBUGFS, which Debian's kernel lacks"
    [reserve_mem_read_write]="compares through /dev/mem at reserve_mem's RAM, which STRICT_DEVMEM refuses (iomem=relaxed opens I/O ranges only)"
)
# Debian's modules the guests load, with what they need (modules.dep).
STOCK_MODULES=(configfs nd_e820 nd_pmem vfio vfio-pci vfio_iommu_type1)

exec 3>&1 1>&2
mkdir -p "$work"

# run_case NAME FUNCTION: FUNCTION's output as diagnostics, reported by name.
run_case() {
    local name=$1 status=0
    shift
    log "stock case $name; log: $work/$name.log"
    "$@" >"$work/$name.log" 2>&1 || status=$?
    sed 's/^# //; s/^/# /' "$work/$name.log" | tail -n 80 >&3
    if ((status == 0)); then
        echo "@@case ok $name" >&3
    else
        echo "@@case not ok $name" >&3
    fi
}

say() { echo "# $*"; }

# Debian's packages of the stock kernel, downloaded once and unpacked in the cache.
unpacked=""
fetch_packages() {
    local stamp=$CARVEOUT_CACHE/stock/packages-$release.version version deb
    unpacked=$CARVEOUT_CACHE/stock/packages-$release
    if [[ -f $stamp && -d $unpacked/usr/src/linux-headers-$release ]]; then
        say "Debian's $release packages $(cat "$stamp") (cached in $unpacked)"
        return 0
    fi
    private_apt_init "$CARVEOUT_CACHE/stock/apt" "$suite"
    version=$(apt-cache "${private_apt[@]}" show "linux-image-$release" 2>/dev/null |
        awk '/^Version:/ {print $2}' | sort -V | tail -n 1)
    [[ -n $version ]] || { say "linux-image-$release is not in $suite"; return 1; }
    rm -rf "$unpacked"
    mkdir -p "$unpacked"
    # linux-image is the metapackage of linux-binary (vmlinuz), linux-modules and linux-base
    # (System.map, modules.builtin).
    for deb in $(debian_download "$CARVEOUT_CACHE/deb" "linux-image-$release=$version" \
        "linux-binary-$release=$version" "linux-modules-$release=$version" \
        "linux-base-$release=$version" "linux-headers-$release=$version" \
        "linux-headers-$abi-common=$version" "linux-kbuild-$abi=$version"); do
        say "unpacking $(basename "$deb")"
        dpkg-deb -x "$deb" "$unpacked"
    done
    depmod -b "$unpacked/usr" "$release"
    echo "$version" >"$stamp"
}

# refuses WHAT EXPECTED EDIT: a copy of the stock headers changed by the function EDIT (given its
# directory) is refused by scripts/debian-stock-kdir.sh with a line matching EXPECTED.
refuses() {
    local what=$1 expected=$2 edit=$3 fake=$work/fake/usr/src/linux-headers-$release said
    rm -rf "$work/fake"
    mkdir -p "$work/fake/usr/src" "$work/fake/usr/lib"
    cp -a "$unpacked/usr/src/linux-headers-$release" "$fake"
    ln -s "$unpacked/usr/src/linux-headers-$abi-common" "$work/fake/usr/src/"
    ln -s "$unpacked/usr/lib/linux-kbuild-$abi" "$work/fake/usr/lib/"
    "$edit" "$fake"
    if said=$("$CARVEOUT_ROOT/scripts/debian-stock-kdir.sh" "$fake" 2>&1 >/dev/null); then
        say "$what: not refused"
        return 1
    fi
    grep -q "error: $expected" <<<"$said" || { say "$what: refused without naming it: $said"; return 1; }
    say "$what: refused: $(grep 'error:' <<<"$said")"
}
other_rustc() {
    sed -i 's/^CONFIG_RUSTC_VERSION_TEXT=.*/CONFIG_RUSTC_VERSION_TEXT="rustc 1.85.1 (rustup)"/' "$1/.config"
}
one_export_less() {
    local line
    line=$(grep -n -m1 $'\t_R' "$1/Module.symvers" | cut -d: -f1)
    sed -i "${line}d" "$1/Module.symvers"
}

module_src=""
case_stock_debian_build() {
    local headers msrc vermagic depends symvers imported provider bad=0
    fetch_packages || return 1
    headers=$unpacked/usr/src/linux-headers-$release
    [[ -f $headers/Makefile ]] || { say "the headers package has no usr/src/linux-headers-$release"; return 1; }
    if [[ -e $headers/rust/libkernel.rmeta ]]; then
        say "Debian's headers now carry the Rust build files: this case tests nothing"
        return 1
    fi
    # The module's DKMS source set, built as DKMS builds it: make KDIR=<headers> modules.
    rm -rf "$work/dkms"
    make -s -C "$CARVEOUT_ROOT" DESTDIR="$work/dkms" dkms-source >/dev/null || { say "make dkms-source failed"; return 1; }
    msrc=$(find "$work/dkms/usr/src" -maxdepth 1 -name 'carveout-*' -print -quit)
    local start=$SECONDS
    make -s -C "$msrc" KDIR="$headers" modules ||
        { say "make KDIR=$headers modules failed (see $work/stock_debian_build.log)"; return 1; }
    say "built against Debian's stock headers in $((SECONDS - start))s (Rust build files made or checked, module built)"
    vermagic=$(modinfo -F vermagic "$msrc/carveout.ko")
    depends=$(modinfo -F depends "$msrc/carveout.ko")
    say "carveout.ko: vermagic '$vermagic', depends '$depends'"
    [[ $vermagic == "$release SMP preempt mod_unload "* ]] ||
        { say "vermagic is not the stock kernel's ($release SMP preempt mod_unload)"; bad=1; }
    [[ $depends == configfs ]] || { say "depends should be configfs alone"; bad=1; }
    [[ $(modinfo -F name "$msrc/carveout.ko") == carveout ]] || { say "modinfo name is not carveout"; bad=1; }
    [[ -n $(find "$unpacked/usr/lib/modules/$release" -name 'configfs.ko*') ]] ||
        { say "configfs, which carveout depends on, is not in linux-modules-$release"; bad=1; }
    # Every undefined symbol is exported by the kernel or by configfs (no other module).
    symvers=$headers/Module.symvers
    imported=0
    while read -r sym; do
        imported=$((imported + 1))
        provider=$(awk -v s="$sym" '$2 == s {print $3; exit}' "$symvers")
        case $provider in
        vmlinux | fs/configfs/configfs) ;;
        "") say "carveout.ko imports $sym, which the stock kernel does not export"; bad=1 ;;
        *) say "carveout.ko imports $sym from $provider, not a declared dependency"; bad=1 ;;
        esac
    done < <(nm -u "$msrc/carveout.ko" | awk '{print $2}' | grep -v '^__fentry__$\|^_GLOBAL_OFFSET_TABLE_$' || true)
    ((bad == 0)) || return 1
    say "all $imported symbols carveout.ko imports are exported by the stock kernel or configfs"
    # What the script checks before use, refused: another rustc, a Rust export the kernel lacks.
    refuses "headers naming another rustc" "rustc mismatch" other_rustc || return 1
    refuses "a Module.symvers without one Rust export" "Rust export mismatch" one_export_less || return 1
    rm -rf "$work/fake"
    # Debian's real dkms, as DKMS builds for an installed kernel (dkms.conf's MAKE line through the
    # Makefile, which takes the stock path), into a scratch root (scripts/dkms-check.sh).
    if ! "$CARVEOUT_ROOT/scripts/dkms-check.sh" "$headers" "$release" "$work/dkms-check" \
        >"$work/dkms-check.log" 2>&1; then
        tail -n 30 "$work/dkms-check.log"
        say "dkms against the stock headers failed (above; all of it in $work/dkms-check.log)"
        return 1
    fi
    tail -n 1 "$work/dkms-check.log"
    module_src=$msrc
}

# modules_with_deps NAME...: the .ko paths (relative to lib/modules/RELEASE) of the modules and
# what they need, each after its dependencies.
modules_with_deps() {
    local dep=$unpacked/usr/lib/modules/$release/modules.dep name path line
    for name in "$@"; do
        path=$(grep -E "/${name//[-_]/[-_]}\.ko(\.[a-z]+)?:" "$dep" | cut -d: -f1) ||
            { echo "no module $name in modules.dep" >&2; return 1; }
        line=$(grep "^$path:" "$dep")
        # modules.dep lists the dependencies, the deepest last.
        echo "${line#*:}" | tr ' ' '\n' | tac
        echo "$path"
    done | awk 'NF && !seen[$0]++'
}

# boot WHAT MEMORY MACHINE APPEND QEMU-ARGS...: boots the stock kernel; console text in
# $work/WHAT-console.txt, the run time in `elapsed`; false when QEMU did not exit through
# isa-debug-exit.
boot() {
    local what=$1 status=0 start=$SECONDS
    qemu_guest "$2" "$unpacked/usr/lib/modules/$release/vmlinuz" "$work/initramfs.cpio" "$4" "$3"
    shift 4
    qemu+=("$@")
    log "booting Debian's stock $release ($what; TCG); console: $work/$what-console.log"
    timeout 900 "${qemu[@]}" -serial "file:$work/$what-console.log" || status=$?
    elapsed=$((SECONDS - start))
    tr -d '\r' <"$work/$what-console.log" >"$work/$what-console.txt"
    say "the $what guest ran for ${elapsed}s (QEMU status $status)"
    [[ $status == 1 ]] || { grep -E '^(# |@@)' "$work/$what-console.txt" | tail -n 40; return 1; }
}

# report CONSOLE FILE...: every case of the guest files, as the console reports it; counts
# into passed/failed/skipped.
passed=0 failed=0 skipped=0
report() {
    local console=$1 name result
    shift
    for name in "$@"; do
        result=$(grep -E "^@@case (ok|not ok) $name\$|^@@case skip $name " "$console" | tail -n 1 || true)
        if [[ $name == kunit_* ]] && ! grep -q '^CONFIG_KUNIT=' "$unpacked/usr/lib/modules/$release/config"; then
            say "stock: skip $name (Debian's kernel has no KUnit, CONFIG_KUNIT)"
            skipped=$((skipped + 1))
        elif [[ -n ${not_here[$name]:-} ]]; then
            say "stock: skip $name (${not_here[$name]})"
            skipped=$((skipped + 1))
        elif [[ $result == "@@case ok $name" ]]; then
            say "stock: ok $name"
            passed=$((passed + 1))
        elif [[ $result == "@@case skip $name "* ]]; then
            say "stock: skip $name (${result#"@@case skip $name "})"
            skipped=$((skipped + 1))
        else
            say "stock: not ok $name${result:+ }${result:-" (not reported)"}"
            failed=$((failed + 1))
        fi
    done
}

case_names_in() {
    local file
    for file in "$@"; do
        grep -ho '^ *run_case [a-z0-9_]*' "$CARVEOUT_ROOT/qemu/guest/$file.sh" | awk '{print $2}'
    done
}

# without_suites CMDLINE: CMDLINE without its cvt_suites= (the stock guests choose their own).
without_suites() {
    local word words kept=()
    read -ra words <<<"$1"
    for word in "${words[@]}"; do
        [[ $word == cvt_suites=* ]] || kept+=("$word")
    done
    echo "${kept[*]}"
}

case_stock_debian_suite() {
    local mod dest list=() names=() iommu_names=() append bad=0
    [[ -n $module_src ]] || { say "stock_debian_build did not build the module"; return 1; }
    [[ -d $guest/initramfs ]] || { say "no guest initramfs tree in $guest"; return 1; }
    # The guest's initramfs with the stock-built carveout.ko and Debian's modules, uncompressed
    # (busybox insmod), listed in load order in /lib/modules/stock.list.
    rm -rf "$work/initramfs"
    cp -a "$guest/initramfs" "$work/initramfs"
    install -m 0644 "$module_src/carveout.ko" "$work/initramfs/lib/modules/carveout.ko"
    mkdir -p "$work/initramfs/lib/modules/stock"
    mapfile -t list < <(modules_with_deps "${STOCK_MODULES[@]}") || return 1
    for mod in "${list[@]}"; do
        dest=$(basename "${mod%.xz}")
        xz -dc "$unpacked/usr/lib/modules/$release/$mod" >"$work/initramfs/lib/modules/stock/$dest"
        echo "$dest"
    done >"$work/initramfs/lib/modules/stock.list"
    say "Debian's modules loaded by /init: $(tr '\n' ' ' <"$work/initramfs/lib/modules/stock.list")"
    (cd "$work/initramfs" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initramfs.cpio"

    mapfile -t names < <(case_names_in "${STOCK_SUITE_FILES[@]}")
    names+=(survives_warm_reboot unload_clean)
    append="$(without_suites "$main_append") iomem=relaxed cvt_suites=$STOCK_SUITES"
    boot main 512M pc "$append" -device edu || { say "the main guest did not finish cleanly"; bad=1; }
    report "$work/main-console.txt" "${names[@]}"

    mapfile -t iommu_names < <(case_names_in "${STOCK_IOMMU_FILES[@]}")
    append="$(without_suites "$iommu_append") iomem=relaxed cvt_suites=$STOCK_IOMMU_SUITES"
    boot iommu 256M q35 "$append" -device intel-iommu \
        -device "edu,dma_mask=$(sed -n 's/.*cvt_edu_dma_mask=\([^ ]*\).*/\1/p' <<<"$iommu_append")" ||
        { say "the IOMMU guest did not finish cleanly"; bad=1; }
    report "$work/iommu-console.txt" "${iommu_names[@]}"

    if grep -qE "$KERNEL_WARNING" "$work/main-console.txt" "$work/iommu-console.txt"; then
        say "a console holds a kernel warning:"
        grep -hE -A3 "$KERNEL_WARNING" "$work/main-console.txt" "$work/iommu-console.txt" |
            head -n 20 | sed 's/^/#   /'
        bad=1
    fi
    grep -q '^@@dmesg-dirty' "$work/main-console.txt" && { say "dmesg of the first boot held a warning"; bad=1; }
    if ((failed)); then
        say "guest diagnostics:"
        grep -hE '^(# |@@)' "$work/main-console.txt" "$work/iommu-console.txt" | tail -n 80 | sed 's/^/#   /'
    fi
    say "stock_debian_suite: $passed passed, $failed failed, $skipped skipped"
    ((failed == 0 && bad == 0))
}

start=$SECONDS
run_case stock_debian_build case_stock_debian_build
run_case stock_debian_suite case_stock_debian_suite
log "stock cases: $((SECONDS - start))s"
