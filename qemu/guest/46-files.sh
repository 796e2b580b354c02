# shellcheck shell=sh
# The region as a file (issue #13): read, write, pread/pwrite, readv/writev and lseek on the
# node, dd/cmp/hexdump on it, carveoutctl save/restore. Every case checks the contents from
# outside the file interface: through a mapping of the region or /dev/mem.

FILES_PAT=/sys/kernel/debug/x86/pat_memtype_list

# files_out CMD...: CMD's output (both streams) in /tmp/files.out, shown as diagnostics; its
# status is CMD's.
files_out() {
    "$@" >/tmp/files.out 2>&1
    rc=$?
    sed 's/^/# /' /tmp/files.out
    return "$rc"
}

# files_json_num KEY: the number after "KEY": in /tmp/files.out.
files_json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" /tmp/files.out | head -n 1; }

# files_json_str KEY: the string after "KEY": in /tmp/files.out.
files_json_str() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" /tmp/files.out | head -n 1; }

# files_devmem OFFSET LEN FILE: LEN bytes of the region at OFFSET (multiples of 4 KiB), read
# through /dev/mem into FILE.
files_devmem() {
    dd if=/dev/mem of="$3" bs=4096 skip=$(((BASE + $1) / 4096)) count=$(($2 / 4096)) 2>/dev/null
}

# files_mark, then files_dmesg_has TEXT: dmesg says TEXT (fixed string) after the mark. The
# refusal lines are rate limited (10 in 5 s): the mark waits 5 s of quiet first, so the next
# ones print.
files_mark() {
    sleep 5
    echo "files: mark" >/dev/kmsg
}
files_dmesg_has() {
    dmesg | awk '/files: mark/ { n = NR } { line[NR] = $0 } END { for (i = n + 1; i <= NR; i++) print line[i] }' |
        grep -F -- "$1" | sed 's/^/# dmesg: /' | grep -q . || { say "dmesg does not say: $1"; return 1; }
}

# The PAT records that intersect the region, one "START END TYPE" line each (hex addresses).
files_pat_records() {
    sed -n 's/^PAT: \[mem \(0x[0-9a-f]*\)-\(0x[0-9a-f]*\)\] \(.*\)$/\1 \2 \3/p' "$FILES_PAT" |
        while read -r start end type; do
            if [ $((start)) -lt $((BASE + SIZE)) ] && [ $((end)) -gt $((BASE)) ]; then
                echo "$start $end $type"
            fi
        done
}

# How many ioremaps /proc/vmallocinfo lists inside the region.
files_vmalloc_in_region() {
    sed -n 's/.*phys=\(0x[0-9a-f]*\) .*ioremap.*/\1/p' /proc/vmallocinfo |
        while read -r phys; do
            if [ $((phys)) -ge $((BASE)) ] && [ $((phys)) -lt $((BASE + SIZE)) ]; then
                echo "$phys"
            fi
        done | wc -l
}

case_read_matches_mmap() {
    carveout-test file read --seed 0xf11e5 || return 1
    # And the tools people reach for: hexdump of the node is hexdump of the memory.
    hexdump -C "$DEV" | head -n 4 >/tmp/files.node
    dd if=/dev/mem bs=4096 skip=$((BASE / 4096)) count=1 2>/dev/null | hexdump -C | head -n 4 >/tmp/files.mem
    sed 's/^/# node: /' /tmp/files.node
    cmp /tmp/files.node /tmp/files.mem || { say "hexdump of $DEV differs from /dev/mem"; return 1; }
}

case_write_seen_in_mmap() {
    carveout-test fill --seed 0x1 || return 1
    carveout-test file write --seed 0x3a17e || return 1
    carveout-test verify --seed 0x3a17e
}

case_pread_pwrite_offsets() { carveout-test file offsets; }

# sendfile(2) from the node and splice(2) into it (what sendfile-based copiers and pipelines
# use) go through the same read and write: checked through /dev/mem.
case_sendfile_from_node() { carveout-test file sendfile --seed 0x5e4df11e; }

case_splice_to_node() { carveout-test file splice-in --seed 0x5b11ce; }

case_read_at_end_is_eof() {
    carveout-test file eof || return 1
    # dd past the end reads nothing.
    n=$(dd if="$DEV" bs=4096 skip=$((SIZE / 4096)) count=4 2>/dev/null | wc -c)
    [ "$n" = 0 ] || { say "dd past the end read $n bytes"; return 1; }
}

