#!/usr/bin/env bash
# Boots the test kernel in QEMU (TCG) with a reserved range and runs the guest side.
#   run.sh test   the suite (host cargo test, then the guest): KTAP on stdout, ending
#                 "N passed, N failed"; exit 1 on a failure
#   run.sh demo   load the module, show the region, write and read it back
# Environment: CARVEOUT_TIMEOUT (seconds, default 600), CARVEOUT_KVM=1 to opt in to KVM,
# CARVEOUT_KDIR (a kernel build to boot instead of the test kernel: make test-debug),
# CARVEOUT_GUEST_ARGS (more kernel command line, e.g. cvt_fuzz_seed=N), CARVEOUT_SUITES
# (development: only these guest suites, e.g. attrs,huge; the other cases then fail as not
# reported; `host` runs the host-side cases of scripts/host-cases.sh, `rpm` the RPM packaged
# kernel's case; the packaged-kernel cases are skipped otherwise).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/../scripts/common.sh"

mode=${1:-test}
timeout_s=${CARVEOUT_TIMEOUT:-600}

# The reservation the guest boots with. 128 MiB up and below 256 MiB: inside the 28-bit DMA
# mask of QEMU's edu device. A second range, memmap=!, is held by the kernel's pmem driver;
# reserve_mem= sets 4 MiB of RAM aside by name (cvtest).
base=0x8000000
size=0x4000000
pmem_base=0x10000000
pmem_size=0x1000000

# The cases: every `run_case NAME` in the host-side cases (scripts/host-cases.sh), in the
# guest suites (in the order they run), then the second boot's cases in /init, then the
# packaged kernels' (qemu/extmod.sh). A case never reported fails.
mapfile -t cases < <(grep -ho '^ *run_case [a-z0-9_]*' "$CARVEOUT_ROOT/scripts/host-cases.sh" \
    "$CARVEOUT_ROOT"/qemu/guest/[0-9]*.sh "$CARVEOUT_ROOT/qemu/guest/init" \
    "$CARVEOUT_ROOT/qemu/guest/extmod.sh" | awk '{print $2}')
# selected NAME: CARVEOUT_SUITES is unset or names NAME.
selected() { [[ -z ${CARVEOUT_SUITES:-} || ,$CARVEOUT_SUITES, == *",$1,"* ]]; }

kdir=${CARVEOUT_KDIR:-$("$CARVEOUT_ROOT/scripts/build-kernel.sh")}
out="$CARVEOUT_ROOT/build/guest"
initramfs=$("$CARVEOUT_ROOT/scripts/build-guest.sh" "$kdir" "$out")

append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic
    "memmap=64M\$$base" "memmap=16M!$pmem_base" reserve_mem=4M:4096:cvtest
    "cvt_mode=$mode" "cvt_base=$base" "cvt_size=$size"
    "cvt_pmem_base=$pmem_base" "cvt_pmem_size=$pmem_size"
)
[[ -z ${CARVEOUT_SUITES:-} ]] || append+=("cvt_suites=$CARVEOUT_SUITES")
read -ra guest_args <<<"${CARVEOUT_GUEST_ARGS:-}"
append+=("${guest_args[@]}")
qemu_guest 512M "$kdir/arch/x86/boot/bzImage" "$initramfs" "${append[*]}"
qemu+=(-device edu)

if [[ $mode == demo ]]; then
    log "booting the guest (TCG): ${append[*]}"
    status=0
    timeout --foreground "$timeout_s" "${qemu[@]}" -serial stdio || status=$?
    # isa-debug-exit with 0 gives 1: the guest finished.
    [[ $status == 1 ]] || die "the guest did not finish cleanly (status $status)"
    exit 0
fi

# Host side first: the carveout crate's unit tests (cargo test), one KTAP case per test,
# named host::<test>. A cargo that fails without reporting a failed test (say, the crate does
# not build) is one failed case, host_cargo_test.
host_names=()
host_results=()
host_log="$out/cargo-test.log"
log "cargo test (host) of userspace-test; log: $host_log"
host_status=0
(cd "$CARVEOUT_ROOT/userspace-test" && cargo test --locked --color never) >"$host_log" 2>&1 ||
    host_status=$?
while IFS=$'\t' read -r name result; do
    host_names+=("host::${name//[^A-Za-z0-9_:.-]/_}")
    host_results+=("$result")
done < <(sed -n 's/^test \(.*\) \.\.\. \(ok\|FAILED\|ignored\)$/\1\t\2/p' "$host_log")
if ((host_status != 0)) && ! printf '%s\n' "${host_results[@]}" | grep -qx FAILED; then
    host_names+=(host_cargo_test)
    host_results+=("failed without a failed test (exit $host_status); see $host_log")
