# shellcheck shell=sh
# Hostile input (issue #5): a seeded fuzzer on /dev/carveout0 (ioctls, mappings, file
# operations, fork, rmmod/insmod), then the pattern and dmesg; garbage module parameters and
# configfs writes, refused with a message and nothing claimed.
#
# The fuzzer's seed is fixed so CI runs are repeatable; boot with cvt_fuzz_seed=N on the kernel
# command line (CARVEOUT_GUEST_ARGS on the host) to explore another sequence.

FUZZ_PATTERN=0xf0220
FUZZ_SEED=${cvt_fuzz_seed:-0xca4e0f22}
FUZZ_OPS=${cvt_fuzz_ops:-200000}

case_fuzz_ioctl_mmap() {
    ok=0
    # The oracle is alive: told the wrong pattern, the fuzzer must complain. (Its writes store
    # that wrong pattern, so this comes before the real fill.)
    carveout-test fill --seed "$FUZZ_PATTERN" || return 1
    if carveout-fuzz --seed 1 --pattern-seed "$((FUZZ_PATTERN + 1))" --ops 2000 --procs 1 \
        >/tmp/fuzz-control.out 2>&1; then
        say "the fuzzer found nothing wrong with the wrong pattern"
        ok=1
    fi
    carveout-test fill --seed "$FUZZ_PATTERN" || return 1
    carveout-fuzz --seed "$FUZZ_SEED" --pattern-seed "$FUZZ_PATTERN" --ops "$FUZZ_OPS" --procs 4 ||
        ok=1
    # The fuzzer's rmmod may have won last.
    module_loaded || load || { say "could not load the module after fuzzing"; return 1; }
    carveout-test verify --seed "$FUZZ_PATTERN" || ok=1
    carveout-test verify --devmem --seed "$FUZZ_PATTERN" || ok=1
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout || { say "the claim is not as loaded"; ok=1; }
    dmesg_clean || ok=1
    # On the debug kernel: lockdep is still on (it turns itself off after its first report).
    if [ -r /proc/lockdep_stats ]; then
        say "lockdep: $(grep -E 'debug_locks|lock-classes' /proc/lockdep_stats | tr -s ' \n' ' ')"
        grep -qE 'debug_locks: *1' /proc/lockdep_stats || { say "lockdep turned itself off"; ok=1; }
    fi
    return "$ok"
}

