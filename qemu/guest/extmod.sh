# shellcheck shell=sh
# `extmod` mode (a second boot, qemu/extmod.sh): the kernel is the kernel package of a
# `make bindeb-pkg` build (cvt_package=deb: linux-image) or of a `make binrpm-pkg` build
# (cvt_package=rpm: kernel), and carveout.ko was built against nothing but that build's unpacked
# headers package (linux-headers, or kernel-devel). Loaded, the module must claim its range and
# map it like the suites'.

case_extmod_from_package() {
    say "kernel $(uname -r), ${cvt_package:-deb} packages"
    load || { say "insmod of the module built against the headers package failed"; return 1; }
    [ -c "$DEV" ] || { say "$DEV missing"; return 1; }
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout ||
        { say "no 'carveout' claim at $(hex "$BASE")-$(hex "$LAST") inside a Reserved entry"; return 1; }
    carveout-test info | sed 's/^/# /'
    carveout-test roundtrip --seed 0xe47d0d || return 1
    rmmod carveout || return 1
    dmesg_clean
}

run_extmod() {
    if [ "${cvt_package:-deb}" = rpm ]; then
        run_case extmod_from_rpm_package case_extmod_from_package
    else
        run_case extmod_from_headers_package case_extmod_from_package
    fi
}
