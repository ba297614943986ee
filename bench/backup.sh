#!/usr/bin/env bash
# `left4mectl backup` of 20 instances with 50 MiB of upper-layer state each (issue 12), against
# `tar -czf` of the same files and against a LinuxGSM-style `tar -czf` of a game install.
#
# Usage: bench/backup.sh [LEFT4MECTL]   (default: target/release/left4mectl; needs root: the
# state dir must be root's and the upper layers the game user's, here `nobody`).
#
# The state is made to look like a played server's upper layer, per instance (different bytes
# in each, so nothing is shared between instances):
#   30 MiB of srcds/SourceMod logs (text lines with times, names, SteamIDs and numbers),
#   10 MiB of other text (cfgs, SourceMod data: KeyValues-like),
#   10 MiB of incompressible bytes (sprays, downloaded maps, demo files).
# The install is a generated stand-in of 1 GiB, not the real 13 GB: 60 % incompressible (VPK
# archives are mostly compressed textures and sounds) and 40 % text-like, in files of 1–64 MiB.
# LinuxGSM's `backup` runs `tar -czf` over the whole serverfiles dir; gzip's speed per byte is
# the same for 1 GiB or 13 GB, so its time scales linearly.
set -euo pipefail
cd "$(dirname "$0")/.."
CTL=${1:-${CARGO_TARGET_DIR:-$PWD/target}/release/left4mectl}
INSTANCES=${INSTANCES:-20}
[ "$(id -u)" = 0 ] || { echo "bench/backup.sh: run as root" >&2; exit 1; }
[ -x "$CTL" ] || cargo build --release --quiet -p left4mectl

WORK=$(mktemp -d /var/tmp/left4me-bench-backup.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export LEFT4ME_CONFIG_DIR=$WORK/etc LEFT4ME_STATE_DIR=$WORK/state LEFT4ME_ADMIN_DIR=$WORK/admin
mkdir -p "$WORK/etc/instances" "$WORK/state/runtime" "$WORK/out"
chmod 755 "$WORK/state"
printf 'game_user = "nobody"\n' >"$WORK/etc/host.toml"

# Text of about $2 MiB into $1, different for each seed $3.
logs() {
    awk -v seed="$3" -v mib="$2" 'BEGIN {
        srand(seed); target = mib * 1048576; n = 0
        split("Ellis Nick Rochelle Coach Zoey Francis Louis Bill", who, " ")
        while (n < target) {
            line = sprintf("L 12/%02d/2026 - %02d:%02d:%02d: \"%s<%d><STEAM_1:%d:%d><Survivor>\" killed \"Infected<%d>\" with \"%s\" (damage %d, health %d)\n",
                int(rand()*28)+1, int(rand()*24), int(rand()*60), int(rand()*60), who[int(rand()*8)+1],
                int(rand()*64), int(rand()*2), int(rand()*99999999), int(rand()*4000),
                (rand() < 0.5 ? "autoshotgun" : "rifle_ak47"), int(rand()*300), int(rand()*100))
            printf "%s", line; n += length(line)
        }
    }' >"$1"
}
kv() {
    awk -v seed="$3" -v mib="$2" 'BEGIN {
        srand(seed); target = mib * 1048576; n = 0
        while (n < target) {
            s = sprintf("\"STEAM_1:%d:%d\"\n{\n\t\"name\"\t\"player%d\"\n\t\"points\"\t\"%d\"\n\t\"last\"\t\"%d\"\n}\n",
                int(rand()*2), int(rand()*99999999), int(rand()*1000000), int(rand()*100000), 1700000000 + int(rand()*90000000))
            printf "%s", s; n += length(s)
        }
    }' >"$1"
}

