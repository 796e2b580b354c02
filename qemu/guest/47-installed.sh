# shellcheck shell=sh
# The installed module in use (issue 21): /installed is the root `make install DESTDIR=...` made
# for this kernel (scripts/build-installed-root.sh), with kmod's modprobe and Debian's udevadm.
# Inside it (chroot, with /proc, /sys, /dev and a /run of its own), the user's path: edit the
# installed /etc/modprobe.d/carveout.conf as its comment says, `modprobe carveout`, and the
# installed udev rule applied by udevadm to the node the kernel made. (A udevd of its own
# cannot run here: the test kernel has no inotify, CONFIG_INOTIFY_USER; `udevadm test` runs
# the same rules engine on the device's add event and applies what they say to the node.)

INST=/installed
INST_CONF=$INST/etc/modprobe.d/carveout.conf

# The chroot's mounts, once.
installed_mounts() {
    [ -d "$INST/etc" ] || { say "no $INST in the initramfs"; return 1; }
    grep -q " $INST/proc " /proc/mounts && return 0
    mount --bind /proc "$INST/proc" && mount --bind /sys "$INST/sys" &&
        mount --bind /dev "$INST/dev" && mount -t tmpfs tmpfs "$INST/run"
}

inst() { chroot "$INST" "$@"; }

# node_owner NODE: "MODE GID" of a device node (mode in octal).
node_owner() { stat -c '%a %g' "$1"; }

case_installed_modprobe_options() {
    installed_mounts || return 1
    rel=$(uname -r)
    [ -f "$INST/lib/modules/$rel/updates/carveout.ko" ] ||
        { say "no lib/modules/$rel/updates/carveout.ko in $INST"; return 1; }
    # As installed, the options are an example, commented out: modprobe loads carveout
    # without a region.
    if grep -q '^options' "$INST_CONF"; then
        say "the installed carveout.conf sets options: $(grep '^options' "$INST_CONF")"
        return 1
    fi
    inst modprobe carveout || { say "modprobe carveout (no options) failed"; return 1; }
    ok=1
    module_loaded || { say "modprobe loaded nothing"; ok=0; }
    if [ -e "$DEV" ] || iomem_has_name carveout; then
        say "a region without options"
        ok=0
    fi
    inst modprobe -r carveout || { say "modprobe -r failed"; return 1; }
    ! module_loaded || { say "modprobe -r left carveout loaded"; ok=0; }
    # The user's edit: the example line, with this machine's range (and write-combining).
    sed -i "s/^#options carveout base=[0-9a-fx]* size=[0-9a-fx]*\$/options carveout base=$(hex "$BASE") size=$(hex "$SIZE") attr=2/" \
        "$INST_CONF" || return 1
    line=$(grep '^options' "$INST_CONF")
    [ -n "$line" ] || { say "the installed carveout.conf has no example line to edit"; return 1; }
    say "carveout.conf: $line"
    inst modprobe --show-depends carveout >/tmp/inst.dep 2>&1
    say "modprobe --show-depends: $(cat /tmp/inst.dep)"
    grep -qx "insmod /lib/modules/$rel/updates/carveout.ko base=$(hex "$BASE") size=$(hex "$SIZE") attr=2 *" \
        /tmp/inst.dep || { say "modprobe does not resolve the installed module with the options"; ok=0; }
    inst modprobe carveout || { say "modprobe carveout failed"; return 1; }
    iomem_claim_inside_reserved "$BASE" "$LAST" carveout || { say "no claim of the range"; ok=0; }
    sys=/sys/class/carveout/carveout0
    if [ "$(cat "$sys/phys_addr")" != "$(hex "$BASE")" ] || [ $(($(cat "$sys/size"))) != $((SIZE)) ] ||
        [ "$(cat "$sys/attr")" != wc ]; then
        say "the region is $(cat "$sys/phys_addr") $(cat "$sys/size") $(cat "$sys/attr")"
        ok=0
    fi
    # The installed carveoutctl reads it, and the region holds what is written (via /dev/mem).
    inst /usr/local/bin/carveoutctl info >/tmp/inst.info 2>&1 || { cat /tmp/inst.info; ok=0; }
    grep -q "$(hex "$BASE")" /tmp/inst.info || { cat /tmp/inst.info; say "carveoutctl info: not the range"; ok=0; }
    carveout-test roundtrip --seed 0x1257 || ok=0
    inst modprobe -r carveout || { say "modprobe -r failed"; ok=0; }
    if module_loaded || iomem_has_name carveout; then
        say "modprobe -r left carveout or its claim"
        ok=0
    fi
    [ "$ok" = 1 ] && dmesg_clean
}

case_installed_udev_rule() {
    installed_mounts || return 1
    gid=$(sed -n 's/^carveout:x:\([0-9]*\):.*/\1/p' "$INST/etc/group")
    [ -n "$gid" ] || { say "no group carveout in $INST/etc/group"; return 1; }
    [ -f "$INST/etc/udev/rules.d/60-carveout.rules" ] || { say "no installed udev rule"; return 1; }
    # A region without a gid (the param region) and one with a gid of its own (configfs).
    insmod "$MOD" "base=$(hex "$BASE")" "size=$(hex $((SIZE / 2)))" || return 1
    make_region own "$(hex $((BASE + SIZE / 2)))" "$(hex $((SIZE / 2)))" 0640 1234 ||
        { say "configfs region with gid 1234 refused"; drop_region own; return 1; }
    ok=1
    say "as the kernel made them: carveout0 $(node_owner "$DEV"), own $(node_owner /dev/carveout/own)"
    [ "$(node_owner "$DEV")" = "600 0" ] || { say "the kernel's node is not 0600 root"; ok=0; }
    for node in carveout0 carveout-own; do
        inst udevadm test --action=add "/sys/class/carveout/$node" >"/tmp/udev-$node.log" 2>&1 ||
            { say "udevadm test $node failed:"; tail -n 20 "/tmp/udev-$node.log"; ok=0; }
    done
    grep -i 'carveout.rules' /tmp/udev-carveout0.log | sed 's/^/# udevadm: /'
    after=$(node_owner "$DEV")
    own=$(node_owner /dev/carveout/own)
    say "after udevadm: carveout0 $after, own $own"
    [ "$after" = "660 $gid" ] || { say "expected mode 660, group carveout ($gid)"; ok=0; }
    [ "$own" = "640 1234" ] || { say "the rule changed a region with a gid of its own"; ok=0; }
    drop_region own
    [ "$ok" = 1 ] && dmesg_clean
}

suite_installed() {
    run_case installed_modprobe_options case_installed_modprobe_options
    unload_quietly
    run_case installed_udev_rule case_installed_udev_rule
    unload_quietly
    for m in run dev sys proc; do
        ! grep -q " $INST/$m " /proc/mounts || umount "$INST/$m" || say "could not unmount $INST/$m"
    done
}
SUITES="$SUITES installed"