case_read_across_end_is_short() {
    carveout-test file across-end || return 1
    # dd of the whole node stops at the region's size, and gives the memory's bytes.
    n=$(dd if="$DEV" bs=1M 2>/dev/null | wc -c)
    [ "$n" = "$((SIZE))" ] || { say "dd read $n bytes of a $((SIZE))-byte region"; return 1; }
}

case_write_past_end_refused() {
    files_mark
    carveout-test file write-past-end || return 1
    files_dmesg_has "refusing write at $(hex "$SIZE"): the region ends at $(hex "$SIZE")"
}

case_lseek_end_is_size() { carveout-test file seek-end; }

case_lseek_bad_whence_refused() {
    files_mark
    carveout-test file bad-whence || return 1
    files_dmesg_has "refusing lseek whence 3: only SEEK_SET, SEEK_CUR and SEEK_END"
}

case_wp_region_write_refused() {
    carveout-test fill --seed 0x3b0 || return 1
    carveout-test attr-set wp || return 1
    files_mark
    ok=0
    carveout-test file write-refused --errno EPERM --seed 0x3b0 || ok=1
    files_dmesg_has "refusing write: the region is write-protected (wp)" || ok=1
    # dd into it fails the same way, and changes nothing.
    if dd if=/dev/zero of="$DEV" bs=4096 count=1 2>/tmp/files.err; then
        say "dd into a wp region succeeded"
        ok=1
    fi
    say "dd: $(cat /tmp/files.err)"
    carveout-test verify --devmem --seed 0x3b0 || ok=1
    carveout-test attr-set wb || ok=1
    return "$ok"
}

case_readonly_fd_write_refused() {
    carveout-test fill --seed 0x40 || return 1
    carveout-test file write-refused --errno EBADF --read-only --seed 0x40
}

# files_probes: kprobe events on memtype_reserve (cvt_memtype), where every PAT record of a
# range is made, however briefly it lives (start, end, the type asked for: 0 WB, 1 WC, 2 UC-,
# 3 UC, 4 WT, 5 WP), and on xlate_dev_mem_ptr (cvt_xlate), where /dev/mem maps each page it
# reads or writes (the checks' own view of the memory, which makes a record of that page).
files_probes() {
    kprobe_define cvt_memtype "p:cvt_memtype memtype_reserve start=%di:u64 end=%si:u64 req=%dx:u32 comm=\$comm" &&
        kprobe_define cvt_xlate "p:cvt_xlate xlate_dev_mem_ptr phys=%di:u64 comm=\$comm" || return 1
    # The checks read the whole region through /dev/mem: 16384 pages, two records each. The
    # size before (as buffer_size_kb says it: "7 (expanded: 1408)" before first use) comes
    # back after the case.
    FILES_TRACE_KB=$(sed 's/.*expanded: \([0-9]*\).*/\1/' "$TRACEFS/buffer_size_kb")
    echo 16384 >"$TRACEFS/buffer_size_kb"
}

# files_driver_records TRACE: the records carveout-test's system calls made in TRACE that
# intersect the region, but for /dev/mem's (the page the xlate_dev_mem_ptr just before asked
# for), one "START END REQ" line each (decimal).
files_driver_records() {
    awk -v lo="$((BASE))" -v hi="$((BASE + SIZE))" '
        {
            f["start"] = f["end"] = f["req"] = f["phys"] = f["comm"] = ""
            for (i = 1; i <= NF; i++)
                if (split($i, kv, "=") == 2) f[kv[1]] = kv[2]
        }
        f["comm"] != "\"carveout-test\"" { next }
        / cvt_xlate: / { page = f["phys"] - f["phys"] % 4096; next }
        / cvt_memtype: / {
            if (page != "" && f["start"] + 0 == page && f["end"] + 0 == page + 4096) { page = ""; next }
            page = ""
            if (f["start"] + 0 < hi + 0 && f["end"] + 0 > lo + 0) print f["start"], f["end"], f["req"]
        }' "$1"
}

