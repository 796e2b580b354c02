# shellcheck shell=sh
# carveoutctl and the C program (issue #4): info against the ioctl, fill/verify, corruption
# found through /dev/mem, check, load from the command line, the C program's round trip;
# --json on every command, failures included (issue #15).

# json_num KEY JSON: the number after "KEY": in carveoutctl's compact JSON.
json_num() { printf '%s\n' "$2" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

ensure_loaded() { module_loaded || load; }

# expect_exit WANT CMD...: CMD's output to /tmp/out (shown as diagnostics), its status WANT.
expect_exit() {
    want=$1
    shift
    "$@" >/tmp/out 2>&1
    rc=$?
    sed 's/^/# /' /tmp/out
    [ "$rc" = "$want" ] || { say "$* exited $rc, expected $want"; return 1; }
}

# has TEXT: /tmp/out holds TEXT (fixed string).
has() { grep -qF -- "$1" /tmp/out || { say "expected: $1"; return 1; }; }

# The guest's memmap= entry as carveoutctl prints it (memmap=64M$0x8000000).
memmap_arg() { echo "memmap=$((SIZE >> 20))M\$$(hex "$BASE")"; }

case_cli_info_matches_ioctl() {
    ensure_loaded || return 1
    ioctl=$(carveout-test info) || return 1
    json=$(carveoutctl info --json) || return 1
    say "ioctl: $ioctl"
    say "json:  $json"
    got_base=$(json_num base "$json")
    got_size=$(json_num size "$json")
    got_flags=$(json_num flags "$json")
    want="base=$(hex "$got_base") size=$(hex "$got_size") flags=$(hex "$got_flags") "
    case $ioctl in "$want"*) ;; *) say "carveoutctl says $want"; return 1 ;; esac
    if [ "$got_base" != "$((BASE))" ] || [ "$got_size" != "$((SIZE))" ]; then
        say "not the range the guest reserved"
        return 1
    fi
    expect_exit 0 carveoutctl info || return 1
    has "  base    $(hex "$BASE")" && has "  size    $((SIZE >> 20))M ($(hex "$SIZE"))" &&
        has "  memmap  $(memmap_arg)" || return 1
    # By name, by path and by default: the same region.
    if [ "$(carveoutctl info carveout0 --json)" != "$json" ] ||
        [ "$(carveoutctl info /dev/carveout0 --json)" != "$json" ]; then
        say "info by name or path differs"
        return 1
    fi
    expect_exit 0 carveoutctl list || return 1
    has "/dev/carveout0" || return 1
    carveoutctl list --json | grep -qF "\"path\":\"/dev/carveout0\",\"name\":\"$(carveout-test info | sed 's/.*name=//')\"" ||
        { say "list --json does not show the region"; return 1; }
}

case_cli_fill_verify() {
    ensure_loaded || return 1
    expect_exit 0 carveoutctl fill --seed 0xf111 || return 1
    expect_exit 0 carveoutctl verify --seed 0xf111 || return 1
    # What carveoutctl wrote is at the physical address, read outside the driver.
    carveout-test verify --devmem --seed 0xf111 || { say "/dev/mem does not show the pattern"; return 1; }
    expect_exit 1 carveoutctl verify --seed 0xf112 || return 1
    has "MISMATCH" || return 1
    # A range with another seed: it verifies alone, the whole region then differs exactly there.
    expect_exit 0 carveoutctl fill --seed 7 --range 1M@4M || return 1
    expect_exit 0 carveoutctl verify --seed 7 --range 1M@4M || return 1
    expect_exit 1 carveoutctl verify --json --seed 0xf111 || return 1
    has '"first_offset":4194304' && has '"differing_words":131072' && has '"match":false' || return 1
    expect_exit 0 carveoutctl verify --seed 0xf111 --range 4M || return 1
    expect_exit 0 carveoutctl verify --seed 0xf111 --range "$(((SIZE >> 20) - 5))M@5M" || return 1
    expect_exit 2 carveoutctl fill --seed 1 --range "4K@$(hex "$SIZE")" || return 1
    has "outside the region" || return 1
    expect_exit 0 carveoutctl dump --offset 4M --len 32 || return 1
    if [ "$(wc -l </tmp/out)" != 2 ] || ! grep -q '^00400000  ' /tmp/out; then
        say "expected two hexdump lines at offset 0x400000"
        return 1
    fi
}

