# shellcheck shell=sh
# The documentation's examples marked `run` (issue #15; scripts/readme-examples.sh builds them
# for the guest): each runs against /dev/carveout0 and exits 0, leaving the kernel quiet. Each
# writes the region's first word and prints it ("first word 0x1234", as the README's do): seen
# from outside the driver (/dev/mem), that word holds what it printed, and the rest of the
# region the pattern written before it ran (checked through a mapping).

EXAMPLES=/lib/carveout/examples

case_readme_examples_run() {
    ok=0
    if [ ! -s "$EXAMPLES/wanted" ]; then
        say "no C or Rust example in README.md or docs/*.md is marked run"
        return 1
    fi
    module_loaded || load || return 1
    while read -r example; do
        if [ ! -x "$EXAMPLES/$example" ]; then
            say "$example: not built for the guest (see build/guest/readme-examples.log)"
            ok=1
            continue
        fi
        carveoutctl fill --seed 0xe4a >/dev/null || return 1
        "$EXAMPLES/$example" >/tmp/example.out 2>&1
        rc=$?
        sed "s/^/# $example: /" /tmp/example.out
        if [ "$rc" != 0 ]; then
            say "$example exited $rc"
            ok=1
        fi
        # What it left in the region, seen from outside it.
        printed=$(sed -n 's/.*first word \(0x[0-9a-f]*\)$/\1/p' /tmp/example.out | head -n 1)
        word=0x$(dd if=/dev/mem bs=8 skip=$((BASE / 8)) count=1 2>/dev/null | od -An -tx8 | tr -d ' ')
        say "$example: printed first word ${printed:-(none)}; /dev/mem: $word"
        if [ -z "$printed" ] || [ "$word" != "$(printf '0x%016x' "$printed")" ]; then
            say "$example: the region's first word is not the one it printed"
            ok=1
        fi
        if carveoutctl verify --seed 0xe4a --range 8 >/dev/null 2>&1; then
            say "$example: the first word is still the pattern's: it wrote nothing"
            ok=1
        fi
        carveoutctl verify --seed 0xe4a --range "$((SIZE - 8))@8" >/tmp/example.verify 2>&1 || {
            sed "s/^/# after $example: /" /tmp/example.verify
            say "$example: the rest of the region lost the pattern"
            ok=1
        }
    done <"$EXAMPLES/wanted"
    dmesg_clean || ok=1
    return "$ok"
}

suite_examples() {
    run_case readme_examples_run case_readme_examples_run
}
SUITES="$SUITES examples"
