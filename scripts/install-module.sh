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

before=$(manifest_snapshot "$moddir")
"$make" -C "$kdir" M="$CARVEOUT_ROOT" INSTALL_MOD_PATH="$mod_path" modules_install
if [[ -e $kdir/System.map ]]; then
    :
elif command -v depmod >/dev/null; then
    echo "depmod ${mod_path:+-b $mod_path }-a $release"
    depmod ${mod_path:+-b "$mod_path"} -a "$release"
else
    log "depmod not found (apt-get install kmod): run depmod -a $release"
fi
manifest_record_new "$moddir" "$before"
