#!/bin/bash
# Offline test of the Metamod:Source + SourceMod recipes (metamod-sourcemod.sh and
# metamod-sourcemod-latest.sh). Needs no root and no network: a `curl` stand-in first on PATH
# serves files from a local directory (https://HOST/PATH is $web/HOST/PATH; anything else is
# a 404, as `curl --fail` reports it), and the tarballs it serves are small fakes shaped like
# the real packages. Each recipe runs as `overlay build` runs it: `bash -c SCRIPT` with the
# overlay as its working directory, $OVERLAY set and a scrubbed environment.
#
# Usage: examples/test-recipes.sh        exit status 0 when every check passes
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pinned=$here/metamod-sourcemod.sh
latest=$here/metamod-sourcemod-latest.sh
t=$(mktemp -d)
trap 'rm -rf -- "$t"' EXIT
web=$t/web
failures=0

pass() { echo "ok    $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: runs the command, reports whether it succeeded.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# The curl stand-in: the options the recipes use, --output or stdout, a 404 for unknown URLs.
mkdir -p "$t/bin" "$web"
cat > "$t/bin/curl" << 'EOF'
#!/bin/bash
out='' url=''
while (($#)); do
    case $1 in
        --output | -o) out=$2; shift 2 ;;
        --retry | --connect-timeout | --max-time | --proto) shift 2 ;;
        -*) shift ;;
        *) url=$1; shift ;;
    esac
