#!/usr/bin/env bash
# Removes what `make install` (and `make install-tools`, `make dkms-source`'s files) put in
# place, as its manifest lists it (scripts/manifest.sh): the files, the directories the install
# created once they are empty, a configuration file only if nobody edited it since, the group
# it created; then runs depmod for each kernel whose module it removed and reloads udev.
#   environment: DESTDIR, PREFIX: the same as for the install
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
# shellcheck source=scripts/manifest.sh
source "$CARVEOUT_ROOT/scripts/manifest.sh"

destdir=${DESTDIR:-}
manifest=$(manifest_path)
if [[ ! -f $manifest ]]; then
    log "nothing to uninstall: no $manifest (installed with another DESTDIR or PREFIX?)"
    exit 0
fi

dirs=()
module_roots=()
groups=()
while IFS=$'\t' read -r kind path extra; do
    case $kind in
    dir) dirs+=("$path") ;;
    file)
        if [[ -e $path || -L $path ]]; then
            rm -f -- "$path" || die "could not remove $path" "run as root"
            echo "removed $path"
        fi
        # A module directory: lib/modules/RELEASE/..., depmod'ed below.
        if [[ $path == */lib/modules/*/* ]]; then
            module_roots+=("${path%/lib/modules/*}"$'\t'"$(cut -d/ -f1 <<<"${path##*/lib/modules/}")")
        fi
        ;;
    conf)
        [[ -e $path ]] || continue
        if [[ $(sha256sum <"$path" | cut -d' ' -f1) == "$extra" ]]; then
            rm -f -- "$path" || die "could not remove $path" "run as root"
            echo "removed $path"
        else
            log "keeping $path: edited since the install (remove it yourself if you no longer want it)"
        fi
        ;;
    group) groups+=("$path") ;;
    *) log "ignoring a manifest line of unknown kind '$kind'" ;;
    esac
done <"$manifest"
rm -f -- "$manifest"

# Innermost first; a directory that still holds something not ours stays.
for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    if [[ -d ${dirs[i]} ]] && rmdir -- "${dirs[i]}" 2>/dev/null; then
        echo "removed ${dirs[i]}/"
    fi
done

if ((${#module_roots[@]})); then
    while IFS=$'\t' read -r root release; do
        if [[ ! -d $root/lib/modules/$release ]]; then
            continue # the install made that directory, and it is gone with carveout.ko
        elif command -v depmod >/dev/null; then
            echo "depmod ${root:+-b $root }-a $release"
            depmod ${root:+-b "$root"} -a "$release"
        else
            log "depmod not found: run depmod -a $release"
        fi
    done < <(printf '%s\n' "${module_roots[@]}" | sort -u)
fi

[[ -z $destdir ]] || exit 0
for group in "${groups[@]}"; do
    if groupdel "$group"; then
        echo "removed the group $group"
    else
        log "could not remove the group $group"
    fi
done
if command -v udevadm >/dev/null; then
    udevadm control --reload-rules 2>/dev/null || true
fi
if compgen -G "/usr/src/carveout-*" >/dev/null; then
    log "DKMS sources remain in /usr/src/carveout-*: dkms remove carveout/VERSION --all, then remove them"
fi
