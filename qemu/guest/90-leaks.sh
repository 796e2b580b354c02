# shellcheck shell=sh
# Leaks, last of the main guest's first boot: on the debug kernel, kmemleak finds nothing that
# carveout allocated and did not free, after every suite before this one loaded, used and
# unloaded the module (case_kmemleak_clean in lib.sh).

suite_leaks() {
    run_case kmemleak_clean case_kmemleak_clean
}
SUITES="$SUITES leaks"
