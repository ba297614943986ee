# Stage 2 of booting a throwaway systemd (see /work/shared/TESTBED.md).
#
# Runs as PID 1 of fresh pid, mount, uts, ipc, net and cgroup namespaces made by
# `unshare`, with the host's root still visible. It wires up what the booted system
# sees, then pivots into the overlay root and execs systemd. Nothing here may touch
# the host: every mount is in our private mount namespace, every link in our netns.
#
# Arguments: $1 = the overlay root (host path), $2 = the console file (host path), then
# arguments for systemd (after --system).
# Environment: L4M_CONTAINER = the container= value systemd sees;
# L4M_CGROUP_MOUNTS = lines "fstype options relpath" recreating the
# host's /sys/fs/cgroup layout, so the mounts are rooted at our cgroup namespace.
set -eu
root=$1
console=$2
shift 2

# Network: lo, and a veth pair carrying the default route so no packet can leave.
ip link set dev lo up
ip link add name a type veth peer name b
ip link set dev a up
ip link set dev b up
ip addr add 192.0.2.1/24 dev a
ip route add default dev a

# /dev: the host's, but with a private /dev/shm and a console that is a file.
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
mount --bind "$console" "$root/dev/console"

# /proc with /proc/sys read-only (kernel.*, vm.*, fs.* are the host's), except
# /proc/sys/net, which belongs to our network namespace.
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount --bind "$root/proc/sys/net" "$root/proc/sys/net"
mount -o remount,bind,ro,nosuid,nodev,noexec "$root/proc/sys"

# /sys: a fresh, read-only sysfs, so /sys/class/net shows our network namespace's
# links; the cgroup file systems mounted afresh so their root is our cgroup.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
printf '%s\n' "$L4M_CGROUP_MOUNTS" | while read -r fstype options relpath; do
    [ -n "$fstype" ] || continue
    target="$root/sys/fs/cgroup/$relpath"
    mkdir -p "$target"
    mount -t "$fstype" -o "$options" "$fstype" "$target"
done

cd "$root"
pivot_root . .
umount -l .
exec </dev/null env -i "container=${L4M_CONTAINER:-left4me-test}" /lib/systemd/systemd --system "$@"
