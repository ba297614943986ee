# left4me example: keep a set of custom campaign maps in sync with an index.
#
# The index is a text file, one map per line (blank lines and # comments are skipped):
#
#   NAME.vpk  SIZE  MD5  URL
#
# NAME.vpk is the file that ends up in left4dead2/addons, SIZE and MD5 are its size in bytes
# and md5sum, URL is where to get it: a .7z or .zip archive holding NAME.vpk, or the .vpk
# itself. Maps already here with the right size and md5 are not downloaded again; .vpk files
# the index no longer lists are deleted; every download is checked against SIZE and MD5
# before it replaces anything. The script runs in /overlay, which holds the result of the
# last successful sync, and fails (leaving the overlay as it was) on any error.
set -euo pipefail

INDEX_URL="https://maps.example.org/l4d2/index.txt"
ADDONS=left4dead2/addons
CURL=(curl --fail --silent --show-error --location --retry 3 --connect-timeout 20)

mkdir -p "$ADDONS"
"${CURL[@]}" --output /tmp/index.txt "$INDEX_URL"

declare -A wanted=()
fetched=0 kept=0
while read -r name size md5 url rest || [[ -n ${name:-} ]]; do
    [[ -z ${name:-} || $name == \#* ]] && continue
    if [[ ! $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]*\.vpk$ || ! $size =~ ^[0-9]+$ \
          || ! $md5 =~ ^[0-9a-f]{32}$ || -z ${url:-} || -n ${rest:-} ]]; then
        echo "index: malformed line for '$name' (want: NAME.vpk SIZE MD5 URL)" >&2
        exit 1
    fi
    wanted[$name]=1
    target=$ADDONS/$name
    if [[ -f $target && $(stat -c %s "$target") == "$size" ]] \
        && [[ $(md5sum < "$target" | cut -d' ' -f1) == "$md5" ]]; then
        kept=$((kept + 1))
        continue
    fi

    echo "fetching $name from $url"
    rm -rf /tmp/dl && mkdir -p /tmp/dl/x
    archive=/tmp/dl/${url##*/}
    "${CURL[@]}" --output "$archive" "$url"
    case $archive in
        *.7z)  7z x -y -bd -o/tmp/dl/x "$archive" > /dev/null ;;
        *.zip) unzip -q -o "$archive" -d /tmp/dl/x ;;
        *.vpk) mv "$archive" "/tmp/dl/x/$name" ;;
        *)     echo "$name: do not know how to unpack $url" >&2; exit 1 ;;
    esac
    found=$(find /tmp/dl/x -type f -name "$name" -print -quit)
    if [[ -z $found ]]; then
        echo "$name: not in $url" >&2
        exit 1
    fi
    got_size=$(stat -c %s "$found")
    got_md5=$(md5sum < "$found" | cut -d' ' -f1)
    if [[ $got_size != "$size" || $got_md5 != "$md5" ]]; then
        echo "$name: size $got_size md5 $got_md5, the index says size $size md5 $md5" >&2
        exit 1
    fi
    # Copy, then rename within the overlay: the old map is replaced in one step. (Plain cp:
    # the sandbox refuses extended attributes, which cp -p, cp -a and mv across file systems
    # try to copy.)
    cp -- "$found" "$target.part"
    mv -f -- "$target.part" "$target"
    fetched=$((fetched + 1))
done < /tmp/index.txt

removed=0
for vpk in "$ADDONS"/*.vpk; do
    [[ -e $vpk ]] || continue
    if [[ -z ${wanted[${vpk##*/}]:-} ]]; then
        echo "removing ${vpk##*/}: no longer in the index"
        rm -f -- "$vpk"
        removed=$((removed + 1))
    fi
done
echo "maps: $fetched fetched, $kept up to date, $removed removed"