echo "generating $INSTANCES instances × 50 MiB of upper-layer state in $WORK"
for i in $(seq 1 "$INSTANCES"); do
    name=$(printf 'srv%02d' "$i")
    printf 'port = %d\n' $((27000 + i)) >"$WORK/etc/instances/$name.toml"
    up="$WORK/state/runtime/$name/upper/left4dead2"
    mkdir -p "$up/logs" "$up/addons/sourcemod/logs" "$up/addons/sourcemod/data" "$up/cfg" "$up/downloads"
    for j in 1 2 3; do logs "$up/logs/L12$j.log" 5 "$i$j" & done
    for j in 1 2 3; do logs "$up/addons/sourcemod/logs/L2026120$j.log" 5 "$i$j$j" & done
    kv "$up/addons/sourcemod/data/points.txt" 9 "$i" &
    logs "$up/cfg/banned_user.cfg" 1 "9$i" &
    wait
    for j in 1 2 3 4 5; do head -c $((2 << 20)) /dev/urandom >"$up/downloads/spray$j.dat"; done
done
chown -R nobody "$WORK/state/runtime"/*/upper
uppers=$(du -sb "$WORK/state/runtime" | cut -f1)

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
# Wall time of "$@" in seconds, caches dropped first (each tool reads from disk, as at night).
timed() {
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }'
}

echo "measuring (caches dropped before each run)"
t_ctl=$(timed "$CTL" --no-reload backup -o "$WORK/out/left4me.tar.zst")
s_ctl=$(stat -c %s "$WORK/out/left4me.tar.zst")
t_tgz=$(timed tar -czf "$WORK/out/uppers.tar.gz" -C "$WORK/state" runtime)
s_tgz=$(stat -c %s "$WORK/out/uppers.tar.gz")
# Restore into an empty host (same machine, other dirs).
mkdir -p "$WORK/r/etc" "$WORK/r/state" && chmod 755 "$WORK/r/state"
t_restore=$(LEFT4ME_CONFIG_DIR=$WORK/r/etc LEFT4ME_STATE_DIR=$WORK/r/state LEFT4ME_ADMIN_DIR=$WORK/r/admin \
    timed "$CTL" --no-reload restore "$WORK/out/left4me.tar.zst")
rm -rf "$WORK/r" "$WORK/out/uppers.tar.gz"

echo "generating a 1 GiB game-install stand-in"
inst="$WORK/serverfiles"
mkdir -p "$inst/left4dead2" "$inst/bin"
for k in $(seq 1 24); do head -c $((24 << 20)) /dev/urandom >"$inst/left4dead2/pak01_0$k.vpk"; done
for k in $(seq 1 8); do logs "$inst/left4dead2/scripts$k.txt" 50 "7$k" & done; wait
for k in $(seq 1 16); do head -c $((1 << 20)) /dev/urandom >"$inst/bin/lib$k.so"; done
s_inst=$(du -sb "$inst" | cut -f1)
t_lgsm=$(timed tar -czf "$WORK/out/lgsm.tar.gz" -C "$WORK" serverfiles)
s_lgsm=$(stat -c %s "$WORK/out/lgsm.tar.gz")

echo
echo "$INSTANCES instances, upper layers $(mib "$uppers") in all, $(nproc) CPUs"
printf '%-44s %8s s  %12s\n' "what" "wall" "archive"
printf '%-44s %8s s  %12s\n' "left4mectl backup (tar + zstd -7, sha256)" "$t_ctl" "$(mib "$s_ctl")"
printf '%-44s %8s s  %12s\n' "tar -czf of the same upper layers" "$t_tgz" "$(mib "$s_tgz")"
printf '%-44s %8s s  %12s\n' "left4mectl restore into an empty host" "$t_restore" ""
printf '%-44s %8s s  %12s\n' "LinuxGSM-style tar -czf, $(mib "$s_inst") install" "$t_lgsm" "$(mib "$s_lgsm")"
awk -v a="$t_lgsm" -v g="$s_inst" 'BEGIN { printf "  (at that rate a 13 GB install takes %.0f s)\n", a * 13e9 / g }'
