# shellcheck shell=sh
# The documentation's examples marked `run` (issue #15; scripts/readme-examples.sh builds them
# for the guest): each runs against /dev/carveout0 and exits 0, leaving the kernel quiet.

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
        # What it left in the region, seen from outside it (the pattern, where it wrote).
        carveoutctl verify --seed 0xe4a 2>&1 | sed "s/^/# after $example: /"
        carveoutctl info >/dev/null || { say "the region is unusable after $example"; ok=1; }
    done <"$EXAMPLES/wanted"
    dmesg_clean || ok=1
    return "$ok"
}

suite_examples() {
    run_case readme_examples_run case_readme_examples_run
}
SUITES="$SUITES examples"