# After the fuzzer's workers (forks, mremap, partial munmap, mprotect): nothing of their
# mappings is left. carveout-fuzz unloads and loads the module after each of its rounds, which
# would hide what its workers left behind, so one more round of its workers runs here on its
# own (--worker: what carveout-fuzz starts; no rmmod or insmod of theirs, and forks with the
# mappings alive in one rare operation of four rather than one in 250), and the region is
# checked before anything is unloaded: no PAT record intersects it, map_count is 0, no worker
# lives on; SET_ATTR then works (a new mapping carries the new type, and PAT forgets it at
# munmap) and rmmod takes the claim and the node.
case_fuzz_leaves_clean_state() {
    pat=/sys/kernel/debug/x86/pat_memtype_list
    [ -r "$pat" ] || { say "no $pat (debugfs, PAT)"; return 1; }
    module_loaded || load || return 1
    carveout-test fill --seed "$FUZZ_PATTERN" >/dev/null || return 1
    ok=1
    pids=""
    for id in 100 101 102 103; do
        carveout-fuzz --worker "$id" --seed "$FUZZ_SEED" --pattern-seed "$FUZZ_PATTERN" \
            --ops $((FUZZ_OPS / 10)) --procs 4 --reload-ppm 0 --fork-ppm 250000 --base "$(hex "$BASE")" \
            --size "$(hex "$SIZE")" &
        pids="$pids $!"
    done
    for pid in $pids; do
        wait "$pid" || { say "worker $pid found something or failed"; ok=0; }
    done
    if pidof carveout-fuzz >/dev/null; then
        say "carveout-fuzz still runs: $(pidof carveout-fuzz)"
        ok=0
    fi
    left=$(fuzz_pat_records)
    [ -z "$left" ] || { say "PAT records left for the region: $left"; ok=0; }
    maps=$(cat /sys/class/carveout/carveout0/map_count)
    [ "$maps" = 0 ] || { say "map_count is $maps after the fuzzer"; ok=0; }
    carveout-test attr-get | grep -q 'busy=0' || { say "GET_ATTR: $(carveout-test attr-get)"; ok=0; }
    carveout-test attr-set uc >/dev/null || { say "SET_ATTR uc refused after the fuzzer"; ok=0; }
    [ "$(cat /sys/class/carveout/carveout0/attr)" = uc ] || ok=0
    hold_mapping || return 1
    held=$(fuzz_pat_records)
    release_mapping
    after=$(fuzz_pat_records)
    say "a new uc mapping: PAT records $held; after munmap: ${after:-nothing}"
    whole=$(printf '0x%016x-0x%016x' "$BASE" $((BASE + SIZE)))
    case $held in "$whole uncached-minus " | "$whole uncached ") ;; *)
        say "expected one uncached record, $whole"
        ok=0
        ;;
    esac
    [ -z "$after" ] || ok=0
    carveout-test attr-set wb >/dev/null || ok=0
    rmmod carveout || { say "rmmod after the fuzzer failed"; return 1; }
    if [ -e "$DEV" ] || iomem_has_name carveout || module_loaded; then
        say "rmmod left the node, the claim or the module behind"
        ok=0
    fi
    load || { say "could not load the module again"; return 1; }
    [ "$ok" = 1 ] && dmesg_clean
}

# The PAT records intersecting the region: "START-END TYPE" each, one line.
fuzz_pat_records() {
    sed -n 's/^PAT: \[mem \(0x[0-9a-f]*\)-\(0x[0-9a-f]*\)\] \(.*\)$/\1 \2 \3/p' \
        /sys/kernel/debug/x86/pat_memtype_list |
        while read -r start end type; do
            [ $((start)) -lt $((BASE + SIZE)) ] && [ $((end)) -gt $((BASE)) ] &&
                printf '%s-%s %s ' "$start" "$end" "$type"
        done
}

# The helpers below keep their verdicts in variables of their own (cfs_ok), and the cases call
# them in a subshell, ( helper ): nothing a helper sets can reach its caller's verdict.

# refused_with_message WHAT COMMAND...: COMMAND fails, dmesg gains a line naming carveout, and
# /proc/iomem and the /dev/carveout* nodes are unchanged.
refused_with_message() {
    what=$1
    shift
    cat /proc/iomem >/tmp/iomem.before
    nodes_before=$(ls /dev/carveout* 2>/dev/null)
    dmesg_mark
    if "$@" 2>/tmp/refused.err; then
        say "$what: accepted"
        return 1
    fi
    dmesg_since_mark | grep carveout >/tmp/refused.dmesg
    say "$what: $(tr '\n' ' ' </tmp/refused.err)| dmesg: $(tr '\n' ' ' </tmp/refused.dmesg)"
    [ -s /tmp/refused.dmesg ] || { say "$what: refused without a message in dmesg"; return 1; }
    cmp -s /tmp/iomem.before /proc/iomem || { say "$what: /proc/iomem changed"; return 1; }
    [ "$(ls /dev/carveout* 2>/dev/null)" = "$nodes_before" ] || { say "$what: /dev changed"; return 1; }
}

insmod_refused() {
    refused_with_message "insmod $*" insmod "$MOD" "$@" || return 1
    ! module_loaded || { say "insmod $*: the module stayed loaded"; return 1; }
}

# cfs_write FILE VALUE: writes VALUE to a configfs attribute; fails when the write does.
cfs_write() { (echo "$2" >"$1"); }

