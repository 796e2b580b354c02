#!/usr/bin/env bash
# Installs what goes with the module (for `make install` and `make dkms-source`): the udev
# rule, the modprobe.d example, the userspace header, and the group the rule names.
# Idempotent; an edited /etc/modprobe.d/carveout.conf is never overwritten. Each is recorded in
# the install manifest (scripts/manifest.sh) for `make uninstall`.
#   environment: DESTDIR (a staging root; empty: this system), PREFIX (default /usr/local)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

# shellcheck source=scripts/manifest.sh
source "$CARVEOUT_ROOT/scripts/manifest.sh"

destdir=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
dist=$CARVEOUT_ROOT/dist

manifest_install 0644 "$dist/60-carveout.rules" "$destdir/etc/udev/rules.d/60-carveout.rules"
manifest_install_conf "$dist/carveout.modprobe.conf" "$destdir/etc/modprobe.d/carveout.conf"
manifest_install 0644 "$CARVEOUT_ROOT/include/carveout.h" "$destdir$prefix/include/carveout.h"

# The group and udev's reload only for this system, not for a staging root.
[[ -z $destdir ]] || exit 0
if ! getent group carveout >/dev/null; then
    groupadd --system carveout ||
        die "groupadd --system carveout failed" "run as root, or create the group yourself"
    manifest_add group carveout
    log "created the group carveout: usermod -aG carveout YOU, then log in again"
fi
if command -v udevadm >/dev/null && udevadm control --reload-rules 2>/dev/null; then
    udevadm trigger --subsystem-match=carveout 2>/dev/null || true
else
    log "udev did not reload its rules (not running?); the rule applies from the next boot"
fi
