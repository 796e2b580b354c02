# shellcheck shell=bash
# The install manifest: what `make install` put in place, so that `make uninstall` removes
# exactly that. Sourced by scripts/install-*.sh and scripts/uninstall.sh, after common.sh.
#
# $DESTDIR$PREFIX/share/carveout/install-manifest holds one entry a line, fields separated by
# tabs, paths as the installing make saw them (with DESTDIR):
#   dir   PATH          a directory the install created (removed when empty)
#   file  PATH          a file it put in place
#   conf  PATH SHA256   a configuration file it put in place (kept if edited since)
#   group NAME          a group it created (not in a DESTDIR)
# Installing twice adds nothing twice; a file that was there before the install is not listed.

manifest_path() {
    printf '%s\n' "${DESTDIR:-}${PREFIX:-/usr/local}/share/carveout/install-manifest"
}

# missing_dirs PATH: the directories above PATH that do not exist, outermost first.
missing_dirs() {
    local d missing=()
    d=$(dirname "$1")
    while [[ ! -e $d && $d != / && $d != . ]]; do
        missing=("$d" "${missing[@]}")
        d=$(dirname "$d")
    done
    ((${#missing[@]} == 0)) || printf '%s\n' "${missing[@]}"
}

# manifest_add KIND PATH [EXTRA]: one entry, unless it is there already.
manifest_add() {
    local manifest line dirs d
    manifest=$(manifest_path)
    line=$(printf '%s\t' "$@")
    line=${line%$'\t'}
    if [[ ! -e $manifest ]]; then
        # The manifest's own directories are the install's too.
        dirs=$(missing_dirs "$manifest")
        mkdir -p "$(dirname "$manifest")" ||
            die "cannot create $(dirname "$manifest")" "run as root, or set DESTDIR/PREFIX"
        : >"$manifest"
        while IFS= read -r d; do
            [[ -z $d ]] || printf 'dir\t%s\n' "$d" >>"$manifest"
        done <<<"$dirs"
    fi
    grep -qxF -- "$line" "$manifest" || printf '%s\n' "$line" >>"$manifest"
}

# manifest_dirs_for PATH: records the directories above PATH that the install is about to
# create.
manifest_dirs_for() {
    local d dirs
    dirs=$(missing_dirs "$1")
    while IFS= read -r d; do
        [[ -z $d ]] || manifest_add dir "$d"
    done <<<"$dirs"
}

# manifest_install MODE SRC DEST: install -D, recorded.
manifest_install() {
    manifest_dirs_for "$3"
    install -D -m "$1" "$2" "$3" || die "could not install $3" "run as root, or set DESTDIR/PREFIX"
    manifest_add file "$3"
}

# manifest_install_conf SRC DEST: a configuration file, installed when absent (an existing one,
# perhaps edited, is kept) and recorded with its checksum.
manifest_install_conf() {
    if [[ -e $2 ]]; then
        log "keeping $2"
        return 0
    fi
    manifest_dirs_for "$2"
    install -D -m 0644 "$1" "$2" || die "could not install $2" "run as root, or set DESTDIR"
    manifest_add conf "$2" "$(sha256sum <"$2" | cut -d' ' -f1)"
}

# manifest_snapshot DIR: the paths under DIR now (for manifest_record_new after an install
# that another tool does, such as the kernel's modules_install); records the directories above
# DIR it will create.
manifest_snapshot() {
    if [[ -e $1 ]]; then
        find "$1" -mindepth 1 | sort
    else
        manifest_dirs_for "$1/."
    fi
}

# manifest_record_new DIR SNAPSHOT: records what is under DIR now and was not in SNAPSHOT.
manifest_record_new() {
    local path new
    new=$(find "$1" -mindepth 1 | sort | comm -13 <(printf '%s\n' "$2" | sort) -)
    while IFS= read -r path; do
        if [[ -z $path ]]; then
            continue
        elif [[ -d $path && ! -L $path ]]; then
            manifest_add dir "$path"
        else
            manifest_add file "$path"
        fi
    done <<<"$new"
}
