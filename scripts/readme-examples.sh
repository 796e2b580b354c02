#!/usr/bin/env bash
# Builds every C and Rust example in the documentation, so that none can rot: the case
# readme_examples_build (scripts/host-cases.sh); with --run-only, the examples the guest runs
# (scripts/build-guest.sh, case readme_examples_run).
#
#   usage: readme-examples.sh [--target TRIPLE] [--run-only] OUTDIR [FILE.md...]
#     FILE.md     default: README.md and docs/*.md
#     --target    build for TRIPLE (x86_64-unknown-linux-musl for the guest; the carveout crate
#                 must have been built for it in release, as build-guest.sh does)
#     --run-only  only the examples marked `run`
#   Writes OUTDIR/src/NAME.{c,rs}, OUTDIR/bin/NAME and OUTDIR/run.list (the names of the
#   examples marked `run`). Prints one "# ..." line per example, the compiler's words for one
#   that fails; exit 1 if any fails.
#
# The convention, for a fenced block's info string (the words after ```):
#   ```c, ```rust        built. A block with a main() is a whole program; one without is a
#                        fragment, built as the body of main(): C with the usual headers
#                        (stdio, stdint, inttypes, fcntl, unistd, sys/ioctl, sys/mman and
#                        carveout.h), Rust returning Result<(), Box<dyn Error>> (so `?` works)
#                        with unused variables allowed.
#   ```c lib, ```rust lib  declarations without a main: compiled, not linked.
#   ```c ignore, ```rust ignore  not built (pseudo-code, an excerpt that cannot stand alone).
#   ```c run, ```rust run  a whole program, also run in the guest against /dev/carveout0 (it
#                        must exit 0).
#   Any other language (sh, console, text) is left alone.
# C: gcc -static -Wall -Werror against include/ (fragments also -Wno-unused-variable and
# -Wno-unused-but-set-variable). Rust: edition 2021, -D warnings, linked against the carveout
# crate of userspace-test (`use carveout::...`) and std; nothing else.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

target=""
run_only=0
while (($#)); do
    case $1 in
    --target) target=${2:?--target needs a triple}; shift 2 ;;
    --run-only) run_only=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option: $1" "see $0 --help" ;;
    *) break ;;
    esac
