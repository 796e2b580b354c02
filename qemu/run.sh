#!/usr/bin/env bash
# Boots the test kernel in QEMU (TCG) with a reserved range and runs the guest side.
#   run.sh test   the suite (host cargo test, then the guest, then a second guest with an
#                 IOMMU: q35, intel-iommu, qemu/guest/iommu-*.sh, a third with memory above
#                 4 GiB: qemu/guest/high-*.sh): KTAP on stdout, ending
#                 "N passed, N failed" (", N skipped" for cases the kernel cannot run, such
#                 as kmemleak's on the test kernel); exit 1 on a failure
#   run.sh demo   load the module, show the region, write and read it back
# Environment: CARVEOUT_TIMEOUT (seconds, default 600), CARVEOUT_KVM=1 to opt in to KVM,
# CARVEOUT_KDIR (a kernel build to boot instead of the test kernel: make test-debug),
# CARVEOUT_GUEST_ARGS (more kernel command line, e.g. cvt_fuzz_seed=N), CARVEOUT_SUITES
# (development: only these guest suites, e.g. attrs,huge or iommu,vfio; a guest none of whose
# suites is named does not boot; the other cases then fail as not reported; `host` runs the
# host-side cases of scripts/host-cases.sh, `signed` the boot that enforces module signatures,
# `rpm` the RPM packaged kernel's case, `stock` Debian's stock kernel's (qemu/stock.sh); the
# Debian-packaged kernel's case is skipped).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/../scripts/common.sh"

mode=${1:-test}
timeout_s=${CARVEOUT_TIMEOUT:-600}

# The reservation the guest boots with. 128 MiB up and below 256 MiB: inside the 28-bit DMA
# mask of QEMU's edu device. A second range, memmap=!, is held by the kernel's pmem driver;
# reserve_mem= sets 4 MiB of RAM aside by name (cvtest). memmap=# marks 1 MiB as ACPI data (an
# "ACPI Tables" entry in /proc/iomem): memory that is not carveout's to claim.
base=0x8000000
size=0x4000000
pmem_base=0x10000000
pmem_size=0x1000000
acpi_base=0x12000000
acpi_size=0x100000

# The guest with an IOMMU (issue 14): q35 with QEMU's intel-iommu in front of edu, the same
# kernel booted with intel_iommu=on, a smaller reservation at the same base. edu's DMA mask
# is 32 bits (its default, 28, would keep it from the top of the 32-bit IOVA space the
# kernel's DMA API allocates from).
iommu_size=0x800000
edu_dma_mask=0xffffffff

# The guest with memory above 4 GiB (qemu/guest/high-*.sh): 256 MiB below 4 GiB, 2 GiB + 64 MiB
# from 4 GiB on (max-ram-below-4g), 8 MiB of it reserved with memmap=$ (and 1 MiB at $base,
# below 4 GiB), and the GiB from 5 GiB, 1 GiB aligned, for 1 GiB entries (pud_mapping_1g; RAM
# above it too: /dev/mem reads only up to the last RAM); edu's DMA mask all 64 bits. TCG backs
# only the guest memory that is touched.
# swiotlb=force: the DMA API bounces every direct mapping (as in a confidential guest), which
# an attach must refuse; its pool 4 MiB (2048 slabs).
high_base=0x101000000
high_size=0x800000
high_gib_base=0x140000000

# The cases: every `run_case NAME` in the host-side cases (scripts/host-cases.sh), in the
# guest suites (in the order they run), then the second boot's cases in /init, then the
# packaged kernels' (qemu/extmod.sh); then the IOMMU guest's (qemu/guest/iommu-*.sh), then
# those of the guest with memory above 4 GiB (qemu/guest/high-*.sh). A case
# never reported fails.
guest_dir="$CARVEOUT_ROOT/qemu/guest"
case_names() { grep -ho '^ *run_case [a-z0-9_]*' "$@" | awk '{print $2}'; }
mapfile -t cases < <(case_names "$CARVEOUT_ROOT/scripts/host-cases.sh" "$guest_dir"/[0-9]*.sh \
    "$guest_dir/init" "$guest_dir/extmod.sh" "$guest_dir/signed.sh" "$CARVEOUT_ROOT/qemu/stock.sh")
mapfile -t iommu_cases < <(case_names "$guest_dir"/iommu-*.sh)
mapfile -t high_cases < <(case_names "$guest_dir"/high-*.sh)

# selected NAME: CARVEOUT_SUITES is unset or names NAME.
selected() { [[ -z ${CARVEOUT_SUITES:-} || ,$CARVEOUT_SUITES, == *",$1,"* ]]; }

