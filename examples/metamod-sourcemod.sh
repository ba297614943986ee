# left4me example: Metamod:Source + SourceMod for Linux, each pinned by URL and SHA-256.
#
# Downloads both release tarballs, checks each against its SHA-256 (sha256sum --check), unpacks
# them into left4dead2/ of the overlay, writes addons/metamod.vdf when the Metamod tarball lacks
# it and turns SourceMod's gamedata auto-updater off (see below). The paths the tarballs ship
# (addons/metamod, addons/sourcemod, cfg/sourcemod, …) are replaced as a whole, so files an older
# version had and this one dropped do not linger; anything else in the overlay is kept.
#
# To move to a new build: set its number in MMS_BUILD or SM_BUILD (and VERSION and BRANCH when
# they change), then its SHA-256 in MMS_SHA256 or SM_SHA256. AlliedModders publishes the
# SHA-256 of each GitHub release asset (on the release page, and as the asset's `digest` in
# https://api.github.com/repos/alliedmodders/sourcemod/releases/tags/1.12.0.NNNN); or compute
# it from a download you trust: curl -fsSL URL | sha256sum. A hash left empty makes the build
# refuse to run and say so. metamod-sourcemod-latest.sh prints these lines for the newest build.
set -euo pipefail

# Metamod:Source, branch 1.12 (stable), build 1227.
MMS_BRANCH=1.12 MMS_VERSION=1.12.0 MMS_BUILD=1227
MMS_SHA256=d70aa8e6b8c88a2a6ff770aadc8e070e8a331ae4fb91a019f3dc19d352c04f5e
# SourceMod, branch 1.12 (stable), build 7253.
SM_BRANCH=1.12 SM_VERSION=1.12.0 SM_BUILD=7253
SM_SHA256=6bbcab989cda0ada83600d0dcb0f46affd16529b2b02ed2dba1b5baeaf02fdb4

# Where each is published: AlliedModders' GitHub release (tag VERSION.BUILD) and drop server.
MMS_FILE=mmsource-$MMS_VERSION-git$MMS_BUILD-linux.tar.gz
MMS_URLS=(
    "https://github.com/alliedmodders/metamod-source/releases/download/$MMS_VERSION.$MMS_BUILD/$MMS_FILE"
    "https://mms.alliedmods.net/mmsdrop/$MMS_BRANCH/$MMS_FILE"
)
SM_FILE=sourcemod-$SM_VERSION-git$SM_BUILD-linux.tar.gz
SM_URLS=(
    "https://github.com/alliedmodders/sourcemod/releases/download/$SM_VERSION.$SM_BUILD/$SM_FILE"
    "https://sm.alliedmods.net/smdrop/$SM_BRANCH/$SM_FILE"
)

CURL=(curl --fail --silent --show-error --location --retry 3 --connect-timeout 20)
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# require_pin FILE SHA256 URL: refuses to go on, saying how to pin it, unless SHA256 is one.
require_pin() {
    if [[ ! $2 =~ ^[0-9a-f]{64}$ ]]; then
        echo "$1 is not pinned: its SHA-256 is '$2'. Pin it: run" >&2
        echo "    curl -fsSL $3 | sha256sum" >&2
        echo "on a machine you trust and put the 64 hex digits in the script (left4mectl overlay edit NAME)" >&2
        exit 1
    fi
}

# fetch FILE SHA256 URL...: downloads FILE from the first URL that answers with exactly those
# bytes (the GitHub release first, where the SHA-256 is published; AlliedModders' drop server
# holds the same file), to $work/FILE. Fails, naming what each URL gave, when none does.
fetch() {
    local file=$1 sha256=$2 url got tried=()
    shift 2
    for url in "$@"; do
        if ! "${CURL[@]}" --output "$work/$file" "$url"; then
            tried+=("$url: download failed")
            continue
        fi
        if echo "$sha256  $work/$file" | sha256sum --check --status -; then
            echo "fetched $file from $url (sha256 ok)"
            return 0
        fi
        got=$(sha256sum < "$work/$file" | cut -d' ' -f1)
        tried+=("$url: sha256 $got")
    done
    echo "$file: refusing it, no URL gave the pinned SHA-256 $sha256:" >&2
    printf '    %s\n' "${tried[@]}" >&2
    return 1
}

require_pin "$MMS_FILE" "$MMS_SHA256" "${MMS_URLS[0]}"
require_pin "$SM_FILE" "$SM_SHA256" "${SM_URLS[0]}"
fetch "$MMS_FILE" "$MMS_SHA256" "${MMS_URLS[@]}"
fetch "$SM_FILE" "$SM_SHA256" "${SM_URLS[@]}"

# Unpack both into one staging tree shaped like left4dead2/. Files get plain modes (some
# SourceMod tarballs ship 0600 files, which the game user could not read).
stage=$work/stage
mkdir -p "$stage"
for tarball in "$MMS_FILE" "$SM_FILE"; do
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
echo "installed ${MMS_FILE%-linux.tar.gz} and ${SM_FILE%-linux.tar.gz} into left4dead2/ (auto-updater off)"
