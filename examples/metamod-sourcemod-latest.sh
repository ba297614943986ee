# left4me example: Metamod:Source + SourceMod for Linux, the newest build of a branch.
#
# NOT REPRODUCIBLE. Each build installs whatever AlliedModders last published on the branch:
# the file mmsource-latest-linux (sourcemod-latest-linux) in the branch's directory of the drop
# server names the newest build, and nothing pins its bytes (the drop server publishes no
# checksum). Two builds a day apart may install different versions. For a server you want to
# rebuild exactly, use metamod-sourcemod.toml, pinned by SHA-256; this script prints the build
# numbers and SHA-256 of what it installed, ready to pin there.
#
# With refresh = "daily" in the overlay definition, the nightly refresh
# (left4me-overlay-refresh.timer) rebuilds this overlay, so it follows the branch; a running
# instance keeps what it mounted and picks up a new build at its next restart.
#
# Like the pinned recipe, it unpacks both into left4dead2/ (replacing the paths the tarballs ship,
# keeping anything else), writes addons/metamod.vdf when the tarball lacks it and turns
# SourceMod's gamedata auto-updater off.
set -euo pipefail

MMS_DROP=https://mms.alliedmods.net/mmsdrop/1.12    # Metamod:Source branch 1.12 (stable)
SM_DROP=https://sm.alliedmods.net/smdrop/1.12       # SourceMod branch 1.12 (stable)

CURL=(curl --fail --silent --show-error --location --retry 3 --connect-timeout 20)
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# fetch_latest DROP PREFIX VAR: reads DROP/PREFIX-latest-linux, which names the newest build
# (e.g. mmsource-1.12.0-git1227-linux.tar.gz), downloads that file to $work, says how to pin it
# in metamod-sourcemod.sh (VAR_VERSION, VAR_BUILD, VAR_SHA256) and prints its name.
fetch_latest() {
    local drop=$1 prefix=$2 var=$3 name
    name=$("${CURL[@]}" "$drop/$prefix-latest-linux") || return 1
    name=${name//[$'\r\n\t ']/}
    if [[ ! $name =~ ^$prefix-([0-9][0-9.]*)-git([0-9]+)-linux\.tar\.gz$ ]]; then
        echo "$drop/$prefix-latest-linux does not name a build (got '${name:0:80}')" >&2
        return 1
    fi
    local version=${BASH_REMATCH[1]} build=${BASH_REMATCH[2]}
    "${CURL[@]}" --output "$work/$name" "$drop/$name" || return 1
    if ! tar --list --gzip --file "$work/$name" > /dev/null 2>&1; then
        echo "$drop/$name is not a gzip tarball" >&2
        return 1
    fi
    echo "fetched $drop/$name; to pin it in metamod-sourcemod.sh:" \
        "${var}_VERSION=$version ${var}_BUILD=$build" \
        "${var}_SHA256=$(sha256sum < "$work/$name" | cut -d' ' -f1)" >&2
    echo "$name"
}

mms_file=$(fetch_latest "$MMS_DROP" mmsource MMS)
sm_file=$(fetch_latest "$SM_DROP" sourcemod SM)

# Unpack both into one staging tree shaped like left4dead2/. Files get plain modes (some
# SourceMod tarballs ship 0600 files, which the game user could not read).
stage=$work/stage
mkdir -p "$stage"
for tarball in "$mms_file" "$sm_file"; do
    tar --extract --gzip --file "$work/$tarball" --directory "$stage" --no-same-owner
done
chmod -R u=rwX,go=rX "$stage"
for dir in addons/metamod addons/sourcemod; do
    if [[ ! -d $stage/$dir ]]; then
        echo "the tarballs hold no $dir/; are they the Linux Metamod:Source and SourceMod packages?" >&2
        exit 1
    fi
done

# The engine loads Metamod through addons/metamod.vdf. Every release tarball ships one; write
# the form AlliedModders' VDF generator gives for L4D2 in case one does not.
if [[ ! -f $stage/addons/metamod.vdf ]]; then
    echo "the Metamod tarball has no addons/metamod.vdf: writing one"
    printf '"Plugin"\n{\n\t"file"\t"../left4dead2/addons/metamod/bin/server"\n}\n' \
        > "$stage/addons/metamod.vdf"
fi

# SourceMod's auto-updater off. When it is on, SourceMod downloads newer gamedata files at each
# start and writes them into addons/sourcemod/gamedata/ of the running server, which here is
# the instance's private upper layer (runtime/NAME/upper). A file there hides the same path in
# every overlay below it, for good: a later build of this overlay with newer gamedata would not
# be seen by that instance until `left4mectl reset NAME`. Gamedata comes from this overlay only;
# rebuild it to update.
core=$stage/addons/sourcemod/configs/core.cfg
if [[ ! -f $core ]]; then
    echo "the SourceMod tarball has no addons/sourcemod/configs/core.cfg" >&2
    exit 1
fi
if grep -q '^[[:space:]]*"DisableAutoUpdate"' "$core"; then
    sed -i 's/^\([[:space:]]*"DisableAutoUpdate"[[:space:]]*\)"[^"]*"/\1"yes"/' "$core"
else
    # Not in the file (the default is "no"): add it as the first key of the "Core" section.
    sed -i '0,/^[[:space:]]*{/s//&\n\t"DisableAutoUpdate"\t\t\t"yes"/' "$core"
fi
if ! grep -q '^[[:space:]]*"DisableAutoUpdate"[[:space:]]*"yes"' "$core"; then
    echo "could not set \"DisableAutoUpdate\" \"yes\" in addons/sourcemod/configs/core.cfg" >&2
    exit 1
fi

# Replace what the packages ship, keep the rest. Plain cp -R: the sandbox refuses extended
# attributes, which cp -a and cp -p try to copy.
mkdir -p left4dead2
shopt -s nullglob
for path in "$stage"/*/*; do
    rm -rf -- "left4dead2/${path#"$stage"/}"
done
cp -R "$stage/." left4dead2/
echo "installed ${mms_file%-linux.tar.gz} and ${sm_file%-linux.tar.gz} into left4dead2/ (auto-updater off)"
