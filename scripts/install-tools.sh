#!/usr/bin/env bash
# Installs carveoutctl (release build) to $PREFIX/bin with its man page and its bash, zsh and
# fish completions, generated from its clap definition (CARVEOUTCTL_GENERATE=...). Recorded in
# the install manifest (scripts/manifest.sh) for `make uninstall`.
#   environment: DESTDIR (a staging root; empty: this system), PREFIX (default /usr/local),
#                CARGO (default cargo)
# As root without cargo in PATH (sudo), an existing release build is used: `make tools` first.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=scripts/manifest.sh
source "$CARVEOUT_ROOT/scripts/manifest.sh"

destdir=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
cargo=${CARGO:-cargo}
crate=$CARVEOUT_ROOT/userspace-test
bin=$crate/target/release/carveoutctl

if command -v "$cargo" >/dev/null; then
    log "building carveoutctl (cargo build --release)"
    "$cargo" build --quiet --release --locked --bin carveoutctl --manifest-path "$crate/Cargo.toml" ||
        die "building carveoutctl failed (see above)" "check that crates.io is reachable"
elif [[ -x $bin ]]; then
    log "no $cargo in PATH: installing the existing $bin"
else
    die "no $cargo in PATH and no release build of carveoutctl" \
        "run make tools as yourself first (it needs rustup's cargo), then make install again"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for what in man bash zsh fish; do
    CARVEOUTCTL_GENERATE=$what "$bin" >"$work/$what" ||
        die "carveoutctl could not generate its $what file"
done

share=$destdir$prefix/share
manifest_install 0755 "$bin" "$destdir$prefix/bin/carveoutctl"
manifest_install 0644 "$work/man" "$share/man/man1/carveoutctl.1"
manifest_install 0644 "$work/bash" "$share/bash-completion/completions/carveoutctl"
manifest_install 0644 "$work/zsh" "$share/zsh/site-functions/_carveoutctl"
manifest_install 0644 "$work/fish" "$share/fish/vendor_completions.d/carveoutctl.fish"
log "installed carveoutctl to $destdir$prefix/bin (man page, bash/zsh/fish completions)"
