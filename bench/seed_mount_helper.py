#!/usr/bin/env python3
"""The seed project's way of mounting an instance's overlay, rebuilt for bench/supervisor.py:
a Python helper run as `nsenter --mount=/proc/1/ns/mnt -- python3 seed_mount_helper.py ENVFILE`.

ENVFILE holds KEY=VALUE lines: LOWERDIRS (colon-separated, topmost first), UPPER, WORK, MERGED
and optionally STATE_DIR (default /var/lib/left4me). Every lowerdir must exist, be a directory
and resolve (realpath) beneath the state dir; then upper/work/merged are created and the
overlay is mounted with mount(2) through ctypes. Python standard library only."""

import ctypes
import ctypes.util
import os
import sys

REQUIRED = ("LOWERDIRS", "UPPER", "WORK", "MERGED")


def parse_env(path):
    env = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                sys.exit(f"{path}:{number}: expected KEY=VALUE")
            env[key.strip()] = value.strip().strip('"')
    missing = [key for key in REQUIRED if not env.get(key)]
    if missing:
        sys.exit(f"{path}: missing {', '.join(missing)}")
    return env


def check_lowerdir(lower, state_dir):
    if not os.path.exists(lower):
        sys.exit(f"lowerdir {lower} does not exist")
    if not os.path.isdir(lower):
        sys.exit(f"lowerdir {lower} is not a directory")
    real = os.path.realpath(lower)
    if not real.startswith(state_dir.rstrip("/") + "/"):
        sys.exit(f"lowerdir {lower} resolves to {real}, outside {state_dir}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: seed_mount_helper.py ENVFILE")
    env = parse_env(sys.argv[1])
    state_dir = os.path.realpath(env.get("STATE_DIR", "/var/lib/left4me"))
    lowers = env["LOWERDIRS"].split(":")
    for lower in lowers:
        check_lowerdir(lower, state_dir)
    for key in ("UPPER", "WORK", "MERGED"):
        os.makedirs(env[key], mode=0o755, exist_ok=True)
    options = f"lowerdir={':'.join(lowers)},upperdir={env['UPPER']},workdir={env['WORK']}"
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    merged = env["MERGED"].encode()
    if libc.mount(b"overlay", merged, b"overlay", 0, options.encode()) != 0:
        errno = ctypes.get_errno()
        sys.exit(f"mount overlay on {env['MERGED']}: {os.strerror(errno)}")


if __name__ == "__main__":
    main()