done
out=${1:?usage: readme-examples.sh [--target TRIPLE] [--run-only] OUTDIR [FILE.md...]}
shift
files=("$@")
if ((${#files[@]} == 0)); then
    files=("$CARVEOUT_ROOT/README.md")
    for f in "$CARVEOUT_ROOT"/docs/*.md; do
        [[ -e $f ]] && files+=("$f")
    done
fi

rm -rf "$out"
mkdir -p "$out/src" "$out/bin"
: >"$out/run.list"

# The blocks, one line each: NAME LANG KIND FILE:LINE (KIND: program, fragment, lib, run,
# ignore), their text in $out/src/NAME.LANG.
index=$out/index.tsv
: >"$index"
for f in "${files[@]}"; do
    [[ -r $f ]] || die "cannot read $f"
    rel=$(realpath --relative-to="$CARVEOUT_ROOT" "$f")
    [[ $rel != ../* ]] || rel=$(basename "$f")
    stem=$(sed 's/\.md$//; s/[^A-Za-z0-9]/_/g' <<<"$rel" | tr '[:upper:]' '[:lower:]')
    awk -v stem="$stem" -v rel="$rel" -v src="$out/src" '
        function flush(   kind, i, body) {
            if (lang != "c" && lang != "rust") return
            kind = ""
            for (i = 2; i <= nw; i++)
                if (w[i] == "ignore" || w[i] == "lib" || w[i] == "run") kind = w[i]
            if (kind == "") {
                body = text
                kind = (lang == "c" ? body ~ /(^|[^A-Za-z0-9_])main[ \t]*\(/ : body ~ /fn[ \t]+main[ \t]*\(/) ? "program" : "fragment"
            }
            name = stem "_" start
            printf "%s", text > (src "/" name "." (lang == "rust" ? "rs" : "c"))
            close(src "/" name "." (lang == "rust" ? "rs" : "c"))
            printf "%s\t%s\t%s\t%s:%d\n", name, lang, kind, rel, start
        }
        !infence && /^ ? ? ?```/ {
            match($0, /^ */); indent = RLENGTH
            info = substr($0, indent + 4)
            gsub(/[{},.]/, " ", info)
            nw = split(info, w, /[ \t]+/)
            if (w[1] == "") { for (i = 1; i < nw; i++) w[i] = w[i + 1]; nw-- }
            lang = tolower(w[1]); text = ""; start = NR + 1; infence = 1
            next
        }
        infence && /^ ? ? ?```[ \t]*$/ { flush(); infence = 0; next }
        infence {
            line = $0
            for (i = 0; i < indent && substr(line, 1, 1) == " "; i++) line = substr(line, 2)
            text = text line "\n"
        }
        END { if (infence) printf "%s: a code block opened at line %d is never closed\n", rel, start > "/dev/stderr" }
    ' "$f" >>"$index"
done

# The Rust side: the carveout crate built for the target, its dependencies beside it.
rust_args=()
if grep -qP '\trust\t(?!ignore)' "$index"; then
    crate=$CARVEOUT_ROOT/userspace-test
    if [[ -n $target ]]; then
        libdir=$crate/target/$target/release
        # Proc-macro crates (serde_derive) are built for the host, beside the host's build.
        rust_args=(--target "$target" -L "dependency=$crate/target/release/deps")
    else
        libdir=$crate/target/debug
        cargo build --quiet --locked --lib --manifest-path "$crate/Cargo.toml" >&2 ||
            die "building the carveout crate failed"
    fi
    [[ -f $libdir/libcarveout.rlib ]] ||
        die "no $libdir/libcarveout.rlib" "build the crate first (cargo build --release --target $target)"
    rust_args+=(--edition 2021 -D warnings --extern "carveout=$libdir/libcarveout.rlib"
        -L "dependency=$libdir/deps")
fi

c_headers='#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <carveout.h>
'

# build NAME LANG KIND FILE:LINE: compiles one example (C errors name the Markdown file and
# line).
build() {
    local name=$1 lang=$2 kind=$3 md=${4%:*} line=${4##*:} src obj
    local cflags=(-static -Wall -Werror -I"$CARVEOUT_ROOT/include")
    obj=$out/bin/$name
    if [[ $lang == c ]]; then
        src=$out/src/$name.c
        case $kind in
        fragment)
            {
                printf '%s\nint main(void)\n{\n#line %d "%s"\n' "$c_headers" "$line" "$md"
                cat "$src"
                printf '\n\treturn 0;\n}\n'
            } >"$src.build.c"
            cflags+=(-Wno-unused-variable -Wno-unused-but-set-variable)
            ;;
        *)
            {
                printf '#line %d "%s"\n' "$line" "$md"
                cat "$src"
            } >"$src.build.c"
            [[ $kind != lib ]] || { cflags+=(-c); obj=$obj.o; }
            ;;
        esac
        gcc "${cflags[@]}" -o "$obj" "$src.build.c"
    else
        src=$out/src/$name.rs
        local kind_args=(--crate-type bin)
        case $kind in
        fragment)
            {
                printf '#![allow(unused, unreachable_code)]\n'
                printf 'fn main() -> Result<(), Box<dyn std::error::Error>> {\n'
                cat "$src"
                printf '    Ok(())\n}\n'
            } >"$src.build.rs"
            src=$src.build.rs
            ;;
        lib) kind_args=(--crate-type lib) obj=$obj.rlib ;;
        esac
        rustc "${rust_args[@]}" "${kind_args[@]}" --crate-name "$name" -o "$obj" "$src"
    fi
}

total=0
failed=0
while IFS=$'\t' read -r name lang kind where; do
    [[ $kind != ignore ]] || { echo "# skipped $where ($lang ignore)"; continue; }
    ((run_only == 0)) || [[ $kind == run ]] || continue
    total=$((total + 1))
    if build "$name" "$lang" "$kind" "$where" >"$out/$name.log" 2>&1; then
        echo "# built $where ($lang $kind): $name"
        [[ $kind != run ]] || echo "$name" >>"$out/run.list"
    else
        failed=$((failed + 1))
        echo "# FAILED $where ($lang $kind): $name"
        sed 's/^/#     /' "$out/$name.log" | head -n 30
    fi
done <"$index"
echo "# $total examples, $failed failed (from ${files[*]#"$CARVEOUT_ROOT/"})"
((failed == 0))
