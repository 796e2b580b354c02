#!/usr/bin/env bash
# carveout through Debian's real dkms, into a scratch root: `make dkms-source`, then
# `dkms add`, `dkms build`, `dkms install` for kernel release REL against the headers in
# HEADERS (--kernelsourcedir), `dkms uninstall` and `dkms remove`. dkms's trees are scratch
# directories below OUT (--sourcetree, --dkmstree, --installtree; depmod runs here with -b), and
# its framework configuration, which names the machine owner key it signs with, is OUT's own:
# dkms runs in a private mount namespace (unshare -m) where OUT/etc/dkms is /etc/dkms. Nothing
# of the host's /usr/src, /var/lib/dkms, /lib/modules or /etc/dkms is read or changed.
#   usage: dkms-check.sh HEADERS REL OUT [KEY CERT]
#     HEADERS  a kernel headers directory (an unpacked linux-headers package's
#              usr/src/linux-headers-REL; the stock kernel's, made ready by the Makefile)
#     KEY CERT the machine owner key dkms signs with (mok_signing_key, mok_certificate); the
#              built module must carry a signature by CERT's subject, with the kernel's hash
# Checks: each step succeeds; the installed carveout.ko has vermagic REL, the signature (when
# KEY is given) and the dependencies modinfo names; depmod lists it; uninstall and remove leave
# the install tree and dkms's tree as they were. Prints "# ..." lines; exit 1 on a failure.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

headers=$(realpath "${1:?usage: dkms-check.sh HEADERS REL OUT [KEY CERT]}")
rel=${2:?usage: dkms-check.sh HEADERS REL OUT [KEY CERT]}
out=${3:?usage: dkms-check.sh HEADERS REL OUT [KEY CERT]}
key=${4:-}
cert=${5:-}

say() { echo "# $*"; }
failed() {
    say "$1"
    exit 1
}
command -v dkms >/dev/null || failed "dkms is not installed (apt-get install dkms; scripts/setup-host.sh)"
[[ -f $headers/Makefile ]] || failed "no kernel headers in $headers"

rm -rf "$out"
mkdir -p "$out"
out=$(realpath "$out")
src=$out/usr/src
dkms_tree=$out/var/lib/dkms
install_tree=$out/lib/modules
mkdir -p "$dkms_tree" "$install_tree/$rel" "$out/etc/dkms"

# The module's sources as a user installs them (make dkms-source).
make -s -C "$CARVEOUT_ROOT" DESTDIR="$out" dkms-source >/dev/null || failed "make dkms-source failed"
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$CARVEOUT_ROOT/dkms.conf")
[[ -f $src/carveout-$version/dkms.conf ]] || failed "make dkms-source made no $src/carveout-$version"

# dkms's configuration, as README "Secure Boot" has the user write it.
{
    echo "# carveout's DKMS check: sign with this machine owner key."
    if [[ -n $key ]]; then
        echo "mok_signing_key=$key"
        echo "mok_certificate=$cert"
        echo "sign_file=$headers/scripts/sign-file"
    else
        # No key: dkms signs nothing (no sign-file to find).
        echo "sign_file=/nonexistent"
    fi
} >"$out/etc/dkms/framework.conf"

# dkms_run ARGS...: dkms ARGS with the scratch trees, its output indented as diagnostics.
dkms_run() {
    local status=0
    say "dkms $*"
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare -m bash -c 'mount --bind "$1/etc/dkms" /etc/dkms && shift && exec "$@"' _ "$out" \
        dkms "$@" --sourcetree "$src" --dkmstree "$dkms_tree" --installtree "$install_tree" \
        >"$out/dkms.log" 2>&1 || status=$?
    sed 's/^/#     /' "$out/dkms.log"
    return "$status"
}
tree() { (cd "$1" && find . -mindepth 1 | sort); }

before=$(tree "$install_tree")
kargs=(-k "$rel" --kernelsourcedir "$headers")
dkms_run add "carveout/$version" || failed "dkms add failed"
dkms_run build "carveout/$version" "${kargs[@]}" || {
    log=$(find "$dkms_tree/carveout/$version/build" -name make.log -print -quit 2>/dev/null)
    [[ -z $log ]] || tail -n 30 "$log" | sed 's/^/#     make.log: /'
    failed "dkms build failed"
}
dkms_run install "carveout/$version" "${kargs[@]}" --no-depmod || failed "dkms install failed"
dkms_run status "carveout/$version" -k "$rel" || failed "dkms status failed"
grep -q "carveout/$version, $rel, [^:]*: installed" "$out/dkms.log" ||
    failed "dkms status does not say carveout/$version is installed for $rel"

ko=$install_tree/$rel/updates/dkms/carveout.ko
[[ -f $ko ]] || failed "dkms install put no carveout.ko in $install_tree/$rel/updates/dkms"
vermagic=$(modinfo -F vermagic "$ko")
say "installed $ko: vermagic $vermagic; depends: $(modinfo -F depends "$ko")"
[[ $vermagic == "$rel "* ]] || failed "carveout.ko has vermagic '$vermagic', the kernel is $rel"
# configfs as a module: the module must say it needs it (modprobe loads it first).
if grep -q '^CONFIG_CONFIGFS_FS=m' "$headers/.config" &&
    [[ ,$(modinfo -F depends "$ko"), != *,configfs,* ]]; then
    failed "the kernel has configfs as a module, but carveout.ko does not depend on it"
fi
if [[ -n $key ]]; then
    signer=$(modinfo -F signer "$ko")
    hash=$(modinfo -F sig_hashalgo "$ko")
    want=$(openssl x509 -in "$cert" -noout -subject -nameopt multiline 2>/dev/null ||
        openssl x509 -inform DER -in "$cert" -noout -subject -nameopt multiline)
    want=$(sed -n 's/^ *commonName *= *//p' <<<"$want")
    want_hash=$(sed -n 's/^CONFIG_MODULE_SIG_HASH="\(.*\)"$/\1/p' "$headers/.config")
    say "signed by '$signer' ($hash); the machine owner key is '$want'"
    [[ $signer == "$want" ]] || failed "carveout.ko is not signed with $cert (signer '$signer')"
    [[ $hash == "${want_hash:-sha512}" ]] || failed "carveout.ko is signed with $hash, not ${want_hash:-sha512}"
fi
# A headers package has no modules.order or modules.builtin: depmod warns about those alone.
depmod -b "$out" -a "$rel" 2>"$out/depmod.err" || {
    sed 's/^/#     /' "$out/depmod.err"
    failed "depmod -b $out -a $rel failed"
}
grep -q '^updates/dkms/carveout.ko:' "$install_tree/$rel/modules.dep" ||
    failed "depmod does not list updates/dkms/carveout.ko"
rm -f "$install_tree/$rel"/modules.*

dkms_run uninstall "carveout/$version" -k "$rel" --no-depmod || failed "dkms uninstall failed"
dkms_run remove "carveout/$version" --all --no-depmod || failed "dkms remove failed"
after=$(tree "$install_tree")
[[ $after == "$before" ]] || failed "left in $install_tree after uninstall and remove: $(comm -13 \
    <(echo "$before") <(echo "$after") | tr '\n' ' ')"
[[ -z $(tree "$dkms_tree") ]] || failed "left in dkms's tree after remove: $(tree "$dkms_tree" | head -n 5 |
    tr '\n' ' ')"
say "dkms add, build, install, uninstall, remove for $rel: nothing left behind"
