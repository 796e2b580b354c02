#!/usr/bin/env bash
# The host-side cases of `make test`: each prints "@@case ok NAME" or "@@case not ok NAME"
# after its "# ..." diagnostics, the lines the guest prints; qemu/run.sh collects their names as
# it does the guest's (every `run_case NAME` line) and folds these lines into its report.
#   usage: host-cases.sh KDIR OUTDIR
#     KDIR    the kernel build the guest boots (the module is built against it)
#     OUTDIR  scripts/build-guest.sh's output directory (scratch space goes below it)
# Each case's whole output is also in OUTDIR/host-NAME.log.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

kdir=$(realpath "$1")
mkdir -p "$2"
out=$(realpath "$2")
# A kernel built with clang (CARVEOUT_LLVM=1) needs its modules built the same way.
llvm=()
grep -qx CONFIG_CC_IS_CLANG=y "$kdir/.config" && llvm=(LLVM="-$LLVM_VERSION")

say() { echo "# $*"; }
indent() { sed 's/^/    /'; }

# run_case NAME FUNCTION: runs FUNCTION, its output as diagnostics, and reports it by name.
run_case() {
    local name=$1 status=0
    shift
    log "host case $name; log: $out/host-$name.log"
    "$@" >"$out/host-$name.log" 2>&1 || status=$?
    sed 's/^# //; s/^/# /' "$out/host-$name.log" | tail -n 60
    if ((status == 0)); then
        echo "@@case ok $name"
    else
        echo "@@case not ok $name"
    fi
}

# What `make install` puts in place, relative to DESTDIR, for kernel release $1 and PREFIX
# /usr/local.
installed_files() {
    printf '%s\n' "lib/modules/$1/updates/carveout.ko" \
        usr/local/bin/carveoutctl \
        usr/local/share/man/man1/carveoutctl.1 \
        usr/local/share/bash-completion/completions/carveoutctl \
        usr/local/share/zsh/site-functions/_carveoutctl \
        usr/local/share/fish/vendor_completions.d/carveoutctl.fish \
        usr/local/include/carveout.h \
        etc/udev/rules.d/60-carveout.rules \
        etc/modprobe.d/carveout.conf
}

# tree DIR: every path below DIR, relative, sorted (directories end in /).
tree() {
    (cd "$1" && find . -mindepth 1 \( -type d -printf '%P/\n' -o -printf '%P\n' \) | sort)
}

# install_into ROOT: make install there, and check that each file is in place and works.
install_into() {
    local root=$1 rel=$2 f vermagic
    make -s -C "$CARVEOUT_ROOT" install KDIR="$kdir" "${llvm[@]}" DESTDIR="$root" ||
        { say "make install DESTDIR=$root failed"; return 1; }
    say "make install DESTDIR=$root put in place:"
    tree "$root" | grep -v '/$' | indent
    while IFS= read -r f; do
        [[ -f $root/$f ]] || { say "missing after make install: $f"; return 1; }
    done < <(installed_files "$rel")
    vermagic=$(modinfo -F vermagic "$root/lib/modules/$rel/updates/carveout.ko")
    [[ $vermagic == "$rel "* ]] || { say "carveout.ko has vermagic '$vermagic', not $rel"; return 1; }
    grep -q '^updates/carveout.ko:' "$root/lib/modules/$rel/modules.dep" ||
        { say "depmod did not list updates/carveout.ko in modules.dep"; return 1; }
    "$root/usr/local/bin/carveoutctl" --version | grep -qx 'carveoutctl [0-9.]*' ||
        { say "the installed carveoutctl does not run"; return 1; }
    man -l "$root/usr/local/share/man/man1/carveoutctl.1" 2>/dev/null | grep -q 'attr set' ||
        { say "the man page does not render or lacks 'attr set'"; return 1; }
    bash -c 'source "$1" && complete -p carveoutctl' _ \
        "$root/usr/local/share/bash-completion/completions/carveoutctl" >/dev/null ||
        { say "the bash completion does not register for carveoutctl"; return 1; }
}

# uninstall_from ROOT: make uninstall there; what it said is in $said.
uninstall_from() {
    local status=0
    said=$(make -s -C "$CARVEOUT_ROOT" uninstall DESTDIR="$1" 2>&1) || status=$?
    say "make uninstall DESTDIR=$1:"
    indent <<<"$said"
    ((status == 0)) || { say "make uninstall failed"; return 1; }
}

