#!/usr/bin/env bash
# The case signed_module_enforced: a kernel that enforces module signatures loads carveout.ko
# signed by `make sign` and refuses it unsigned. The test kernel has CONFIG_MODULE_SIG; its
# build generated certs/signing_key.pem and certs/signing_key.x509 and trusts that certificate:
# the project's test key, as a machine owner key enrolled with mokutil is on a Secure Boot
# machine. Signs a copy of the guest's carveout.ko with it (make sign), another with a
# throwaway key the kernel does not know, and boots KDIR's kernel with module.sig_enforce=1
# and the three modules (guest mode `signed`, qemu/guest/signed.sh).
#   usage: signed.sh KDIR GUEST_OUT BASE SIZE
#     KDIR       the kernel build the suite booted (its certificate is the trusted one)
#     GUEST_OUT  scripts/build-guest.sh's output directory (its initramfs tree is reused)
# Prints the case's result lines ("@@case ...", "# ...") for qemu/run.sh's report; everything
# else goes to stderr. A step that fails reports the case as not ok, saying which step.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/../scripts/common.sh"

kdir=$(realpath "$1")
guest=$(realpath "$2")
base=$3
size=$4
name=signed_module_enforced
work=$guest/signed
exec 3>&1 1>&2

fail() {
    log "$name: $1"
    printf '# %s: %s\n@@case not ok %s\n' "$name" "$1" "$name" >&3
    exit 0
}

if ! grep -q '^CONFIG_MODULE_SIG=y' "$kdir/.config"; then
    printf '@@case skip %s the kernel in %s has no CONFIG_MODULE_SIG\n' "$name" "$kdir" >&3
    exit 0
fi
key=$kdir/certs/signing_key.pem
cert=$kdir/certs/signing_key.x509
[[ -f $key && -f $cert ]] || fail "the kernel build $kdir has no certs/signing_key.pem and .x509"

start=$SECONDS
rm -rf "$work"
mkdir -p "$work"
cp -a "$guest/initramfs" "$work/initramfs"
modules=$work/initramfs/lib/modules
mv "$modules/carveout.ko" "$modules/carveout-unsigned.ko"
# The tree's carveout.ko may carry a signature (make sign, make install KEY=…): off with it.
"$CARVEOUT_ROOT/scripts/sign-module.sh" --remove "$modules/carveout-unsigned.ko" ||
    fail "could not take a signature off the guest's carveout.ko"
[[ -z $(modinfo -F signer "$modules/carveout-unsigned.ko") ]] ||
    fail "the unsigned copy of carveout.ko still names a signer"

# make sign first brings carveout.ko up to date, as build-guest.sh built it (a clang-built
# kernel's modules are built with LLVM).
sign=(make -s -C "$CARVEOUT_ROOT" KDIR="$kdir" sign KEY="$key" CERT="$cert")
! grep -qx CONFIG_CC_IS_CLANG=y "$kdir/.config" || sign+=(LLVM="-$LLVM_VERSION")
cp "$modules/carveout-unsigned.ko" "$modules/carveout-signed.ko"
"${sign[@]}" SIGN_MODULE="$modules/carveout-signed.ko" || fail "make sign failed (see above)"
signer=$(modinfo -F signer "$modules/carveout-signed.ko")
hash=$(modinfo -F sig_hashalgo "$modules/carveout-signed.ko")
want_hash=$(sed -n 's/^CONFIG_MODULE_SIG_HASH="\(.*\)"$/\1/p' "$kdir/.config")
printf '# %s: make sign: signer "%s", %s\n' "$name" "$signer" "$hash" >&3
[[ -n $signer && $hash == "$want_hash" ]] ||
    fail "the signed module names signer '$signer' and hash '$hash' (the kernel's: $want_hash)"

# Signing twice leaves one signature: the size grows by one signature only.
cp "$modules/carveout-signed.ko" "$work/twice.ko"
"${sign[@]}" SIGN_MODULE="$work/twice.ko" || fail "make sign of a signed module failed"
[[ $(stat -c %s "$work/twice.ko") == $(stat -c %s "$modules/carveout-signed.ko") ]] ||
    fail "make sign of a signed module changed its size: a second signature appended"

# A key of our own, which the kernel does not trust.
openssl req -new -x509 -nodes -days 1 -subj "/CN=carveout test: untrusted key" -newkey rsa:2048 \
    -keyout "$work/foreign.pem" -outform DER -out "$work/foreign.der" 2>/dev/null ||
    fail "openssl could not make a throwaway key"
cp "$modules/carveout-unsigned.ko" "$modules/carveout-foreign.ko"
"$CARVEOUT_ROOT/scripts/sign-module.sh" "$kdir" "$work/foreign.pem" "$work/foreign.der" \
    "$modules/carveout-foreign.ko" || fail "signing with the throwaway key failed"
(cd "$work/initramfs" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initramfs.cpio"

append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic module.sig_enforce=1 "memmap=$size\$$base"
    cvt_mode=signed "cvt_base=$base" "cvt_size=$size"
)
console=$work/console.log
text=$work/console.txt
log "booting $kdir with module.sig_enforce=1 (TCG); console: $console"
boot_case_guest "$name" "$kdir/arch/x86/boot/bzImage" "$work/initramfs.cpio" "${append[*]}" \
    "$console" "$text"
if grep -qE "$KERNEL_WARNING" "$text"; then
    fail "the console holds a kernel warning (console: $text)"
fi
log "$name: $((SECONDS - start))s (signing, boot)"
why=$(case_unreported "$name" "$text" "the guest")
[[ -z $why ]] || fail "$why"