case_uc_region_read_write() {
    [ -r "$FILES_PAT" ] || { say "no $FILES_PAT (debugfs, PAT)"; return 1; }
    files_probes || return 1
    carveout-test attr-set uc || return 1
    ok=0
    hold_mapping || { carveout-test attr-set wb; return 1; }
    files_pat_records >/tmp/files.pat.before
    sed 's/^/# PAT before: /' /tmp/files.pat.before
    vm_before=$(files_vmalloc_in_region)
    # Every PAT record made while the file is written and read: the driver's are of the whole
    # region, uncached-minus (asked for as such: with the holder's record in force, the kernel
    # would hand a request for another type UC- too).
    trace_start cvt_memtype cvt_xlate || { release_mapping; return 1; }
    if carveout-test file write --seed 0x0c0c >/tmp/files.io 2>&1 &&
        carveout-test file read --seed 0x0c0d >>/tmp/files.io 2>&1; then
        rc=0
    else
        rc=1
    fi
    trace_stop /tmp/files.trace || ok=1
    sed 's/^/# /' /tmp/files.io
    [ "$rc" = 0 ] || { say "the transfers through the file failed"; ok=1; }
    files_driver_records /tmp/files.trace >/tmp/files.records
    # The guest's memory back for the cases after this one (the debug kernel's guest is tight).
    rm -f /tmp/files.trace
    echo "$FILES_TRACE_KB" >"$TRACEFS/buffer_size_kb"
    whole="$((BASE)) $((BASE + SIZE))"
    records=$(grep -c . /tmp/files.records)
    pieces=$(grep -vc "^$whole " /tmp/files.records)
    say "PAT records the driver made for the range during the transfers: $records ($pieces for pieces of it)"
    sort /tmp/files.records | uniq -c | sed 's/^ */# times start end type: /'
    [ "$records" -ge 1 ] || { say "none: the transfers made no mapping of the region"; ok=1; }
    [ "$pieces" = 0 ] || { say "the driver mapped pieces of the region"; ok=1; }
    if grep -v ' 2$' /tmp/files.records | grep -q .; then
        say "the driver asked for another memory type than UC- (2)"
        ok=1
    fi
    files_pat_records >/tmp/files.pat.after
    sed 's/^/# PAT after: /' /tmp/files.pat.after
    cmp -s /tmp/files.pat.before /tmp/files.pat.after || { say "the PAT records changed"; ok=1; }
    if [ "$(wc -l </tmp/files.pat.after)" != 1 ] || ! grep -q ' uncached-minus$' /tmp/files.pat.after; then
        say "expected one uncached-minus record for the range"
        ok=1
    fi
    vm_after=$(files_vmalloc_in_region)
    [ "$vm_after" = "$vm_before" ] ||
        { say "ioremaps of the range in /proc/vmallocinfo: $vm_before before, $vm_after after"; ok=1; }
    release_mapping
    # What the read check filled last is in memory, seen outside the driver.
    carveout-test verify --devmem --seed 0x0c0d || ok=1
    carveout-test attr-set wb || ok=1
    return "$ok"
}

case_read_interrupted_by_signal() {
    carveout-test fill --seed 0x51c || return 1
    carveout-test file read-killed --seed 0x51c || return 1
    rm -f /tmp/read-killed.bin
    dmesg_clean
}

case_dd_save_restore_roundtrip() {
    carveout-test fill --seed 0xdd01 || return 1
    dd if="$DEV" of=/tmp/files.cap bs=1M 2>/tmp/files.err || { say "dd out: $(cat /tmp/files.err)"; return 1; }
    n=$(wc -c </tmp/files.cap)
    [ "$n" = "$((SIZE))" ] || { say "dd saved $n bytes"; return 1; }
    carveout-test fill --seed 0xdd02 || return 1
    carveout-test verify --devmem --seed 0xdd02 || { say "the overwrite did not land"; return 1; }
    if cmp -s "$DEV" /tmp/files.cap; then
        say "cmp finds no difference after the overwrite"
        return 1
    fi
    dd if=/tmp/files.cap of="$DEV" bs=1M 2>/tmp/files.err || { say "dd in: $(cat /tmp/files.err)"; return 1; }
    carveout-test verify --devmem --seed 0xdd01 || { say "/dev/mem does not show the saved pattern"; return 1; }
    cmp "$DEV" /tmp/files.cap || return 1
    rm -f /tmp/files.cap
}