configfs_refuses_garbage() {
    cfs=/sys/kernel/config
    grep -q " $cfs configfs " /proc/mounts || mount -t configfs configfs "$cfs" ||
        { say "configfs: cannot mount $cfs"; return 1; }
    root=$cfs/carveout
    if [ ! -d "$root" ]; then
        say "configfs: $root does not exist: the module offers no configfs regions yet (FAIL, not skipped)"
        return 1
    fi
    dir=$root/fuzzbad
    mkdir "$dir" || { say "configfs: mkdir $dir failed"; return 1; }
    cfs_ok=0
    for attr in base size; do
        for v in xyz -4096 0x10000000000000000 99999999999999999999999 0x8000000junk ''; do
            refused_with_message "configfs $attr='$v'" cfs_write "$dir/$attr" "$v" || cfs_ok=1
        done
    done
    for v in abc -1 4294967296 0x1ffffffff; do
        refused_with_message "configfs gid='$v'" cfs_write "$dir/gid" "$v" || cfs_ok=1
    done
    for v in abc 99999 -1 0x10000; do
        refused_with_message "configfs mode='$v'" cfs_write "$dir/mode" "$v" || cfs_ok=1
    done
    for v in garbage 0x100 0xffffffff -1; do
        refused_with_message "configfs attr='$v'" cfs_write "$dir/attr" "$v" || cfs_ok=1
    done
    refused_with_message "configfs enable='maybe'" cfs_write "$dir/enable" maybe || cfs_ok=1
    # Each value parses; together they must not claim anything.
    for pair in "0xfffffffffffff000 0x2000 overflowing sum" "0x1000000 0x100000 System RAM" \
        "$(hex "$BASE") $(hex "$SIZE") the region carveout0 holds" "$(hex "$BASE") 0 size 0"; do
        # shellcheck disable=SC2086 # split the pair on purpose
        set -- $pair
        b=$1 s=$2
        shift 2
        # Either write may itself be refused (size 0, say): then enable must be, too.
        cfs_write "$dir/base" "$b" 2>/dev/null
        cfs_write "$dir/size" "$s" 2>/dev/null
        refused_with_message "configfs enable=1 with base=$b size=$s ($*)" cfs_write "$dir/enable" 1 || cfs_ok=1
    done
    # Should an enable have succeeded after all, let go of it before removing the region.
    cfs_write "$dir/enable" 0 2>/dev/null
    rmdir "$dir" || { say "configfs: rmdir $dir failed"; cfs_ok=1; }
    return "$cfs_ok"
}

case_bad_params_refused() {
    unload_quietly
    ok=0
    b=$(hex "$BASE")
    s=$(hex "$SIZE")
    (insmod_refused base=xyz "size=$s") || ok=1
    (insmod_refused "base=$b" size=-4096) || ok=1
    (insmod_refused base=-1 "size=$s") || ok=1
    (insmod_refused "base=$b" size=0x10000000000000000) || ok=1
    (insmod_refused "base=$b" size=99999999999999999999999) || ok=1
    (insmod_refused base=0x8000000junk "size=$s") || ok=1
    (insmod_refused "base=" "size=$s") || ok=1
    (insmod_refused "base=$b" size=0xfffffffffffff000) || ok=1
    (insmod_refused base=0xfffffffffffff000 size=0x1000) || ok=1
    (insmod_refused base=0x7ffffffffffff000 size=0x1000) || ok=1
    load || { say "the module does not load with good parameters after all that"; return 1; }
    (configfs_refuses_garbage) || ok=1
    return "$ok"
}

suite_fuzz() {
    # Which debug machinery watches (the debug kernel's; nothing on the test kernel).
    dmesg | grep -E 'KernelAddressSanitizer|Lock dependency validator|panic_on_warn' | sed 's/^/# /'
    load || say "load failed"
    run_case fuzz_ioctl_mmap case_fuzz_ioctl_mmap
    run_case fuzz_leaves_clean_state case_fuzz_leaves_clean_state
    run_case bad_params_refused case_bad_params_refused
}
SUITES="$SUITES fuzz"