case_install_uninstall_clean() {
    local rel fresh root before after extra missing f
    rel=$(cat "$kdir/include/config/kernel.release")
    rm -rf "$out/install"
    mkdir -p "$out/install"

    # An empty root: after make uninstall nothing at all is left, no file and no directory.
    fresh=$out/install/fresh
    mkdir "$fresh"
    install_into "$fresh" "$rel" || return 1
    uninstall_from "$fresh" || return 1
    after=$(tree "$fresh")
    if [[ -n $after ]]; then
        say "left behind by make uninstall in $fresh:"
        indent <<<"$after"
        return 1
    fi
    say "make uninstall left $fresh empty"

    # A root with a kernel and files of its own: those stay, an edited modprobe.d file stays,
    # and depmod runs again without carveout.
    root=$out/install/system
    mkdir -p "$root/lib/modules/$rel/kernel" "$root/etc/modprobe.d" "$root/usr/local/bin"
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [[ ! -f $kdir/$f ]] || cp "$kdir/$f" "$root/lib/modules/$rel/"
    done
    echo "options loop max_loop=8" >"$root/etc/modprobe.d/loop.conf"
    printf '#!/bin/sh\n' >"$root/usr/local/bin/other-tool"
    before=$(tree "$root")
    install_into "$root" "$rel" || return 1
    echo "options carveout base=0x80000000 size=0x20000000" >>"$root/etc/modprobe.d/carveout.conf"
    uninstall_from "$root" || return 1
    after=$(tree "$root")
    missing=$(comm -23 <(echo "$before") <(echo "$after"))
    extra=$(comm -13 <(echo "$before") <(echo "$after") |
        grep -vx -e 'etc/modprobe.d/carveout.conf' -e "lib/modules/$rel/modules\.[a-z.]*" || true)
    [[ -z $missing ]] || { say "make uninstall removed what was not its own: $missing"; return 1; }
    [[ -z $extra ]] || { say "left behind by make uninstall: $extra"; return 1; }
    grep -q 'carveout.conf: edited since the install' <<<"$said" ||
        { say "uninstall did not say why it kept the edited carveout.conf"; return 1; }
    [[ -f $root/lib/modules/$rel/modules.dep ]] ||
        { say "depmod did not run after the removal (no modules.dep)"; return 1; }
    if grep -q carveout "$root/lib/modules/$rel/modules.dep"; then
        say "modules.dep still lists carveout: depmod did not run after the removal"
        return 1
    fi
    say "with a kernel and files of its own: those kept, the edited carveout.conf kept, depmod rerun"
}

case_readme_examples_build() {
    local selftest=$out/readme-selftest.md said
    # The checker first: a broken C and a broken Rust block fail it, an ignored one does not.
    printf '%s\n' '```c' 'int x = ;' '```' '```rust' 'let y: u32 = "no";' '```' \
        '```c ignore' 'not C at all' '```' >"$selftest"
    if said=$("$CARVEOUT_ROOT/scripts/readme-examples.sh" "$out/readme-selftest" "$selftest"); then
        say "the checker passed broken examples:"
        indent <<<"$said"
        return 1
    fi
    if [[ $(grep -c '^# FAILED' <<<"$said") != 2 ]] || ! grep -q '^# skipped' <<<"$said"; then
        say "the checker did not fail exactly the two broken examples and skip the ignored one:"
        indent <<<"$said"
        return 1
    fi
    # Then README.md and docs/*.md.
    said=$("$CARVEOUT_ROOT/scripts/readme-examples.sh" "$out/readme-examples") || {
        indent <<<"$said"
        return 1
    }
    echo "$said"
    grep -q '^# built ' <<<"$said" || { say "no C or Rust example found"; return 1; }
}

# carveout through Debian's dkms (scripts/dkms-check.sh) against the headers package of the test
# configuration (scripts/build-kernel-packages.sh, as extmod_from_headers_package: cached),
# unpacked into a scratch root; dkms signs with the test kernel's own key as its machine owner
# key. Stock kernels' headers: call dkms-check.sh with their directory the same way.
case_dkms_build_install() {
    local test_kdir pkgs rel deb root
    test_kdir=$("$CARVEOUT_ROOT/scripts/build-kernel.sh") || { say "no test kernel"; return 1; }
    pkgs=$("$CARVEOUT_ROOT/scripts/build-kernel-packages.sh" --config "$test_kdir/.config" \
        --seed "$test_kdir") || { say "building the kernel packages failed"; return 1; }
    rel=$(cat "$pkgs/kernel.release")
    deb=$(find "$pkgs" -maxdepth 1 -name "linux-headers-${rel}_*.deb" -print -quit)
    [[ -n $deb ]] || { say "no linux-headers package in $pkgs"; return 1; }
    root=$out/dkms-headers
    rm -rf "$root"
    dpkg-deb -x "$deb" "$root"
    say "$(basename "$deb") unpacked in $root"
    "$CARVEOUT_ROOT/scripts/dkms-check.sh" "$root/usr/src/linux-headers-$rel" "$rel" "$out/dkms" \
        "$test_kdir/certs/signing_key.pem" "$test_kdir/certs/signing_key.x509"
}

run_case install_uninstall_clean case_install_uninstall_clean
run_case readme_examples_build case_readme_examples_build
run_case dkms_build_install case_dkms_build_install
