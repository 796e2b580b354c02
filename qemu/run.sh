#!/usr/bin/env bash
# Boots the test kernel in QEMU (TCG) with a reserved range and runs the guest side.
#   run.sh test   the suite: KTAP on stdout, ending "N passed, N failed"; exit 1 on a failure
#   run.sh demo   load the module, show the region, write and read it back
# Environment: CARVEOUT_TIMEOUT (seconds, default 600), CARVEOUT_KVM=1 to opt in to KVM,
# CARVEOUT_KDIR (a kernel build to boot instead of the test kernel: make test-debug),
# CARVEOUT_GUEST_ARGS (more kernel command line, e.g. cvt_fuzz_seed=N).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/../scripts/common.sh"

mode=${1:-test}
timeout_s=${CARVEOUT_TIMEOUT:-600}

# The reservation the guest boots with. 128 MiB up and below 256 MiB: inside the 28-bit DMA
# mask of QEMU's edu device. A second range, memmap=!, is held by the kernel's pmem driver.
base=0x8000000
size=0x4000000
pmem_base=0x10000000
pmem_size=0x1000000

# The cases: every `run_case NAME` in the guest suites (in the order they run), then the
# second boot's cases in /init. A case the guest never reports fails.
mapfile -t cases < <(grep -ho '^ *run_case [a-z0-9_]*' \
    "$CARVEOUT_ROOT"/qemu/guest/[0-9]*.sh "$CARVEOUT_ROOT/qemu/guest/init" | awk '{print $2}')

kdir=${CARVEOUT_KDIR:-$("$CARVEOUT_ROOT/scripts/build-kernel.sh")}
out="$CARVEOUT_ROOT/build/guest"
initramfs=$("$CARVEOUT_ROOT/scripts/build-guest.sh" "$kdir" "$out")

append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic
    "memmap=64M\$$base" "memmap=16M!$pmem_base"
    "cvt_mode=$mode" "cvt_base=$base" "cvt_size=$size"
    "cvt_pmem_base=$pmem_base" "cvt_pmem_size=$pmem_size"
)
read -ra guest_args <<<"${CARVEOUT_GUEST_ARGS:-}"
append+=("${guest_args[@]}")
# TCG by default: KVM guests hang on these machines.
accel=(-accel tcg -cpu max)
[[ ${CARVEOUT_KVM:-0} == 1 ]] && accel=(-accel kvm -cpu host)
# shellcheck disable=SC2054 # QEMU's own options are comma-separated
qemu=(
    qemu-system-x86_64 -machine pc "${accel[@]}" -m 512M -smp 1
    -nodefaults -no-user-config -display none
    -kernel "$kdir/arch/x86/boot/bzImage" -initrd "$initramfs" -append "${append[*]}"
    -device isa-debug-exit,iobase=0xf4,iosize=0x04
    -device edu
)

if [[ $mode == demo ]]; then
    log "booting the guest (TCG): ${append[*]}"
    status=0
    timeout --foreground "$timeout_s" "${qemu[@]}" -serial stdio || status=$?
    # isa-debug-exit with 0 gives 1: the guest finished.
    [[ $status == 1 ]] || die "the guest did not finish cleanly (status $status)"
    exit 0
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

# Report: KTAP from the guest's case lines; a case never reported fails.
tr -d '\r' <"$console" >"$console.txt"
passed=0
failed=0
echo "KTAP version 1"
echo "1..${#cases[@]}"
n=0
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
if ((failed)); then
    echo "# guest console ($console.txt), guest diagnostics:"
    grep -E '^(# |@@)' "$console.txt" | sed 's/^/#   /' | tail -n 80
    [[ -z $verdict ]] || echo "# $verdict"
fi
echo "$passed passed, $failed failed"
((failed == 0))
