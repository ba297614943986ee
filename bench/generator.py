#!/usr/bin/env python3
"""Generator benchmark: median wall time of left4me-generator over 10, 100 and 1000 instance
specs, next to systemd's own fstab generator (empty fstab) run on the same machine in the same
run. Usage: bench/generator.py [PATH-TO-left4me-generator] (default: target/release)."""

import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATOR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/left4me-generator")
FSTAB_GENERATOR = "/usr/lib/systemd/system-generators/systemd-fstab-generator"
RUNS = 41

BLUEPRINT = """map = "c2m1_highway"
overlays = ["overlays/metamod", { path = "overlays/sourcemod", alias = "sm" }]
config = "sv_consistency 0"
[resources]
memory_max = "2G"
"""

INSTANCE = """blueprint = "coop"
port = {port}
maxplayers = 8
args = ["-tickrate", "60"]
overlays = [{{ path = "overlays/tickrate", alias = "tickrate" }}]
config = \"\"\"
hostname "Coop #{n}"
\"\"\"
[resources]
cpu_affinity = "1-3"
nice = -5
[health]
watchdog = "60s"
"""


def scratch_dir():
    # Generators write to /run (tmpfs); measure on tmpfs too.
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix="left4me-bench-", dir=base)


def median_ms(argv, env, out_dir):
    samples = []
    for _ in range(RUNS):
        shutil.rmtree(out_dir, ignore_errors=True)
        os.mkdir(out_dir)
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env)
        _, status = os.waitpid(pid, 0)
        samples.append((time.perf_counter() - start) * 1000)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(argv)} failed with status {os.waitstatus_to_exitcode(status)}")
    return statistics.median(samples)


def main():
    if not os.access(GENERATOR, os.X_OK):
        sys.exit(f"{GENERATOR} not found; run `cargo build --release -p left4me-generator` first")
    work = scratch_dir()
    try:
        out_dir = os.path.join(work, "out")
        print(f"median wall time of {RUNS} runs each, output on tmpfs ({work})")
        ms = median_ms(["/bin/true"], dict(os.environ), out_dir)
        print(f"  /bin/true (cost of spawning a process)  {ms:8.3f} ms")
        if os.access(FSTAB_GENERATOR, os.X_OK):
            fstab = os.path.join(work, "fstab")
            open(fstab, "w").close()
            env = dict(os.environ, SYSTEMD_FSTAB=fstab, SYSTEMD_PROC_CMDLINE="")
            ms = median_ms([FSTAB_GENERATOR, out_dir, out_dir, out_dir], env, out_dir)
            print(f"  systemd-fstab-generator (empty fstab)   {ms:8.3f} ms")
        else:
            print(f"  {FSTAB_GENERATOR} not installed: no reference figure")
        for count in (10, 100, 1000):
            config = os.path.join(work, f"config-{count}")
            os.makedirs(os.path.join(config, "instances"))
            os.makedirs(os.path.join(config, "blueprints"))
            with open(os.path.join(config, "blueprints/coop.toml"), "w") as f:
                f.write(BLUEPRINT)
            with open(os.path.join(config, "host.toml"), "w") as f:
                f.write("port_range = [20000, 29999]\n")
            for n in range(count):
                with open(os.path.join(config, f"instances/coop{n}.toml"), "w") as f:
                    f.write(INSTANCE.format(port=20000 + n, n=n))
            env = dict(os.environ, LEFT4ME_CONFIG_DIR=config)
            env.pop("LEFT4ME_STATE_DIR", None)
            ms = median_ms([GENERATOR, out_dir, out_dir, out_dir], env, out_dir)
            written = len(os.listdir(out_dir))
            print(f"  left4me-generator, {count:4} instance specs {ms:8.3f} ms  ({written} drop-in dirs)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