elif ((${#host_names[@]} == 0)); then
    host_names+=(host_cargo_test)
    host_results+=("ran no test; see $host_log")
fi

# The host-side cases (install, README examples): "@@case" lines like the guest's.
host_cases="$out/host-cases.txt"
: >"$host_cases"
if selected host; then
    "$CARVEOUT_ROOT/scripts/host-cases.sh" "$kdir" "$out" >"$host_cases" ||
        log "scripts/host-cases.sh stopped (see above): its cases are not reported"
fi

console="$out/console.log"
: >"$console"
log "booting the guest (TCG); console: $console"
"${qemu[@]}" -serial "file:$console" &
qemu_pid=$!
trap 'kill "$qemu_pid" 2>/dev/null || true' EXIT

verdict=""
start=$SECONDS
while kill -0 "$qemu_pid" 2>/dev/null; do
    sleep 1
    if grep -q 'Kernel panic' "$console"; then
        verdict="the guest kernel panicked"
    elif (($(grep -c '^@@boot' "$console") > 2)); then
        verdict="the guest booted a third time: the warm reset lost its marker"
    elif ((SECONDS - start > timeout_s)); then
        verdict="the guest did not finish within ${timeout_s}s"
    fi
    if [[ -n $verdict ]]; then
        kill "$qemu_pid" 2>/dev/null || true
        break
    fi
done
status=0
wait "$qemu_pid" || status=$?
trap - EXIT
if [[ -z $verdict && $status != 1 ]]; then
    verdict="QEMU exited with status $status, not through isa-debug-exit"
fi

# Report: KTAP, the host's cargo tests first, then the guest's case lines; a case never
# reported fails.
tr -d '\r' <"$console" >"$console.txt"
cat "$host_cases" >>"$console.txt"
# Another kernel: the test configuration built as Debian packages, with carveout built against
# the headers package alone. Its case's lines join this console's.
# The packages are always those of the test kernel's configuration (cached), whichever kernel
# the suite booted.
if [[ -z ${CARVEOUT_SUITES:-} ]]; then
    "$CARVEOUT_ROOT/qemu/extmod.sh" "$("$CARVEOUT_ROOT/scripts/build-kernel.sh")" "$out" "$base" "$size" \
        >>"$console.txt" ||
        log "qemu/extmod.sh stopped (see above): extmod_from_headers_package is not reported"
fi
# The same for the RPM packages (make binrpm-pkg; the kernel-devel package unpacked).
if selected rpm; then
    "$CARVEOUT_ROOT/qemu/extmod.sh" --rpm "$("$CARVEOUT_ROOT/scripts/build-kernel.sh")" "$out" \
        "$base" "$size" >>"$console.txt" ||
        log "qemu/extmod.sh --rpm stopped (see above): extmod_from_rpm_package is not reported"
fi
passed=0
failed=0
echo "KTAP version 1"
echo "1..$((${#host_names[@]} + ${#cases[@]}))"
n=0
for i in "${!host_names[@]}"; do
    n=$((n + 1))
    case ${host_results[i]} in
    ok)
        echo "ok $n ${host_names[i]}"
        passed=$((passed + 1))
        ;;
    ignored) echo "ok $n ${host_names[i]} # SKIP ignored" ;;
    FAILED)
        echo "not ok $n ${host_names[i]} # see $host_log"
        failed=$((failed + 1))
        ;;
    *)
        echo "not ok $n ${host_names[i]} # ${host_results[i]}"
        failed=$((failed + 1))
        ;;
    esac
done
for name in "${cases[@]}"; do
    n=$((n + 1))
    result=$(grep -E "^@@case (ok|not ok) $name\$" "$console.txt" | tail -n 1 || true)
    diag=""
    if [[ $name == unload_clean && $result == "@@case ok $name" ]]; then
        if grep -q '^@@dmesg-dirty' "$console.txt"; then
            result="" diag="dmesg of the first boot held a warning"
        elif grep -qE 'WARNING:|BUG:|Oops|Call Trace' "$console.txt"; then
            result="" diag="the console holds a kernel warning"
        fi
    fi
    if [[ $result == "@@case ok $name" ]]; then
        echo "ok $n $name"
        passed=$((passed + 1))
    else
        [[ -n $result ]] || diag=${diag:-"not reported by the guest${verdict:+: $verdict}"}
        echo "not ok $n $name${diag:+ # $diag}"
        failed=$((failed + 1))
    fi
done
if printf '%s\n' "${host_results[@]}" | grep -qvx -e ok -e ignored; then
    echo "# cargo test ($host_log):"
    grep -E -A12 '^(---- |error)' "$host_log" | sed 's/^/#   /' | head -n 60
fi
if ((failed)); then
    echo "# guest console ($console.txt), guest diagnostics:"
    grep -E '^(# |@@)' "$console.txt" | sed 's/^/#   /' | tail -n 80
    [[ -z $verdict ]] || echo "# $verdict"
fi
echo "$passed passed, $failed failed"
((failed == 0))
