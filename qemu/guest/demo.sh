# shellcheck shell=sh
# `make run`: load the module, show the region, write and read it back.

run_demo() {
    echo "== insmod carveout.ko base=$(hex "$BASE") size=$(hex "$SIZE")"
    load || qemu_exit
    dmesg | grep carveout
    echo "== /proc/iomem around the region"
    grep -B1 -A1 carveout /proc/iomem
    echo "== $DEV"
    ls -l "$DEV"
    carveout-test info
    echo "== write a pattern through the mapping, read it back through it and through /dev/mem"
    carveout-test roundtrip --seed 0xd3e0 && echo "round trip: the mapping hits the carve-out"
    echo "== first bytes at $(hex "$BASE") through /dev/mem"
    dd if=/dev/mem bs=4096 skip=$((BASE / 4096)) count=1 2>/dev/null | hexdump -C | head -n 4
    rmmod carveout && echo "== rmmod: claim released"
    qemu_exit
}

