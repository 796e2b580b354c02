# shellcheck shell=sh
# `signed` mode (a boot of its own, qemu/signed.sh): the test kernel (CONFIG_MODULE_SIG, its
# build's certs/signing_key.x509 built in as a trusted key) booted with module.sig_enforce=1,
# as under Secure Boot's lockdown. /lib/modules holds carveout.ko three ways: signed with the
# kernel's key by `make sign` (carveout-signed.ko), unsigned (carveout-unsigned.ko) and signed
# with a key the kernel does not know (carveout-foreign.ko).

SIGNED_DIR=/lib/modules

# signed_refused FILE REASON: insmod of FILE fails with EKEYREJECTED and the kernel's own line
# "Loading of REASON is rejected"; nothing is loaded or claimed.
signed_refused() {
    dmesg_mark
    if insmod "$SIGNED_DIR/$1" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" 2>/tmp/signed.err; then
        say "insmod $1 succeeded under module.sig_enforce=1"
        return 1
    fi
    sed "s/^/# $1: /" /tmp/signed.err
    grep -q 'Key was rejected by service' /tmp/signed.err ||
        { say "insmod $1 did not fail with EKEYREJECTED"; return 1; }
    dmesg_since_mark | grep -F "Loading of $2 is rejected" >/tmp/signed.dmesg
    sed 's/^/# dmesg: /' /tmp/signed.dmesg
    [ -s /tmp/signed.dmesg ] || { say "dmesg does not say: Loading of $2 is rejected"; return 1; }
    if module_loaded || iomem_has_name carveout; then
        say "the refused $1 left the module or a claim behind"
        return 1
    fi
}

case_signed_module_enforced() {
    enforce=$(cat /sys/module/module/parameters/sig_enforce 2>/dev/null)
    [ "$enforce" = Y ] || { say "module.sig_enforce is '$enforce', not Y"; return 1; }
    signed_refused carveout-unsigned.ko "unsigned module" || return 1
    signed_refused carveout-foreign.ko "module with unavailable key" || return 1

    dmesg_mark
    insmod "$SIGNED_DIR/carveout-signed.ko" "base=$(hex "$BASE")" "size=$(hex "$SIZE")" ||
        { say "insmod of the signed module failed"; return 1; }
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout ||
        { say "no 'carveout' claim at $(hex "$BASE")-$(hex "$LAST") inside a Reserved entry"; return 1; }
    carveout-test roundtrip --seed 0x5196ed || return 1
    # A verified signature taints nothing: no "module verification failed", no taint flag E
    # (TAINT_UNSIGNED_MODULE, bit 13).
    if dmesg | grep 'module verification failed'; then
        say "the kernel did not verify the signed module's signature"
        return 1
    fi
    tainted=$(cat /proc/sys/kernel/tainted)
    [ $((tainted & 8192)) = 0 ] || { say "the kernel is tainted $tainted: an unsigned module"; return 1; }
    rmmod carveout || return 1
    dmesg_clean
}

run_signed() {
    run_case signed_module_enforced case_signed_module_enforced
}
