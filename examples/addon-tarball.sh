# left4me example: install an addon pack (e.g. Metamod:Source + SourceMod, or a plugin
# bundle) from a release tarball.
#
# The tarball holds a tree shaped like the game's left4dead2/ directory (addons/…, cfg/…).
# It is downloaded, checked against its published SHA-256, unpacked in /tmp, and then copied
# over left4dead2/ in /overlay. Directories named in REPLACE are deleted first, so files the
# new version dropped do not linger. Anything else already in the overlay is kept.
set -euo pipefail

URL="https://addons.example.org/releases/admin-pack-1.4.2.tar.gz"
SHA256="0000000000000000000000000000000000000000000000000000000000000000"
REPLACE=(addons/metamod addons/sourcemod/plugins)

curl --fail --silent --show-error --location --retry 3 --output /tmp/pack.tar.gz "$URL"
echo "$SHA256  /tmp/pack.tar.gz" | sha256sum --check --quiet -

mkdir -p /tmp/pack
# Files belong to the overlay and get plain modes (readable by all, writable by the owner).
tar --extract --gzip --file /tmp/pack.tar.gz --directory /tmp/pack --no-same-owner
chmod -R u=rwX,go=rX /tmp/pack
if [[ ! -d /tmp/pack/addons && ! -d /tmp/pack/cfg ]]; then
    echo "the pack has no addons/ or cfg/ at its top; is it a left4dead2/ tree?" >&2
    exit 1
fi

mkdir -p left4dead2
for dir in "${REPLACE[@]}"; do
    rm -rf -- "left4dead2/$dir"
done
# Plain cp -R: the sandbox refuses extended attributes, which cp -a and cp -p try to copy.
cp -R /tmp/pack/. left4dead2/
echo "installed $(find /tmp/pack -type f | wc -l) files from ${URL##*/}"
