#!/usr/bin/env python3
"""Sandbox runner benchmark: median wall time of `left4me-sandbox --output DIR -- /bin/true`
(fork, mount namespace and read-only root, idmapped /overlay, privilege drop, Landlock,
seccomp, exec) next to `bwrap --unshare-all --die-with-parent --ro-bind / / /bin/true` and a
plain `/bin/true`, measured in the same run, interleaved, RUNS times each.

Usage (as root): bench/sandbox.py [PATH-TO-left4me-sandbox] (default: target/release).
The sandbox and owner users are test users in a private copy of /etc/passwd, bind-mounted in a
private mount namespace this script re-executes itself in; nothing on the host changes."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/left4me-sandbox")
TRUE = "/bin/true"
BWRAP = shutil.which("bwrap")
RUNS = int(os.environ.get("RUNS", "201"))
SANDBOX = ("l4d2-sbxbench", 61911)
OWNER = ("left4me-sbxbench", 61912)
MARKER = "LEFT4ME_SANDBOX_BENCH_INSIDE"


def reexec_in_private_namespace():
    """Runs this script again in its own mount namespace, with the bench users added to a copy
    of /etc/passwd and /etc/group bound over the originals there."""
    if os.geteuid() != 0:
        sys.exit("needs root: the runner starts as root")
    if not os.access(RUNNER, os.X_OK):
        sys.exit(f"{RUNNER} not found: build it with `cargo build --release -p left4me-sandbox`")
    if BWRAP is None:
        sys.exit("bwrap not found: apt-get install -y bubblewrap")
    scratch = tempfile.mkdtemp(prefix="left4me-sandbox-bench-", dir="/var/tmp")
    try:
        for name, extra in (
            ("passwd", "".join(f"{u}:x:{i}:{i}::/:/usr/sbin/nologin\n" for u, i in (SANDBOX, OWNER))),
            ("group", "".join(f"{u}:x:{i}:\n" for u, i in (SANDBOX, OWNER))),
        ):
            with open(f"/etc/{name}") as f:
                text = f.read()
            with open(os.path.join(scratch, name), "w") as f:
                f.write(text + extra)
        out = os.path.join(scratch, "out")
        os.mkdir(out)
        os.chown(out, OWNER[1], OWNER[1])
        script = (
            f"mount --bind {scratch}/passwd /etc/passwd && mount --bind {scratch}/group /etc/group"
            f' && exec "$@"'
        )
        env = dict(os.environ, **{MARKER: out})
        status = subprocess.call(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
             sys.executable, os.path.abspath(__file__), RUNNER],
            env=env,
        )
        sys.exit(status)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def time_once(argv):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode().strip()}")
    return elapsed


def main():
    out = os.environ[MARKER]
    variants = {
        "/bin/true": [TRUE],
        "bwrap --unshare-all --ro-bind / /": [BWRAP, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", TRUE],
        "left4me-sandbox": [RUNNER, "--output", out, "--user", SANDBOX[0], "--owner", OWNER[0], "--", TRUE],
    }
    samples = {name: [] for name in variants}
    for argv in variants.values():  # warm-up: page cache, dynamic linker
        time_once(argv)
    for _ in range(RUNS):
        for name, argv in variants.items():
            samples[name].append(time_once(argv))
    base = statistics.median(samples["/bin/true"])
    print(f"sandbox start-up, median of {RUNS} interleaved runs each (ms)")
    print(f"{'command':<36} {'median':>8} {'p10':>8} {'p90':>8} {'overhead':>9}")
    for name, values in samples.items():
        q = statistics.quantiles(values, n=10)
        print(f"{name:<36} {statistics.median(values):8.3f} {q[0]:8.3f} {q[-1]:8.3f} {statistics.median(values) - base:9.3f}")
    ours = statistics.median(samples["left4me-sandbox"]) - base
    theirs = statistics.median(samples["bwrap --unshare-all --ro-bind / /"]) - base
    verdict = "below" if ours < theirs else "NOT below"
    print(f"left4me-sandbox overhead {ours:.3f} ms is {verdict} bwrap's {theirs:.3f} ms")
    sys.exit(0 if ours < theirs else 1)


if __name__ == "__main__":
    if MARKER in os.environ:
        main()
    else:
        reexec_in_private_namespace()