# CARVEOUT_SUITES boots only the guests that run a suite named there.
suites_in() { sed -n "s/^ *$1=\"\\\$$1 \([a-z0-9_]*\)\"\$/\1/p" "${@:2}"; }
wants() {
    local suite
    [[ -z ${CARVEOUT_SUITES:-} ]] && return 0
    for suite in $(suites_in "$@"); do
        [[ ,$CARVEOUT_SUITES, == *,"$suite",* ]] && return 0
    done
    return 1
}
boot_main=1 boot_iommu=1
wants SUITES "$guest_dir"/[0-9]*.sh || boot_main=0
wants IOMMU_SUITES "$guest_dir"/iommu-*.sh || boot_iommu=0
boot_high=1
wants HIGH_SUITES "$guest_dir"/high-*.sh || boot_high=0

kdir=${CARVEOUT_KDIR:-$("$CARVEOUT_ROOT/scripts/build-kernel.sh")}
out="$CARVEOUT_ROOT/build/guest"
initramfs=$("$CARVEOUT_ROOT/scripts/build-guest.sh" "$kdir" "$out")

append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic
    "memmap=64M\$$base" "memmap=16M!$pmem_base" reserve_mem=4M:4096:cvtest "memmap=1M#$acpi_base"
    "cvt_mode=$mode" "cvt_base=$base" "cvt_size=$size"
    "cvt_pmem_base=$pmem_base" "cvt_pmem_size=$pmem_size"
    "cvt_acpi_base=$acpi_base" "cvt_acpi_size=$acpi_size"
)
[[ -z ${CARVEOUT_SUITES:-} ]] || append+=("cvt_suites=$CARVEOUT_SUITES")
read -ra guest_args <<<"${CARVEOUT_GUEST_ARGS:-}"
append+=("${guest_args[@]}")
# 768 MiB: the debug kernel's KASAN shadow, lockdep, DMA-API debugging and kprobes' tables
# take their share first, and the suites' tmpfs files (a whole region's copy, traces) theirs.
qemu_guest 768M "$kdir/arch/x86/boot/bzImage" "$initramfs" "${append[*]}"
qemu+=(-device edu)
main_qemu=("${qemu[@]}")

# The IOMMU guest: VFIO's type1 container and iommufd want interrupt remapping, which QEMU's
# intel-iommu lacks under TCG: allow_unsafe_interrupts. intel-iommu must come before the PCI
# devices.
iommu_append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic
    "memmap=8M\$$base" intel_iommu=on vfio_iommu_type1.allow_unsafe_interrupts=1
    iommufd.allow_unsafe_interrupts=1
    cvt_mode=iommu "cvt_base=$base" "cvt_size=$iommu_size" "cvt_edu_dma_mask=$edu_dma_mask"
)
[[ -z ${CARVEOUT_SUITES:-} ]] || iommu_append+=("cvt_suites=$CARVEOUT_SUITES")
iommu_append+=("${guest_args[@]}")
qemu_guest 256M "$kdir/arch/x86/boot/bzImage" "$initramfs" "${iommu_append[*]}" q35
qemu+=(-device intel-iommu -device "edu,dma_mask=$edu_dma_mask")
iommu_qemu=("${qemu[@]}")
high_append=(
    console=ttyS0 loglevel=5 panic=-1 oops=panic
    "memmap=8M\$$high_base" "memmap=1M\$$base" "memmap=1G\$$high_gib_base" "swiotlb=2048,force"
    cvt_mode=high "cvt_base=$high_base" "cvt_size=$high_size" "cvt_low_base=$base"
    "cvt_gib_base=$high_gib_base"
)
[[ -z ${CARVEOUT_SUITES:-} ]] || high_append+=("cvt_suites=$CARVEOUT_SUITES")
high_append+=("${guest_args[@]}")
qemu_guest 2368M "$kdir/arch/x86/boot/bzImage" "$initramfs" "${high_append[*]}" "pc,max-ram-below-4g=256M"
qemu+=(-device "edu,dma_mask=0xffffffffffffffff")
high_qemu=("${qemu[@]}")
qemu=("${main_qemu[@]}")

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