done
echo "$url" >> "$FAKE_WEB.log"
file=$FAKE_WEB/${url#https://}
if [[ $url != https://* || ! -f $file ]]; then
    echo "curl: (22) The requested URL returned error: 404" >&2
    exit 22
fi
if [[ -n $out ]]; then cp -- "$file" "$out"; else cat -- "$file"; fi
EOF
chmod +x "$t/bin/curl"

# make_tarballs DIR [vdf] [nokey]: fake Metamod:Source and SourceMod tarballs in DIR/mms and
# DIR/sm; `vdf` puts an addons/metamod.vdf in the Metamod one, `nokey` leaves
# "DisableAutoUpdate" out of core.cfg. Files are 0600, as some SourceMod tarballs ship them.
make_tarballs() {
    local dir=$1 opts=" ${*:2} "
    mkdir -p "$dir/mms/addons/metamod/bin/linux64" "$dir/sm/addons/sourcemod/configs" \
        "$dir/sm/addons/sourcemod/bin" "$dir/sm/addons/sourcemod/gamedata/core.games" \
        "$dir/sm/addons/sourcemod/plugins" "$dir/sm/cfg/sourcemod"
    echo ELF > "$dir/mms/addons/metamod/bin/server.so"
    echo ELF > "$dir/mms/addons/metamod/bin/linux64/server.so"
    echo '; metaplugins' > "$dir/mms/addons/metamod/metaplugins.ini"
    printf '"Plugin"\n{\n\t"file"\t"addons/metamod/bin/linux64/server"\n}\n' \
        > "$dir/mms/addons/metamod_x64.vdf"
    if [[ $opts == *" vdf "* ]]; then
        printf '"Plugin"\n{\n\t"file"\t"shipped"\n}\n' > "$dir/mms/addons/metamod.vdf"
    fi
    {
        printf '/**\n * core.cfg\n */\n"Core"\n{\n\t"Logging"\t\t"on"\n'
        if [[ $opts != *" nokey "* ]]; then
            printf '\t/**\n\t * The default value is "no". A value of "yes" will block the Auto Updater.\n\t */\n'
            printf '\t"DisableAutoUpdate"\t\t\t"no"\n'
        fi
        printf '\t"ForceRestartAfterUpdate"\t"no"\n}\n'
    } > "$dir/sm/addons/sourcemod/configs/core.cfg"
    echo ELF > "$dir/sm/addons/sourcemod/bin/sourcemod_mm_i486.so"
    echo '"Games" {}' > "$dir/sm/addons/sourcemod/gamedata/core.games/common.games.txt"
    echo SMX > "$dir/sm/addons/sourcemod/plugins/admin-flatfile.smx"
    echo '// sourcemod.cfg' > "$dir/sm/cfg/sourcemod/sourcemod.cfg"
    find "$dir/mms" "$dir/sm" -type f -exec chmod 0600 {} +
    tar --create --gzip --file "$dir/mms.tar.gz" --directory "$dir/mms" addons
    tar --create --gzip --file "$dir/sm.tar.gz" --directory "$dir/sm" addons cfg
}

# serve URL FILE: makes the stand-in answer URL with FILE.
serve() {
    mkdir -p "$(dirname "$web/${1#https://}")"
    cp -- "$2" "$web/${1#https://}"
}

# run SCRIPT OVERLAY: runs a recipe the way the sandbox does; output in $t/out, status in $status.
run() {
    mkdir -p "$2" "$t/tmp"
    rm -f "$web.log"
    status=0
    (cd "$2" && env -i PATH="$t/bin:/usr/bin:/bin" HOME="$t/tmp" TMPDIR="$t/tmp" OVERLAY="$2" \
        FAKE_WEB="$web" bash -c "$(cat "$1")") > "$t/out" 2>&1 || status=$?
    if [[ -n ${VERBOSE:-} ]]; then sed 's/^/      | /' "$t/out"; fi
}

# The checks every successful install must pass, on overlay $1.
check_installed() {
    local o=$1/left4dead2
    check "$2: Metamod and SourceMod unpacked" \
        test -f "$o/addons/metamod/bin/server.so" -a -f "$o/addons/sourcemod/bin/sourcemod_mm_i486.so"
    check "$2: cfg/sourcemod unpacked" test -f "$o/cfg/sourcemod/sourcemod.cfg"
    check "$2: addons/metamod.vdf present" test -f "$o/addons/metamod.vdf"
    check "$2: core.cfg says \"DisableAutoUpdate\" \"yes\"" \
        grep -Eq '^\s*"DisableAutoUpdate"\s+"yes"$' "$o/addons/sourcemod/configs/core.cfg"
    check "$2: core.cfg has one DisableAutoUpdate key" \
        test "$(grep -c '"DisableAutoUpdate"' "$o/addons/sourcemod/configs/core.cfg")" = 1
    check "$2: every file readable by the game user" \
        test -z "$(find "$o" -type f ! -perm -0444 -print -quit)"
}

# The file names and URLs the recipes use, read from them.
eval "$(sed -n '/^MMS_BRANCH=/,/^CURL=/{/^CURL=/!p}' "$pinned")"
eval "$(sed -n 's/ *#.*//; /^MMS_DROP=/p; /^SM_DROP=/p' "$latest")"
# shellcheck disable=SC2153 # set by the evals above
mms_urls=("${MMS_URLS[@]}") sm_urls=("${SM_URLS[@]}") sm_file=$SM_FILE
# shellcheck disable=SC2153
mms_drop=$MMS_DROP sm_drop=$SM_DROP
check "the pinned recipe has two URLs for each package" test "${#mms_urls[@]}" = 2 -a "${#sm_urls[@]}" = 2

echo "== metamod-sourcemod.sh (pinned)"
make_tarballs "$t/fake"
for url in "${mms_urls[@]}"; do serve "$url" "$t/fake/mms.tar.gz"; done
for url in "${sm_urls[@]}"; do serve "$url" "$t/fake/sm.tar.gz"; done

# 1. The real pins against the fake tarballs: a wrong hash, refused; the overlay untouched.
mkdir -p "$t/o1/left4dead2/addons"
echo keep > "$t/o1/left4dead2/addons/other.vpk"
run "$pinned" "$t/o1"
check "wrong hash: the build fails" test "$status" -ne 0
check "wrong hash: says it refuses, with the hash it got" \
    grep -q "refusing it, no URL gave the pinned SHA-256" "$t/out"
check "wrong hash: tried the drop server too" grep -qF "${mms_urls[1]}" "$web.log"
check "wrong hash: nothing installed" test ! -e "$t/o1/left4dead2/addons/metamod"
check "wrong hash: the overlay's own files kept" test -f "$t/o1/left4dead2/addons/other.vpk"

# 2. Pinned to the fakes: installs; the previous content of package paths is replaced.
mms_sha=$(sha256sum < "$t/fake/mms.tar.gz" | cut -d' ' -f1)
sm_sha=$(sha256sum < "$t/fake/sm.tar.gz" | cut -d' ' -f1)
sed -e "s/^MMS_SHA256=.*/MMS_SHA256=$mms_sha/" -e "s/^SM_SHA256=.*/SM_SHA256=$sm_sha/" \
    "$pinned" > "$t/pinned-fake.sh"
mkdir -p "$t/o1/left4dead2/addons/sourcemod/gamedata"
echo stale > "$t/o1/left4dead2/addons/sourcemod/gamedata/dropped.txt"
run "$t/pinned-fake.sh" "$t/o1"
check "pinned: the build succeeds" test "$status" -eq 0
check_installed "$t/o1" pinned
check "pinned: metamod.vdf written for L4D2" \
    grep -qF '"../left4dead2/addons/metamod/bin/server"' "$t/o1/left4dead2/addons/metamod.vdf"
check "pinned: downloads from the GitHub release" grep -qxF "${sm_urls[0]}" "$web.log"
check "pinned: a file the new version dropped is gone" \
    test ! -e "$t/o1/left4dead2/addons/sourcemod/gamedata/dropped.txt"
check "pinned: the overlay's own files kept" test -f "$t/o1/left4dead2/addons/other.vpk"

# 3. Building again over its own result gives the same tree.
cp -R "$t/o1" "$t/o1.before"
run "$t/pinned-fake.sh" "$t/o1"
check "rebuild: succeeds" test "$status" -eq 0
check "rebuild: the same tree" diff -r "$t/o1.before" "$t/o1"

# 4. The GitHub release unreachable: the drop server's copy, with the same hash check.
rm -f "$web/${sm_urls[0]#https://}"
run "$t/pinned-fake.sh" "$t/o4"
check "fallback: succeeds" test "$status" -eq 0
check "fallback: fetched from the drop server" grep -qF "fetched $sm_file from ${sm_urls[1]}" "$t/out"
check_installed "$t/o4" fallback
serve "${sm_urls[0]}" "$t/fake/sm.tar.gz"

# 5. A hash left empty: refused, saying how to pin it.
sed -e "s/^SM_SHA256=.*/SM_SHA256=/" "$t/pinned-fake.sh" > "$t/unpinned.sh"
run "$t/unpinned.sh" "$t/o5"
check "unpinned: the build fails" test "$status" -ne 0
check "unpinned: says how to pin it" grep -qF "curl -fsSL ${sm_urls[0]} | sha256sum" "$t/out"
check "unpinned: nothing downloaded" test ! -s "$web.log"

echo "== metamod-sourcemod-latest.sh"
printf 'mmsource-1.12.0-git1299-linux.tar.gz\n' > "$t/mms-latest"
printf 'sourcemod-1.12.0-git7299-linux.tar.gz\n' > "$t/sm-latest"
serve "$mms_drop/mmsource-latest-linux" "$t/mms-latest"
serve "$sm_drop/sourcemod-latest-linux" "$t/sm-latest"

# 6. The builds the pointer files name; a metamod.vdf in the tarball is kept; a core.cfg without
# the key gets it.
make_tarballs "$t/fake6" vdf nokey
serve "$mms_drop/mmsource-1.12.0-git1299-linux.tar.gz" "$t/fake6/mms.tar.gz"
serve "$sm_drop/sourcemod-1.12.0-git7299-linux.tar.gz" "$t/fake6/sm.tar.gz"
run "$latest" "$t/o6"
check "latest: the build succeeds" test "$status" -eq 0
check_installed "$t/o6" latest
check "latest: the tarball's metamod.vdf kept" grep -q shipped "$t/o6/left4dead2/addons/metamod.vdf"
check "latest: prints what to pin" grep -qF \
    "SM_VERSION=1.12.0 SM_BUILD=7299 SM_SHA256=$(sha256sum < "$t/fake6/sm.tar.gz" | cut -d' ' -f1)" "$t/out"

# 7. A pointer that is an HTML page (a proxy's or CDN's error page): refused, nothing changed.
printf '<html><body>Just a moment...</body></html>\n' > "$t/sm-latest"
serve "$sm_drop/sourcemod-latest-linux" "$t/sm-latest"
run "$latest" "$t/o7"
check "bad pointer: the build fails" test "$status" -ne 0
check "bad pointer: says so" grep -q "does not name a build" "$t/out"
check "bad pointer: nothing installed" test ! -e "$t/o7/left4dead2"

# 8. A pointer naming a file that is not a tarball.
printf 'sourcemod-1.12.0-git7300-linux.tar.gz\n' > "$t/sm-latest"
serve "$sm_drop/sourcemod-latest-linux" "$t/sm-latest"
serve "$sm_drop/sourcemod-1.12.0-git7300-linux.tar.gz" "$t/sm-latest"
run "$latest" "$t/o8"
check "not a tarball: the build fails" test "$status" -ne 0
check "not a tarball: says so" grep -q "is not a gzip tarball" "$t/out"

if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
