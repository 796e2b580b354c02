# shellcheck shell=bash
# Shared helpers for carveout's scripts. Sourced, never run.

CARVEOUT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything downloaded or built lives outside the checkout, so a fresh clone
# reuses it and `git clean` never throws away a kernel build.
CARVEOUT_CACHE=${CARVEOUT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/carveout}
# The kernel series the project is pinned to (Debian's linux-source-<series>).
KERNEL_SERIES=${KERNEL_SERIES:-7.3}
KERNEL_SUITE=${KERNEL_SUITE:-trixie-backports}
BINDGEN_VERSION=${BINDGEN_VERSION:-0.72.1}
LLVM_VERSION=${LLVM_VERSION:-19}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-${LLVM_VERSION}/lib}
export PATH="$HOME/.cargo/bin:$PATH"
export CARVEOUT_ROOT CARVEOUT_CACHE

# qemu_guest MEMORY KERNEL INITRD APPEND [MACHINE]: sets the array `qemu` to the command that
# boots the guest: TCG by default (KVM guests hang on these machines; CARVEOUT_KVM=1 opts in),
# no default devices, isa-debug-exit for a clean exit. MACHINE is QEMU's -machine (default
# pc; q35 for the guest with an IOMMU). Callers add the serial port and devices. Under TCG the
# CPU has 4-level paging (la57=off), no fast strings (TCG_CPU) and tcg_clock_args join APPEND:
# see below.
qemu_guest() {
    local accel=(-accel tcg -cpu "$TCG_CPU") append=$4
    if [[ ${CARVEOUT_KVM:-0} == 1 ]]; then
        accel=(-accel kvm -cpu host)
    else
        append+=" $(tcg_clock_args)"
    fi
    # The array is the function's result (SC2034); QEMU's options are comma-separated (SC2054).
    # shellcheck disable=SC2034,SC2054
    qemu=(
        qemu-system-x86_64 -machine "${5:-pc}" "${accel[@]}" -m "$1" -smp 1
        -nodefaults -no-user-config -display none
        -kernel "$2" -initrd "$3" -append "$append"
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
    )
}

# boot_case_guest NAME KERNEL INITRD APPEND CONSOLE TEXT: the one-case guests of qemu/extmod.sh
# and qemu/signed.sh. Boots KERNEL with INITRD and APPEND (512 MiB, no reboot, 300 s at most)
# with its serial port in CONSOLE, copies it to TEXT without carriage returns, and prints the
# guest's diagnostics ("# ...") and NAME's result line on fd 3. Sets `case_status` to QEMU's
# exit status (1: through isa-debug-exit; 124: the timeout).
boot_case_guest() {
    local name=$1 console=$5 text=$6
    case_status=0
    qemu_guest 512M "$2" "$3" "$4"
    timeout 300 "${qemu[@]}" -no-reboot -serial "file:$console" || case_status=$?
    tr -d '\r' <"$console" >"$text"
    grep -E "^(# |@@case (ok|not ok) $name\$)" "$text" >&3 || true
}

# case_unreported NAME TEXT GUEST: after boot_case_guest, why the guest did not report NAME
# (GUEST names it: "the guest"), or nothing if it did.
case_unreported() {
    grep -qE "^@@case (ok|not ok) $1\$" "$2" && return 0
    case $case_status in
    1) echo "the guest exited without reporting (console: $2)" ;;
    124) echo "$3 did not finish within 300s (console: $2)" ;;
    *) echo "$3 stopped (QEMU status $case_status, a panic?; console: $2)" ;;
    esac
}

# The TCG guests' CPU: QEMU's max, with 4-level paging (see tcg_clock_args) and without the
# fast-string features ERMS and FSRM. With them the kernel copies and clears with
# `rep movsb`/`rep stosb` (copy_to_user, copy_from_user, clear_page, memcpy), which TCG
# (QEMU 7.2) runs one byte per iteration; without them with `rep movsq`/`rep stosq` or
# unrolled moves, eight bytes at a time. Real CPUs run `rep movsb` at full speed. The
# region's file I/O (issue 13) copied at a seventh of userspace memcpy's speed with them,
# and the debug guest's file-I/O suite took 20 minutes.
TCG_CPU=max,la57=off,erms=off,fsrm=off

