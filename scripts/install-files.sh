#!/usr/bin/env bash
# Installs what goes with the module (for `make install` and `make dkms-source`): the udev
# rule, the modprobe.d example, the userspace header, and the group the rule names.
# Idempotent; an edited /etc/modprobe.d/carveout.conf is never overwritten.
#   environment: DESTDIR (a staging root; empty: this system), PREFIX (default /usr/local)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

destdir=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
dist=$CARVEOUT_ROOT/dist

install -D -m 0644 "$dist/60-carveout.rules" "$destdir/etc/udev/rules.d/60-carveout.rules" ||
    die "could not install $destdir/etc/udev/rules.d/60-carveout.rules" "run as root, or set DESTDIR"
modprobe_conf=$destdir/etc/modprobe.d/carveout.conf
if [[ -e $modprobe_conf ]]; then
    log "keeping $modprobe_conf"
else
    install -D -m 0644 "$dist/carveout.modprobe.conf" "$modprobe_conf" ||
        die "could not install $modprobe_conf" "run as root, or set DESTDIR"
fi
install -D -m 0644 "$CARVEOUT_ROOT/include/carveout.h" "$destdir$prefix/include/carveout.h" ||
    die "could not install $destdir$prefix/include/carveout.h" "run as root, or set PREFIX"

# The group and udev's reload only for this system, not for a staging root.
[[ -z $destdir ]] || exit 0
if ! getent group carveout >/dev/null; then
    groupadd --system carveout ||
        die "groupadd --system carveout failed" "run as root, or create the group yourself"
    log "created the group carveout: usermod -aG carveout YOU, then log in again"
fi
if command -v udevadm >/dev/null && udevadm control --reload-rules 2>/dev/null; then
    udevadm trigger --subsystem-match=carveout 2>/dev/null || true
else
    log "udev did not reload its rules (not running?); the rule applies from the next boot"
fi
