#!/usr/bin/env bash
# The kernel's make for carveout: `kmake.sh KDIR ARGS...` runs `make -C KDIR ARGS...` from the
# module's directory. For Debian's stock headers (a Rust kernel whose headers package lacks the
# Rust build files) it builds against scripts/debian-stock-kdir.sh's directory instead, through
# its carveout-run: with the compilers the kernel was built with (in a Debian root of the
# kernel's release when the host is another).
#   usage: kmake.sh KDIR MAKE-ARGUMENTS...
#   environment: MAKE (default make; under the stock path the root's make runs)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

kdir=${1:?usage: kmake.sh KDIR MAKE-ARGUMENTS...}
shift
cd "$CARVEOUT_ROOT"
if debian_stock_headers "$kdir"; then
    stock=$("$CARVEOUT_ROOT/scripts/debian-stock-kdir.sh" "$kdir")
    exec "$stock/carveout-run" make -C "$stock" "$@"
fi
exec "${MAKE:-make}" -C "$kdir" "$@"