# What keeps a TCG guest's early boot independent of the host's load. Under TCG (no -icount)
# the guest's TSC is the host's and QEMU's PIT, HPET and APIC timer follow the host's clock, so
# whenever the host deschedules QEMU the guest sees time jump:
#  - its TSC calibration against the PIT fails and falls back on the HPET with an error
#    ("tsc: Fast TSC calibration failed", "tsc: Unable to calibrate against PIT"), or takes
#    a PIT run the host interrupted before it began for good: once here "PIT calibration
#    deviates from HPET", 134 MHz for a 2445 MHz TSC, udelay() and the clock 18 times off.
#    The host measures its TSC (scripts/host-tsc-khz.c) and hands the rate on:
#    tsc_early_khz= skips the calibration, loops_per_jiffy follows from it, and tsc=reliable
#    keeps the clocksource watchdog (TSC against an HPET read late) from switching
#    clocksources mid-suite. A host whose TSC is not invariant gets neither (logged).
#  - the IO-APIC timer check (timer_irq_works) wants 5 ticks within 160M TSC cycles (65 ms
#    here); ticks QEMU raises while it is descheduled coalesce into one, the check fails and
#    the boot panics "IO-APIC + timer doesn't work!" (seen on a warm reboot under load).
#    no_timer_check skips it, as the kernel does itself on KVM, Hyper-V and VMware.
#  - its timer interrupts land wherever the host's scheduler puts them, also inside
#    identify_cpu(), which clears boot_cpu_data's feature bits and sets them again while
#    interrupts are on and before alternatives are patched. A handler there sees "no LA57":
#    with 5-level paging, KASAN's bounds of the kernel's address space (from
#    pgtable_l5_enabled()) exclude the direct map and every per-cpu access is a
#    "wild-memory-access" (the debug kernel's panic in rcu_is_watching). Hence la57=off in
#    qemu_guest: with 4-level paging the cleared bit is the right answer.
# CARVEOUT_GUEST_CLOCK=calibrate adds none of these (the guest as before, for comparison).
tcg_clock_args() {
    local khz
    [[ ${CARVEOUT_GUEST_CLOCK:-host} == calibrate ]] && return 0
    if khz=$("$(host_tool host-tsc-khz)"); then
        echo "tsc_early_khz=$khz tsc=reliable no_timer_check"
    else
        log "the host's TSC is not invariant: the guest calibrates its own (boot timing may vary)"
        echo no_timer_check
    fi
}

# host_tool NAME: the path of scripts/NAME.c built for the host (cached by the source's hash,
# so checkouts with different versions do not rebuild each other's).
host_tool() {
    local src="$CARVEOUT_ROOT/scripts/$1.c" bin
    bin="$CARVEOUT_CACHE/bin/$1-$(sha256sum "$src" | cut -c1-16)"
    if [[ ! -x $bin ]]; then
        mkdir -p "$CARVEOUT_CACHE/bin"
        gcc -O2 -Wall -Wextra -Werror -o "$bin.$$" "$src" >&2 ||
            die "building scripts/$1.c failed" "apt-get install gcc"
        mv -f "$bin.$$" "$bin"
    fi
    echo "$bin"
}

log() { printf '[carveout] %s\n' "$*" >&2; }

# A kernel warning, BUG or oops on a guest's console (grep -E, awk).
# shellcheck disable=SC2034 # used by the scripts that source this file
KERNEL_WARNING='WARNING:|BUG:|Oops|Call Trace'

die() {
    printf '[carveout] error: %s\n' "$1" >&2
    shift
    local hint
    for hint in "$@"; do
        printf '[carveout]   fix: %s\n' "$hint" >&2
    done
    exit 1
}

# Installs the Debian packages named that are not installed yet (as root), or stops saying
# which are missing. Idempotent: nothing happens when all are there.
ensure_debian_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]}" \
        "run as root, or: sudo apt-get install ${missing[*]}"
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
        die "apt-get update failed: the Debian package registry is not reachable" \
            "check the network and /etc/apt/sources.list*, then run again"
    # Another apt run (a second make, unattended-upgrades) holds dpkg's lock: wait for it.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed" "run it by hand to see why"
}

# The Debian mirror this machine already uses (no host is hard-coded here), or
# $CARVEOUT_DEBIAN_MIRROR.
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

