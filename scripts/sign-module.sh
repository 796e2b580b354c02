#!/usr/bin/env bash
# Signs a kernel module for a kernel that checks module signatures (Secure Boot's lockdown,
# module.sig_enforce=1, CONFIG_MODULE_SIG_FORCE): `make sign KEY=… CERT=…`, and `make install`
# when given KEY and CERT. Uses the kernel's own scripts/sign-file from KDIR and its hash
# (CONFIG_MODULE_SIG_HASH; sha512 when the kernel names none). A signature already on the
# module is taken off first, so signing twice (another key, the same key again) leaves one.
# The kernel's own signing step (modules_install with CONFIG_MODULE_SIG_ALL) ignores failures
# for external modules; this one stops with the reason.
#   usage: sign-module.sh KDIR KEY CERT MODULE.ko
#          sign-module.sh --remove MODULE.ko     (takes a signature off, if there is one)
#     KEY   the private key: a PEM file, or a PKCS#11 URI ("pkcs11:...")
#     CERT  its X.509 certificate, PEM or DER (the one enrolled with mokutil --import)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

# An appended signature ends with this marker, after a 12-byte struct module_signature whose
# last 4 bytes are the signature's length (big-endian): the module's own bytes come before.
marker='~Module signature appended~'
# unsign MODULE: takes MODULE's signature off; false when it has none.
unsign() {
    local size siglen keep
    [[ $(tail -c $((${#marker} + 1)) "$1" | tr -d '\0') == "$marker" ]] || return 1
    size=$(stat -c %s "$1")
    siglen=$(tail -c $((${#marker} + 1 + 4)) "$1" | head -c 4 | od -An -tu1 |
        awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
    keep=$((size - ${#marker} - 1 - 12 - siglen))
    ((keep > 0)) || die "$1 ends with a signature marker but its length is wrong"
    truncate -s "$keep" "$1"
}

if [[ ${1:-} == --remove ]]; then
    [[ -f ${2:-} ]] || die "usage: sign-module.sh --remove MODULE.ko"
    if unsign "$2"; then log "took the signature off $2"; fi
    exit 0
fi
(($# == 4)) || die "usage: sign-module.sh KDIR KEY CERT MODULE.ko" \
    "make sign KEY=/path/to/key.pem CERT=/path/to/cert.der [KDIR=…]"
kdir=${1%/}
key=$2
cert=$3
module=$4

[[ -f $module ]] || die "no module $module to sign" "build it first: make"
sign_file=$kdir/scripts/sign-file
[[ -x $sign_file ]] || die "$kdir has no scripts/sign-file" \
    "the kernel's headers package builds it (Debian: linux-kbuild-*; a build tree: make scripts)"
[[ $key == pkcs11:* || -r $key ]] || die "cannot read the signing key $key" \
    "KEY=… names the private key (PEM), as root if only root may read it"
[[ -r $cert ]] || die "cannot read the certificate $cert" "CERT=… names the key's X.509 certificate"
hash=$(sed -n 's/^CONFIG_MODULE_SIG_HASH="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' \
    "$kdir/include/config/auto.conf" 2>/dev/null || true)
hash=${hash:-sha512}

if unsign "$module"; then log "took the old signature off $module"; fi
"$sign_file" "$hash" "$key" "$cert" "$module" ||
    die "scripts/sign-file failed to sign $module (see above)" \
        "check that KEY and CERT belong together (openssl x509 -noout -pubkey -in CERT)"
log "signed $module ($hash, $(openssl x509 -noout -subject -in "$cert" 2>/dev/null ||
    openssl x509 -inform DER -noout -subject -in "$cert" 2>/dev/null || echo "$cert"))"