case_cli_save_restore() {
    ok=0
    carveout-test fill --seed 0x5a7e || return 1
    files_out carveoutctl save /tmp/files.save --json || return 1
    sum=$(sha256sum /tmp/files.save | cut -d' ' -f1)
    if [ "$(files_json_num bytes)" != "$((SIZE))" ] || [ "$(files_json_num offset)" != 0 ] ||
        [ "$(files_json_str op)" != save ]; then
        say "the summary does not say save, $((SIZE)) bytes at 0"
        ok=1
    fi
    [ "$(files_json_str checksum)" = "$sum" ] || { say "checksum is not sha256sum's $sum"; ok=1; }
    files_devmem 0 "$SIZE" /tmp/files.mem
    cmp /tmp/files.save /tmp/files.mem || { say "the saved file is not what /dev/mem shows"; ok=1; }
    rm -f /tmp/files.mem
    carveout-test fill --seed 0x1111 || return 1
    files_out carveoutctl restore /tmp/files.save --json || ok=1
    if [ "$(files_json_str op)" != restore ] || [ "$(files_json_num bytes)" != "$((SIZE))" ] ||
        [ "$(files_json_str checksum)" != "$sum" ]; then
        say "the restore summary is wrong"
        ok=1
    fi
    carveout-test verify --devmem --seed 0x5a7e || { say "/dev/mem does not show the restored pattern"; ok=1; }
    # A part: 64K at 1M saved, restored at 8M.
    files_out carveoutctl save /tmp/files.part --offset 1M --len 64K || ok=1
    files_devmem $((1 << 20)) $((64 << 10)) /tmp/files.mem
    cmp /tmp/files.part /tmp/files.mem || { say "the 64K part is not /dev/mem's"; ok=1; }
    files_out carveoutctl restore /tmp/files.part --offset 8M || ok=1
    files_devmem $((8 << 20)) $((64 << 10)) /tmp/files.mem
    cmp /tmp/files.part /tmp/files.mem || { say "the part restored at 8M is not there"; ok=1; }
    # dump --raw: the bytes on standard output.
    carveoutctl dump --raw --offset 4K --len 8K >/tmp/files.raw || ok=1
    files_devmem 4096 8192 /tmp/files.mem
    cmp /tmp/files.raw /tmp/files.mem || { say "dump --raw is not /dev/mem's bytes"; ok=1; }
    rm -f /tmp/files.save /tmp/files.part /tmp/files.mem /tmp/files.raw
    return "$ok"
}

case_cli_restore_too_large_refused() {
    ok=0
    carveout-test fill --seed 0x7a1 || return 1
    dd if=/dev/zero of=/tmp/files.big bs=1M count=$((SIZE >> 20)) 2>/dev/null
    printf x >>/tmp/files.big
    if files_out carveoutctl restore /tmp/files.big; then
        say "a file one byte larger than the region was restored"
        ok=1
    fi
    grep -q "larger than the $((SIZE)) bytes the region has from offset 0x0: refused" /tmp/files.out ||
        { say "the refusal does not say why"; ok=1; }
    dd if=/dev/zero of=/tmp/files.big bs=4097 count=1 2>/dev/null
    if files_out carveoutctl restore /tmp/files.big --offset $((SIZE - 4096)); then
        say "4097 bytes restored into the last 4096"
        ok=1
    fi
    grep -q "larger than the 4096 bytes" /tmp/files.out || { say "the refusal does not say why"; ok=1; }
    carveout-test verify --devmem --seed 0x7a1 || { say "a refused restore changed the region"; ok=1; }
    rm -f /tmp/files.big
    return "$ok"
}

# reserve_mem RAM (issue #7) goes through the kernel's direct map, not an ioremap: the same
# checks on the 4 MiB region the guest sets aside by name.
case_reserve_mem_read_write() {
    rmmod carveout || return 1
    insmod "$MOD" reserve_mem=cvtest || { load; return 1; }
    ok=0
    carveout-test file read --seed 0x4e60 || ok=1
    carveout-test file write --seed 0x4e61 || ok=1
    carveout-test file across-end || ok=1
    carveout-test file offsets || ok=1
    rmmod carveout || ok=1
    load || ok=1
    return "$ok"
}

suite_files() {
    load || return
    run_case read_matches_mmap case_read_matches_mmap
    run_case write_seen_in_mmap case_write_seen_in_mmap
    run_case pread_pwrite_offsets case_pread_pwrite_offsets
    run_case sendfile_from_node case_sendfile_from_node
    run_case splice_to_node case_splice_to_node
    run_case read_at_end_is_eof case_read_at_end_is_eof
    run_case read_across_end_is_short case_read_across_end_is_short
    run_case write_past_end_refused case_write_past_end_refused
    run_case lseek_end_is_size case_lseek_end_is_size
    run_case lseek_bad_whence_refused case_lseek_bad_whence_refused
    run_case wp_region_write_refused case_wp_region_write_refused
    run_case readonly_fd_write_refused case_readonly_fd_write_refused
    run_case uc_region_read_write case_uc_region_read_write
    run_case read_interrupted_by_signal case_read_interrupted_by_signal
    run_case dd_save_restore_roundtrip case_dd_save_restore_roundtrip
    run_case cli_save_restore case_cli_save_restore
    run_case cli_restore_too_large_refused case_cli_restore_too_large_refused
    run_case reserve_mem_read_write case_reserve_mem_read_write
}
SUITES="$SUITES files"
