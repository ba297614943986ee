#!/bin/sh
# Unpacks Debian 13 (trixie)'s systemd, built with the BPF framework (`+BPF_FRAMEWORK`), and
# the libraries it needs into DIR, for booted tests that need `SocketBindAllow=` enforced
# (Debian 12's systemd 252 and bookworm-backports' 254 are built without it).
#
# Nothing is installed on the host: apt reads a sources list and keeps its lists and downloads
# under DIR's parent only (`-o Dir::…`), and the packages are unpacked with `dpkg -x`. The
# booted test lays DIR over the host's root (`Builder::top_layer`), so inside the throwaway
# system /usr/lib/systemd/systemd is 257 and every program runs on trixie's glibc.
#
# Usage: newer-systemd.sh DIR   (DIR must not exist; it is created complete or not at all)
set -eu
dir=$1
[ ! -e "$dir" ] || { echo "newer-systemd.sh: $dir exists" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
work=$(cd "$(dirname "$dir")" && pwd)/.newer-systemd-work
dir=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")
rm -rf "$work"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
cat >"$work/sources.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
EOF
set -- -o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" \
    -o APT::Sandbox::User=root
apt-get "$@" -q update >&2
# systemd and libsystemd-shared with every library they link or dlopen (libbpf for the
# BPF programs) that bookworm has only in an older version, plus glibc itself.
packages="systemd libsystemd-shared libsystemd0 libudev1 libc6 libacl1 libapparmor1 libaudit1
libaudit-common libcap-ng0 libblkid1 libcap2 libcrypt1 libmount1 libpam0g libseccomp2 libselinux1
libpcre2-8-0 libssl3t64 libzstd1 liblz4-1 liblzma5 zlib1g libbpf1 libelf1t64 libkmod2 libgcrypt20
libgpg-error0 libcryptsetup12 libfdisk1 libuuid1 libsmartcols1 libdevmapper1.02.1 libargon2-1
libjson-c5 libp11-kit0 libffi8 libtasn1-6 libip4tc2 libidn2-0 libunistring5 libtinfo6"
(cd "$work/debs" && apt-get "$@" -q download $(for p in $packages; do echo "$p/trixie"; done)) >&2
for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$work/root"
done
mv "$work/root" "$dir"
rm -rf "$work"