case_cli_verify_detects_corruption() {
    ensure_loaded || return 1
    expect_exit 0 carveoutctl fill --seed 0xc0de || return 1
    off=$((0x123457))
    phys=$((BASE + off))
    old=$(dd if=/dev/mem bs=1 skip="$phys" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
    [ -n "$old" ] || { say "cannot read /dev/mem at $(hex "$phys")"; return 1; }
    new=$((old ^ 0xff))
    # shellcheck disable=SC2059 # the format is the octal escape of the new byte
    printf "\\$(printf '%03o' "$new")" | dd of=/dev/mem bs=1 seek="$phys" count=1 conv=notrunc 2>/dev/null
    now=$(dd if=/dev/mem bs=1 skip="$phys" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
    say "byte at $(hex "$phys"): $old, flipped to $now through /dev/mem"
    [ "$now" = "$new" ] || { say "the write through /dev/mem did not land"; return 1; }
    expect_exit 1 carveoutctl verify --seed 0xc0de || return 1
    has "1 byte differs (in 1 word); the first at offset $(hex "$off") (physical $(hex "$phys"))" || return 1
    expect_exit 1 carveoutctl verify --seed 0xc0de --json || return 1
    has "\"first_offset\":$off," && has '"differing_bytes":1,' || return 1
}

case_cli_check_reports_missing_region() {
    unload_quietly
    expect_exit 1 carveoutctl check || return 1
    has "problem: no carveout region holds $(memmap_arg) ($(hex "$BASE")-$(hex "$LAST"))" || return 1
    has "carveout check: 1 problem" || return 1
    # The pmem entry is explained, not a problem.
    if grep -q "^problem:.*$(hex "$PMEM_BASE")" /tmp/out; then
        say "the memmap=! range was reported as a problem"
        return 1
    fi
    load || return 1
    expect_exit 0 carveoutctl check || return 1
    has "ok: $(memmap_arg) ($(hex "$BASE")-$(hex "$LAST")) is reserved and held by /dev/carveout0" || return 1
    expect_exit 0 carveoutctl check --json || return 1
    has '"consistent":true' || return 1
}

case_cli_load_from_cmdline() {
    ok=0
    # The module's own region holds the entry already: nothing to do.
    ensure_loaded || return 1
    expect_exit 0 carveoutctl load || ok=1
    has "memmap0: $(memmap_arg) is already held by /dev/carveout0: skipped" || ok=1
    unload_quietly
    [ -d /sys/kernel/config ] && mount -t configfs configfs /sys/kernel/config 2>/dev/null
    # Without carveout there is nothing to create regions with; load says so.
    expect_exit 1 carveoutctl load || ok=1
    has "carveout is not loaded" || ok=1
    # carveout without a parameter region: load makes memmap0 through configfs (issue 3).
    insmod "$MOD" 2>/tmp/insmod.err ||
        { say "insmod without base=/size=: $(cat /tmp/insmod.err)"; return 1; }
    expect_exit 0 carveoutctl load || ok=1
    has "memmap0: created /dev/carveout/memmap0 for $(memmap_arg)" || ok=1
    if [ -c /dev/carveout/memmap0 ]; then
        json=$(carveoutctl info memmap0 --json)
        say "memmap0: $json"
        if [ "$(json_num base "$json")" != "$((BASE))" ] || [ "$(json_num size "$json")" != "$((SIZE))" ]; then
            say "memmap0 is not the command line's range"
            ok=1
        fi
        iomem_claim_inside_reserved "$BASE" "$LAST" carveout ||
            { say "no carveout claim inside Reserved"; ok=1; }
        expect_exit 0 carveoutctl check || ok=1
        expect_exit 0 carveoutctl load || ok=1
        has "already held by /dev/carveout/memmap0: skipped" || ok=1
    else
        say "/dev/carveout/memmap0 is missing"
        ok=1
    fi
    item=/sys/kernel/config/carveout/memmap0
    if [ -d "$item" ]; then
        echo 0 >"$item/enable"
        rmdir "$item" || { say "cannot remove $item"; ok=1; }
    fi
    unload_quietly
    return "$ok"
}

case_c_program_roundtrip() {
    ensure_loaded || return 1
    carveout_test roundtrip "$DEV" 0xc0c0 || return 1
    # One pattern, two implementations: the Rust tool reads what C wrote.
    expect_exit 0 carveoutctl verify --seed 0xc0c0 || return 1
    # The C program's attribute round trip (exit 3: the driver answered ENOTTY, a failure).
    carveout_test attr "$DEV" || { say "carveout_test attr exited $?"; return 1; }
    expect_exit 0 carveoutctl attr get || return 1
    # Attribute changes leave the contents alone.
    expect_exit 0 carveoutctl verify --seed 0xc0c0 || return 1
}

# carveoutctl's commands (README.md's table), besides help.
CLI_COMMANDS="list info attr fill verify dump save restore load check attach detach sync plan"

# json_run WANT ARGS...: `carveoutctl --json ARGS...` exits WANT, prints nothing on standard
# error and exactly one JSON value on standard output (kept in /tmp/json); then the text form
# exits WANT too.
json_run() {
    want=$1
    shift
    carveoutctl --json "$@" >/tmp/json 2>/tmp/json.err
    rc=$?
    say "carveoutctl --json $*: exit $rc: $(cat /tmp/json)"
    [ "$rc" = "$want" ] || { say "exited $rc, expected $want"; return 1; }
    [ ! -s /tmp/json.err ] || { say "standard error: $(cat /tmp/json.err)"; return 1; }
    carveout-test json-check </tmp/json || return 1
    carveoutctl "$@" >/dev/null 2>&1
    rc=$?
    [ "$rc" = "$want" ] || { say "without --json it exits $rc, not $want"; return 1; }
}

# json_has POINTER[=VALUE]...: /tmp/json holds each (carveout-test json-check --has).
json_has() {
    for want in "$@"; do
        set -- "$@" --has "$want"
        shift
    done
    carveout-test json-check "$@" </tmp/json
}

# json_fail WANT OP ERRNO ENAME ARGS...: the command fails with status WANT and prints the
# failure object {"op":OP,"errno":ERRNO,"error":ENAME,"reason":...}.
json_fail() {
    want=$1 op=$2 errno=$3 ename=$4
    shift 4
    json_run "$want" "$@" && json_has "/op=$op" "/errno=$errno" "/error=$ename" /reason
}

case_cli_json_everywhere() {
    ensure_loaded || return 1
    ok=0
    # Every command, done: one JSON value with what it did.
    json_run 0 list && json_has /regions/0/path=/dev/carveout0 "/regions/0/base=$((BASE))" /errors ||
        ok=1
    json_run 0 info && json_has "/base=$((BASE))" "/size=$((SIZE))" "/memmap=$(memmap_arg)" || ok=1
    json_run 0 attr get && json_has /path=/dev/carveout0 /attr /flags || ok=1
    attr=$(sed -n 's/.*"attr":"\([a-z]*\)".*/\1/p' /tmp/json)
    json_run 0 attr set wc && json_has /attr=wc /path=/dev/carveout0 || ok=1
    [ "$(carveoutctl attr get | head -n 1)" = wc ] || { say "attr set --json did not set wc"; ok=1; }
    json_run 0 attr set "${attr:-wb}" && json_has "/attr=${attr:-wb}" || ok=1
    json_run 0 fill --seed 0x150 --range 4K@8K && json_has /offset=8192 /len=4096 /seed=336 || ok=1
    json_run 0 verify --seed 0x150 --range 4K@8K && json_has /match=true || ok=1
    json_run 1 verify --seed 0x151 --range 4K@8K && json_has /match=false /first_offset=8192 || ok=1
    json_run 0 dump --offset 8K --len 16 && json_has /offset=8192 /len=16 /hex || ok=1
    json_run 0 load --dry-run && json_has /dry_run=true /entries/0/action=skipped \
        /entries/0/node=/dev/carveout0 || ok=1
    json_run 0 check && json_has /consistent=true /regions/0/name || ok=1
    json_run 0 plan --size 4M && json_has /size=4194304 /memmap /insmod /modprobe_options || ok=1
    # Every command, refused: the failure object, same exit status.
    json_fail 2 list 22 EINVAL list extra-argument || ok=1
    json_fail 2 info 2 ENOENT info /dev/carveout/no-such-region || ok=1
    json_fail 2 "attr get" 25 ENOTTY attr get /dev/null || ok=1
    json_fail 2 "attr set" 22 EINVAL attr set bogus || ok=1
    if hold_mapping; then
        json_fail 2 "attr set" 16 EBUSY attr set wc || ok=1
        release_mapping
    else
        ok=1
    fi
    json_fail 2 fill 22 EINVAL fill --seed 1 --range "4K@$(hex "$SIZE")" || ok=1
    json_fail 2 verify 22 EINVAL verify --seed 1 --range 4K@3 || ok=1
    json_fail 2 dump 22 EINVAL dump --offset "$(hex "$SIZE")" || ok=1
    json_fail 2 check 2 ENOENT check --cmdline /no/such/file || ok=1
    json_fail 1 plan 28 ENOSPC plan --size 64G || ok=1
    json_fail 2 carveoutctl 22 EINVAL frobnicate || ok=1
    # load: a refused mode (the driver's words), and an entry overlapping the region (exit 1,
    # the entry's failure inside the report).
    json_fail 2 load 22 EINVAL load --mode 01777 || ok=1
    grep -qF 'refusing mode=01777: not permission bits (0 to 0777)' /tmp/json ||
        { say "load --mode 01777 is not refused in the driver's words"; ok=1; }
    echo "memmap=32M\$$(hex "$BASE")" >/tmp/cmdline.overlap
    json_run 1 load --cmdline /tmp/cmdline.overlap &&
        json_has /entries/0/action=overlaps /entries/0/error/op=load /entries/0/error/errno=16 \
            /entries/0/error/error=EBUSY || ok=1
    json_run 1 check --cmdline /tmp/cmdline.overlap && json_has /consistent=false || ok=1
    # Whatever commands there are (carveoutctl --help): a usage error is a failure object too.
    # The list holds at least the known ones (an empty or short parse fails the case).
    cmds=$(carveoutctl --help | sed -n '/^Commands:/,/^$/s/^  \([a-z-]*\) .*/\1/p' | grep -vx help)
    say "carveoutctl --help lists: $(echo "$cmds" | tr '\n' ' ')"
    for cmd in $CLI_COMMANDS; do
        echo "$cmds" | grep -qx "$cmd" || { say "carveoutctl --help does not list $cmd"; ok=1; }
    done
    n=$(echo "$cmds" | grep -c .)
    [ "$n" -ge "$(echo "$CLI_COMMANDS" | wc -w)" ] || { say "$n commands in --help"; ok=1; }
    for cmd in $cmds; do
        json_fail 2 "$cmd" 22 EINVAL "$cmd" --no-such-option || ok=1
    done
    # The text form of the mode refusal says the same.
    expect_exit 2 carveoutctl load --mode 1777 || ok=1
    has 'refusing mode=01777: not permission bits (0 to 0777)' || ok=1
    return "$ok"
}

suite_cli() {
    run_case cli_info_matches_ioctl case_cli_info_matches_ioctl
    run_case cli_fill_verify case_cli_fill_verify
    run_case cli_verify_detects_corruption case_cli_verify_detects_corruption
    run_case c_program_roundtrip case_c_program_roundtrip
    run_case cli_check_reports_missing_region case_cli_check_reports_missing_region
    run_case cli_load_from_cmdline case_cli_load_from_cmdline
    run_case cli_json_everywhere case_cli_json_everywhere
}
SUITES="$SUITES cli"
