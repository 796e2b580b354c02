#!/usr/bin/env bash
# Counts, per Rust file of the module, the `unsafe` blocks, `unsafe impl`s, `unsafe fn`s
# (`unsafe extern "C" fn` included) and distinct `bindings::` items, for the design notes.
#
#   scripts/count-unsafe.sh            # the checkout's rust/
#   scripts/count-unsafe.sh REV        # rust/ as of a git revision, e.g. ad2adf4
#
# Comment lines (`//`, `///`, `//!`) are skipped, so `// SAFETY:` and doc text do not count;
# `unsafe(uninit)` in `global_lock!` is none of the three.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tree="$root/rust"
if [ $# -gt 0 ]; then
    tree=$(mktemp -d)
    trap 'rm -rf "$tree"' EXIT
    git -C "$root" archive "$1" rust | tar -x -C "$tree"
    tree="$tree/rust"
fi

# code FILE: the file without comment lines and without trailing `// ...` comments.
code() { sed -e '/^[[:space:]]*\/\//d' -e 's://.*$::' "$1"; }

# count REGEX FILE: lines of code matching REGEX, counting each match.
count() { { code "$2" | grep -oE "$1" || true; } | wc -l; }

printf '%-32s %7s %7s %7s %10s\n' file blocks impl fn bindings
total_blocks=0 total_impl=0 total_fn=0
all_bindings=$(mktemp)
trap 'rm -f "$all_bindings"; [ "$tree" = "$root/rust" ] || rm -rf "$(dirname "$tree")"' EXIT
while IFS= read -r file; do
    blocks=$(count '\bunsafe[[:space:]]*\{' "$file")
    impls=$(count '\bunsafe[[:space:]]+impl\b' "$file")
    fns=$(count '\bunsafe[[:space:]]+(extern[[:space:]]+"C"[[:space:]]+)?fn\b' "$file")
    { code "$file" | grep -oE 'bindings::[A-Za-z_][A-Za-z0-9_]*' || true; } | sort -u >"$all_bindings.file"
    bindings=$(wc -l <"$all_bindings.file")
    cat "$all_bindings.file" >>"$all_bindings"
    rm -f "$all_bindings.file"
    printf '%-32s %7d %7d %7d %10d\n' "${file#"$tree"/}" "$blocks" "$impls" "$fns" "$bindings"
    total_blocks=$((total_blocks + blocks))
    total_impl=$((total_impl + impls))
    total_fn=$((total_fn + fns))
done < <(find "$tree" -name '*.rs' | LC_ALL=C sort)
printf '%-32s %7d %7d %7d %10d\n' "total (bindings: distinct)" "$total_blocks" "$total_impl" \
    "$total_fn" "$(sort -u "$all_bindings" | wc -l)"