# private_apt_init DIR SUITE...: an apt of its own in DIR (sources, lists, cache, state: the
# system's apt setup is neither read for sources nor changed) for the Debian SUITEs' main
# component (a SUITE ending in -security comes from the security archive), with their index
# fetched. Sets the array `private_apt` to the options that confine apt-get and apt-cache to it.
private_apt_init() {
    local dir=$1 suite mirror uri keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    shift
    private_apt=(
        -o "Dir::State=$dir/state"
        -o "Dir::State::Lists=$dir/lists"
        -o "Dir::State::status=$dir/state/status"
        -o "Dir::Cache=$dir/cache"
        -o "Dir::Etc::SourceList=$dir/sources.list"
        -o "Dir::Etc::SourceParts=$dir/sources.list.d"
        -o "Dir::Etc::Preferences=$dir/preferences"
        -o "Dir::Etc::PreferencesParts=$dir/preferences.d"
        -o "APT::Sandbox::User=root"
    )
    mkdir -p "$dir"/{state,lists/partial,cache/archives/partial,sources.list.d,preferences.d}
    [[ -f $dir/state/status ]] || : >"$dir/state/status"
    [[ -f $dir/preferences ]] || : >"$dir/preferences"
    # Debian's archive key (on Ubuntu too: its package debian-archive-keyring).
    ensure_debian_packages debian-archive-keyring
    mirror=$(debian_mirror)
    for suite in "$@"; do
        uri=$mirror
        [[ $suite != *-security ]] || uri=${CARVEOUT_DEBIAN_SECURITY_MIRROR:-http://security.debian.org/debian-security}
        printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$uri" "$suite"
    done >"$dir/sources.list"
    log "fetching the package index of $* (private apt state in $dir)"
    apt-get "${private_apt[@]}" update -q >"$dir/update.log" 2>&1 ||
        die "apt-get update for $* failed (see $dir/update.log)" \
            "check that the Debian package registry is reachable" \
            "if the archive key is unknown: apt-get install debian-archive-keyring"
}

# debian_download DEST PACKAGE=VERSION...: the packages' .deb files in DEST (kept: a second call
# downloads nothing), checked by apt against the signed index; prints their paths. Needs
# private_apt_init first, unless all are there already.
debian_download() {
    local dest=$1 spec pkg version deb
    shift
    mkdir -p "$dest"
    for spec in "$@"; do
        pkg=${spec%%=*} version=${spec#*=}
        deb=$(find "$dest" -maxdepth 1 -name "${pkg}_${version//:/%3a}_*.deb" -print -quit)
        if [[ -z $deb ]]; then
            ((${#private_apt[@]})) || die "debian_download: no private_apt_init before it"
            log "downloading $pkg $version"
            (cd "$dest" && apt-get "${private_apt[@]}" download -q "$pkg=$version" >/dev/null) ||
                die "apt-get download $pkg=$version failed (not in the archive any more?)"
            deb=$(find "$dest" -maxdepth 1 -name "${pkg}_${version//:/%3a}_*.deb" -print -quit)
        fi
        echo "$deb"
    done
}
private_apt=()

# unpack_linux_source DEB VERSION: Debian's linux-source-SERIES package unpacked (its tarball
# extracted) in $CARVEOUT_CACHE/src/VERSION, once; prints the source directory.
unpack_linux_source() {
    local deb=$1 version=$2 pkg work tarball
    pkg=$(dpkg-deb -f "$deb" Package)
    work="$CARVEOUT_CACHE/src/$version"
    if [[ -f $work/$pkg/Makefile ]]; then
        echo "$work/$pkg"
        return
    fi
    rm -rf "$work"
    mkdir -p "$work"
    log "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$work/deb"
    tarball=$(find "$work/deb/usr/src" -maxdepth 1 -name "$pkg.tar.*" -print -quit)
    [[ -n $tarball ]] || die "no $pkg.tar.* inside $(basename "$deb")"
    tar -xf "$tarball" -C "$work"
    rm -rf "$work/deb"
    [[ -f $work/$pkg/Makefile ]] || die "unpacked tarball has no $pkg/Makefile"
    echo "$work/$pkg"
}

# debian_stock_headers KDIR: KDIR is the headers directory of a Debian kernel built with Rust,
# without the Rust build files a module needs (scripts/debian-stock-kdir.sh makes them).
debian_stock_headers() {
    grep -qsx 'CONFIG_RUST=y' "$1/include/config/auto.conf" && [[ ! -e $1/rust/libkernel.rmeta ]] &&
        grep -qs '^#define LINUX_PACKAGE_ID " *Debian ' "$1/include/generated/package.h"
}

# The directory the pinned kernel source is unpacked in (set by fetch-kernel.sh).
kernel_src_dir() {
    cat "$CARVEOUT_CACHE/kernel-src.path" 2>/dev/null || true
}