# boot_guest CONSOLE MAX_BOOTS QEMU...: runs the guest with its serial port in CONSOLE until
# it exits; sets `verdict` when it did not finish cleanly (a panic, more boots than MAX_BOOTS,
# the timeout, an exit not through isa-debug-exit) and `elapsed` to its run time in seconds.
boot_guest() {
    local console=$1 max_boots=$2 qemu_pid status start
    shift 2
    : >"$console"
    "$@" -serial "file:$console" &
    qemu_pid=$!
    # shellcheck disable=SC2064 # the pid is meant to be expanded now
    trap "kill $qemu_pid 2>/dev/null || true" EXIT
    verdict=""
    start=$SECONDS
    while kill -0 "$qemu_pid" 2>/dev/null; do
        sleep 1
        if grep -q 'Kernel panic' "$console"; then
            # Before /init said @@boot, carveout was not even loaded: the kernel itself failed.
            # That boot may be the one after a warm reset (@@rebooting), so only @@boot lines
            # since the last reset count.
            if awk '/^@@rebooting/ { up = 0 } /^@@boot/ { up = 1 } END { exit !up }' "$console"; then
                verdict="the guest kernel panicked"
            else
                verdict="the guest kernel failed before carveout was loaded (early boot)"
            fi
        elif (($(grep -c '^@@boot' "$console") > max_boots)); then
            verdict="the guest booted more than $max_boots times: the warm reset lost its marker"
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
    elapsed=$((SECONDS - start))
    if [[ -z $verdict && $status != 1 ]]; then
        verdict="QEMU exited with status $status, not through isa-debug-exit"
    fi
    tr -d '\r' <"$console" >"$console.txt"
}

# run_guest WANTED CONSOLE MAX_BOOTS WHAT HOW QEMU...: boots the guest WHAT (HOW: its machine,
# for the log) with boot_guest if WANTED is 1; CONSOLE.txt is emptied first. Sets `verdict` as
# boot_guest does, or to why the guest was not booted.
run_guest() {
    local wanted=$1 console=$2 max_boots=$3 what=$4 how=$5
    shift 5
    : >"$console.txt"
    verdict="not booted (CARVEOUT_SUITES names none of its suites)"
    ((wanted)) || return 0
    log "booting $what ($how); console: $console"
    boot_guest "$console" "$max_boots" "$@"
    log "$what ran for ${elapsed}s"
}

console="$out/console.log"
run_guest "$boot_main" "$console" 2 "the guest" TCG "${main_qemu[@]}"
main_verdict=$verdict
iommu_console="$out/iommu-console.log"
run_guest "$boot_iommu" "$iommu_console" 1 "the IOMMU guest" "q35, intel-iommu; TCG" "${iommu_qemu[@]}"
iommu_verdict=$verdict
high_console="$out/high-console.log"
run_guest "$boot_high" "$high_console" 1 "the guest with memory above 4 GiB" TCG "${high_qemu[@]}"
high_verdict=$verdict

# A kernel warning on the main guest's console (or in its first boot's dmesg) outside any case
# fails unload_clean: judged on the guest's own output, before other lines join it.
main_dirty=""
if grep -q '^@@dmesg-dirty' "$console.txt"; then
    main_dirty="dmesg of the first boot held a warning"
elif grep -qE "$KERNEL_WARNING" "$console.txt"; then
    main_dirty="the console holds a kernel warning"
fi

# Report: KTAP, the host's cargo tests first, then the guest's case lines; a case never
# reported fails. The host-side cases' lines join the main console's.
cat "$host_cases" >>"$console.txt"
# Another kernel: the test configuration built as Debian packages, with carveout built against
# the headers package alone. Its case's lines join this console's.
# The packages are always those of the test kernel's configuration (cached), whichever kernel
# the suite booted.
# With another kernel booted (make test-debug) both packaged-kernel cases are reported skipped:
# they would boot the very same packages again.
if [[ -n ${CARVEOUT_KDIR:-} ]]; then
    for name in $(case_names "$guest_dir/extmod.sh"); do
        echo "@@case skip $name run by make test (the packages are the test kernel's)"
    done >>"$console.txt"
elif [[ -z ${CARVEOUT_SUITES:-} ]]; then
    "$CARVEOUT_ROOT/qemu/extmod.sh" "$("$CARVEOUT_ROOT/scripts/build-kernel.sh")" "$out" "$base" "$size" \
        >>"$console.txt" ||
        log "qemu/extmod.sh stopped (see above): extmod_from_headers_package is not reported"
fi
# The booted kernel again, enforcing module signatures (module.sig_enforce=1): carveout.ko
# signed by make sign loads, unsigned it is refused.
if selected signed; then
    "$CARVEOUT_ROOT/qemu/signed.sh" "$kdir" "$out" "$base" "$size" >>"$console.txt" ||
        log "qemu/signed.sh stopped (see above): signed_module_enforced is not reported"
fi
# The same for the RPM packages (make binrpm-pkg; the kernel-devel package unpacked).
if selected rpm && [[ -z ${CARVEOUT_KDIR:-} ]]; then
    "$CARVEOUT_ROOT/qemu/extmod.sh" --rpm "$("$CARVEOUT_ROOT/scripts/build-kernel.sh")" "$out" \
        "$base" "$size" >>"$console.txt" ||
        log "qemu/extmod.sh --rpm stopped (see above): extmod_from_rpm_package is not reported"
