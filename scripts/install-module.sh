#!/usr/bin/env bash
# Installs carveout.ko for KDIR (the kernel's modules_install: lib/modules/RELEASE/updates) and
# runs depmod where the kernel's make does not (a headers package has no System.map); what
# appears under lib/modules/RELEASE goes into the install manifest (scripts/manifest.sh).
#   usage: install-module.sh KDIR
#   environment: INSTALL_MOD_PATH (default DESTDIR), DESTDIR, PREFIX, MAKE
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=scripts/manifest.sh
source "$CARVEOUT_ROOT/scripts/manifest.sh"

kdir=$1
mod_path=${INSTALL_MOD_PATH:-${DESTDIR:-}}
make=${MAKE:-make}
release=$(cat "$kdir/include/config/kernel.release") ||
    die "$kdir has no include/config/kernel.release" "is KDIR a configured kernel build?"
moddir=$mod_path/lib/modules/$release

# signed FILE: FILE ends with an appended module signature.
signed() { [[ $(tail -c 28 "$1" | tr -d '\0') == '~Module signature appended~' ]]; }

# A module signed already (make sign, make install KEY=…) keeps its signature: the kernel's own
# signing step (CONFIG_MODULE_SIG_ALL, with the kernel's key where the build tree has it) would
# append a second one, which no kernel accepts.
sign_args=()
! signed "$CARVEOUT_ROOT/carveout.ko" || sign_args=(CONFIG_MODULE_SIG_ALL=)
before=$(manifest_snapshot "$moddir")
# Debian's stock headers: modules_install runs in the compilers' root (scripts/kmake.sh), which
# sees the target directory through a bind mount.
mkdir -p "$moddir"
CARVEOUT_BIND=$(realpath "$moddir") MAKE=$make "$CARVEOUT_ROOT/scripts/kmake.sh" "$kdir" \
    M="$CARVEOUT_ROOT" INSTALL_MOD_PATH="$mod_path" "${sign_args[@]}" modules_install
if grep -q '^CONFIG_MODULE_SIG=y' "$kdir/include/config/auto.conf" 2>/dev/null &&
    [[ -f $moddir/updates/carveout.ko ]] && ! signed "$moddir/updates/carveout.ko"; then
    log "note: carveout.ko is not signed: a kernel that enforces signatures (Secure Boot's" \
        "lockdown, module.sig_enforce=1) refuses it; sign it with your enrolled key:" \
        "make install KEY=… CERT=… (README, \"Secure Boot\")"
fi
if [[ -e $kdir/System.map ]]; then
    :
elif command -v depmod >/dev/null; then
    echo "depmod ${mod_path:+-b $mod_path }-a $release"
    depmod ${mod_path:+-b "$mod_path"} -a "$release"
else
    log "depmod not found (apt-get install kmod): run depmod -a $release"
fi
manifest_record_new "$moddir" "$before"