fi
# Debian's unmodified stock kernel (CARVEOUT_SUITES: stock): carveout built against its headers
# package with no kernel build, and the user's suites on it (qemu/stock.sh).
# Run once: with another kernel booted (make test-debug) they are reported skipped.
if selected stock && [[ -n ${CARVEOUT_KDIR:-} ]]; then
    for name in $(case_names "$CARVEOUT_ROOT/qemu/stock.sh"); do
        echo "@@case skip $name run by make test (the stock kernel is the same for every suite)"
    done >>"$console.txt"
elif selected stock; then
    "$CARVEOUT_ROOT/qemu/stock.sh" "$out" "${append[*]}" "${iommu_append[*]}" >>"$console.txt" ||
        log "qemu/stock.sh stopped (see above): its cases are not reported"
fi
passed=0
failed=0
skipped=0
echo "KTAP version 1"
echo "1..$((${#host_names[@]} + ${#cases[@]} + ${#iommu_cases[@]} + ${#high_cases[@]}))"
n=0
for i in "${!host_names[@]}"; do
    n=$((n + 1))
    case ${host_results[i]} in
    ok)
        echo "ok $n ${host_names[i]}"
        passed=$((passed + 1))
        ;;
    ignored)
        echo "ok $n ${host_names[i]} # SKIP ignored"
        skipped=$((skipped + 1))
        ;;
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
iommu_dirty=""
if grep -qE "$KERNEL_WARNING" "$iommu_console.txt"; then
    iommu_dirty="the IOMMU guest's console holds a kernel warning"
fi
# The guest with memory above 4 GiB: a kernel warning fails the case it appeared in (from its
# "@@running NAME" line to its "@@case" line); one outside every case fails them all.
high_dirty=""
if awk -v warning="$KERNEL_WARNING" '/^@@running / { run = 1; w = 0; next } /^@@case / { run = 0; w = 0; next }
    $0 ~ warning && !run { w = 1 } END { exit !w }' "$high_console.txt"; then
    high_dirty="the console of the guest with memory above 4 GiB holds a kernel warning outside its cases"
fi
# warned_during CONSOLE NAME: a kernel warning in CONSOLE while case NAME ran.
warned_during() {
    awk -v name="$2" -v warning="$KERNEL_WARNING" '/^@@case / { if ($NF == name) { found = 1; exit } w = 0; next }
        /^@@running / { w = 0; next }
        $0 ~ warning { w = 1 }
        END { exit !(found && w) }' "$1"
}
for name in "${cases[@]}" "${iommu_cases[@]}" "${high_cases[@]}"; do
    n=$((n + 1))
    file=$console.txt verdict=$main_verdict
    if printf '%s\n' "${iommu_cases[@]}" | grep -qx "$name"; then
        file=$iommu_console.txt verdict=$iommu_verdict
    elif printf '%s\n' "${high_cases[@]}" | grep -qx "$name"; then
        file=$high_console.txt verdict=$high_verdict
    fi
    result=$(grep -E "^@@case (ok|not ok) $name\$|^@@case skip $name " "$file" | tail -n 1 || true)
    diag=""
    if [[ -n $iommu_dirty && $file == "$iommu_console.txt" && $result == "@@case ok $name" ]]; then
        result="" diag=$iommu_dirty
    fi
    if [[ $file == "$high_console.txt" && $result == "@@case ok $name" ]]; then
        if [[ -n $high_dirty ]]; then
            result="" diag=$high_dirty
        elif warned_during "$high_console.txt" "$name"; then
            result="" diag="a kernel warning on the console while it ran"
        fi
    fi
    if [[ $name == unload_clean && $result == "@@case ok $name" && -n $main_dirty ]]; then
        result="" diag=$main_dirty
    fi
    if [[ $result == "@@case ok $name" ]]; then
        echo "ok $n $name"
        passed=$((passed + 1))
    elif [[ $result == "@@case skip $name "* ]]; then
        echo "ok $n $name # SKIP ${result#"@@case skip $name "}"
        skipped=$((skipped + 1))
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
    for file in "$console.txt" "$iommu_console.txt" "$high_console.txt"; do
        [[ -s $file ]] || continue
        echo "# guest console ($file), guest diagnostics:"
        grep -E '^(# |@@)' "$file" | sed 's/^/#   /' | tail -n 80
    done
    [[ -z $main_verdict ]] || echo "# the guest: $main_verdict"
    [[ -z $iommu_verdict ]] || echo "# the IOMMU guest: $iommu_verdict"
    [[ -z $high_verdict ]] || echo "# the guest with memory above 4 GiB: $high_verdict"
fi
summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary"
((failed == 0))
