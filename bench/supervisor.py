#!/usr/bin/env python3
"""Supervisor benchmark (needs root): median wall time of `left4me-supervisor prepare NAME` for
stacks of 1, 10, 100 and 500 layers and of `cleanup NAME`; the seed project's way of mounting
(`nsenter --mount=/proc/1/ns/mnt -- python3 bench/seed_mount_helper.py ENVFILE`) for the same
10-layer stack; and the peak RSS of `left4me-supervisor run NAME` supervising the stand-in game
server. Usage: bench/supervisor.py [PATH-TO-left4me-supervisor [PATH-TO-srcds-standin]]
(default: $CARGO_TARGET_DIR/release, else target/release).

Everything runs against a "PID 1" of the benchmark's own (a `sleep` that is PID 1 of a new PID
and mount namespace), as supervisor/tests/privileged_phases.rs does: the real /proc/1/ns/mnt may
not be inspectable. Both mount paths are started the same way, through
`nsenter --target <sleep> --pid --mount -- unshare --mount --propagation private --`, and join
"PID 1"'s mount namespace from there; that wrapper's cost is measured with /bin/true and printed
so it can be subtracted. The state dir is a tmpfs mounted for the run; all of it (mounts,
processes, tmpfs, temp dir) is removed at the end, also on error."""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release")
SUPERVISOR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(BIN_DIR, "left4me-supervisor"))
STANDIN = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(BIN_DIR, "srcds-standin"))
SEED_HELPER = os.path.join(ROOT, "bench/seed_mount_helper.py")
# The seed's helper ran under the system's Python; a pyenv shim would add a shell script's cost.
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
RUNS = 41
LAYER_COUNTS = (1, 10, 100, 500)
SEED_LAYERS = 10
# `run` queries once per WATCHDOG_USEC/3 while ready: query every second during the RSS window.
WATCHDOG_USEC = 3_000_000
QUERY_SECONDS = 6
RSS_TARGET_KIB = 3 * 1024
NOBODY = 65534


def tool(name):
    path = shutil.which(name)
    if path is None:
        sys.exit(f"{name} not found (util-linux)")
    return path


NSENTER, UNSHARE, SETPRIV, UMOUNT = (tool(n) for n in ("nsenter", "unshare", "setpriv", "umount"))


def free_udp_ports(count):
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class Host:
    """Config dir, tmpfs state dir with a game tree and overlays, and a "PID 1" of our own."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="left4me-bench-sup-", dir="/tmp")
        os.chmod(self.base, 0o755)  # `run` is started as the game user and reads the config
        self.config = os.path.join(self.base, "config")
        self.state = os.path.join(self.base, "state")
        self.log = os.path.join(self.base, "phase.log")
        self.tmpfs = False
        self.pid1_parent = None
        self.children = []
        try:
            os.makedirs(os.path.join(self.config, "instances"))
            os.makedirs(self.state)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "left4me-bench", self.state], check=True)
            self.tmpfs = True
            with open(os.path.join(self.base, "pid1.log"), "w") as log:
                self.pid1_parent = subprocess.Popen(
                    [UNSHARE, "--pid", "--fork", "--kill-child", "--mount", "--mount-proc",
                     "--propagation", "private", "sleep", "infinity"],
                    stderr=log,
                )
            self.pid1 = self._wait_for_pid1()
        except BaseException:
            self.close()
            raise

    def _wait_for_pid1(self):
        children = f"/proc/{self.pid1_parent.pid}/task/{self.pid1_parent.pid}/children"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(children) as f:
                pids = f.read().split()
            if pids:
                return int(pids[0])
            time.sleep(0.01)
        with open(os.path.join(self.base, "pid1.log")) as f:
            raise RuntimeError(f"the benchmark's PID 1 did not start: {f.read()}")

    def close(self):
        if self.pid1_parent is not None:
            # Killing PID 1 of the namespace kills everything in it and frees its mounts.
            try:
                os.kill(self.pid1, signal.SIGKILL)
            except (AttributeError, ProcessLookupError):
                self.pid1_parent.kill()
            self.pid1_parent.wait()
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        if self.tmpfs:
            subprocess.run([UMOUNT, self.state], check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def in_ns(self, argv, private=True):
        """`argv` in PID 1's PID and mount namespace; `private`: in a private mount namespace
        below it, as systemd starts ExecStartPre/ExecStopPost in the unit's namespace."""
        wrapper = [NSENTER, "--target", str(self.pid1), "--pid", "--mount", "--"]
        if private:
            wrapper += [UNSHARE, "--mount", "--propagation", "private", "--"]
        return wrapper + argv

    def overlay_mounts(self, merged):
        """Overlay mounts at `merged` in PID 1's mount namespace."""
        count = 0
        with open(f"/proc/{self.pid1}/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == merged and fields[fields.index("-") + 1] == "overlay":
                    count += 1
        return count

    def merged(self, name):
        return os.path.join(self.state, "runtime", name, "merged")


def spawn_wait(argv, env, log):
    """Runs `argv` with stdout and stderr to `log`; returns (seconds, exit code)."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status)


def check_exit(argv, code, log):
    if code != 0:
        with open(log) as f:
            raise RuntimeError(f"{' '.join(argv)} failed with status {code}:\n{f.read()}")


def must(argv, env, log):
    """Runs an untimed step; raises with its output when it fails."""
    _, code = spawn_wait(argv, env, log)
    check_exit(argv, code, log)


class Timing:
    """Median and fastest of RUNS runs, in ms, and the last line the command printed."""

    def __init__(self, median, fastest, report):
        self.median, self.fastest, self.report = median, fastest, report

    def __str__(self):
        return f"{self.median:8.3f} ms (min {self.fastest:7.3f})"


def timed(argv, env, log, before=None, after=None):
    """Wall time of RUNS runs of `argv` and the last line it printed; `before`/`after` run
    untimed around each run."""
    samples = []
    for _ in range(RUNS):
        if before:
            before()
        seconds, code = spawn_wait(argv, env, log)
        check_exit(argv, code, log)
        samples.append(seconds * 1000)
        report = last_line(log)
        if after:
            after()
    return Timing(statistics.median(samples), min(samples), report)


def show(what, timing, state=None):
    """One result line; with `state`, followed by what the phase said (paths below $STATE)."""
    line = f"  {what:46} {timing}"
    if state and timing.report:
        line += "  " + timing.report.removeprefix("left4me-supervisor: ").replace(state, "$STATE")
    print(line)


def last_line(path):
    with open(path) as f:
        lines = f.read().strip().splitlines()
    return lines[-1] if lines else ""


def build_state(host, ports):
    """installation (the stand-in as srcds_run), 499 small overlays, one instance per stack size."""
    game = os.path.join(host.state, "installation")
    os.makedirs(os.path.join(game, "left4dead2/cfg"))
    os.makedirs(os.path.join(game, "left4dead2/addons"))
    shutil.copy(STANDIN, os.path.join(game, "srcds_run"))
    os.chmod(os.path.join(game, "srcds_run"), 0o755)
    for n in range(max(LAYER_COUNTS) - 1):
        layer = os.path.join(host.state, f"overlays/o{n:03}/left4dead2")
        write(os.path.join(layer, f"addons/o{n:03}/o{n:03}.vpk"), f"vpk {n}\n")
        write(os.path.join(layer, f"addons/o{n:03}/readme.txt"), f"overlay {n}\n")
        write(os.path.join(layer, f"cfg/o{n:03}.cfg"), f"// overlay {n}\n")
    write(os.path.join(host.config, "host.toml"), 'game_user = "nobody"\nport_range = [1024, 65535]\n')
    for count, port in zip(LAYER_COUNTS, ports):
        overlays = ", ".join(f'"overlays/o{n:03}"' for n in range(count - 1))
        write(
            os.path.join(host.config, f"instances/stack{count}.toml"),
            f'port = {port}\nmap = "c1m1_hotel"\noverlays = [{overlays}]\nconfig = \'hostname "Bench {count}"\'\n',
        )


def phase_env(host):
    env = dict(os.environ, LEFT4ME_CONFIG_DIR=host.config, LEFT4ME_STATE_DIR=host.state)
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(key, None)
    return env


def expect_mounts(host, merged, wanted):
    found = host.overlay_mounts(merged)
    if found != wanted:
        raise RuntimeError(f"{found} overlay mounts at {merged} in PID 1's namespace, expected {wanted}")


def bench_phases(host, env, results):
    for count in LAYER_COUNTS:
        name = f"stack{count}"
        merged = host.merged(name)
        prepare = host.in_ns([SUPERVISOR, "prepare", name])
        cleanup = host.in_ns([SUPERVISOR, "cleanup", name])

        def cleanup_untimed():
            must(cleanup, env, host.log)
            expect_mounts(host, merged, 0)

        def prepare_untimed():
            must(prepare, env, host.log)
            expect_mounts(host, merged, 1)

        cleanup_untimed()
        t = timed(prepare, env, host.log, after=lambda: (expect_mounts(host, merged, 1), cleanup_untimed()))
        show(f"prepare {name:8} ({count:3} layers)", t, host.state)
        results[("prepare", count)] = t.median
        t = timed(cleanup, env, host.log, before=prepare_untimed, after=lambda: expect_mounts(host, merged, 0))
        show(f"cleanup {name:8} ({count:3} layers)", t, host.state)
        results[("cleanup", count)] = t.median


def bench_seed(host, env):
    """The seed project's mount of the same 10-layer stack as `stack10`, by a Python helper."""
    lowers = [os.path.join(host.state, f"overlays/o{n:03}") for n in reversed(range(SEED_LAYERS - 1))]
    lowers.append(os.path.join(host.state, "installation"))
    runtime = os.path.join(host.state, "runtime/seed10")
    merged = os.path.join(runtime, "merged")
    envfile = os.path.join(host.base, "seed10.env")
    with open(envfile, "w") as f:
        f.write(
            f"LOWERDIRS={':'.join(lowers)}\nUPPER={runtime}/upper\nWORK={runtime}/work\n"
            f"MERGED={merged}\nSTATE_DIR={host.state}\n"
        )
    argv = host.in_ns([NSENTER, "--mount=/proc/1/ns/mnt", "--", PYTHON, SEED_HELPER, envfile])
    umount = [NSENTER, "--target", str(host.pid1), "--pid", "--mount", "--", UMOUNT, merged]

    def unmount_untimed():
        expect_mounts(host, merged, 1)
        must(umount, env, host.log)
        expect_mounts(host, merged, 0)

    t = timed(argv, env, host.log, after=unmount_untimed)
    show(f"seed: nsenter --mount=/proc/1/ns/mnt -- {PYTHON} seed_mount_helper.py ({SEED_LAYERS} layers)", t)
    return t.median


def bench_run_rss(host, env):
    """Peak and current RSS of `run stack10` (as the game user, like ExecStart=) once the
    stand-in has answered queries for a few seconds."""
    name = f"stack{SEED_LAYERS}"
    must(host.in_ns([SUPERVISOR, "prepare", name]), env, host.log)
    # A path socket, as systemd's own: the sd-notify crate does not reach abstract (`@`) ones.
    notify_path = os.path.join(host.base, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        notify.bind(notify_path)
        os.chmod(notify_path, 0o666)  # `run` sends as the game user
        notify.settimeout(15)
        argv = host.in_ns(
            [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", SUPERVISOR, "run", name],
            private=False,
        )
        run_env = dict(env, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(WATCHDOG_USEC))
        with open(os.path.join(host.base, "run.log"), "w") as log:
            started = time.perf_counter()
            child = subprocess.Popen(argv, env=run_env, stdout=log, stderr=subprocess.STDOUT)
        host.children.append(child)
        while b"READY=1" not in notify.recv(4096):
            pass
        ready_ms = (time.perf_counter() - started) * 1000
        pid = supervisor_pid(name)
        watchdogs = 0
        deadline = time.monotonic() + QUERY_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            notify.settimeout(left)
            try:
                watchdogs += notify.recv(4096).count(b"WATCHDOG=1")
            except TimeoutError:
                break
        status = proc_status(pid)
        os.kill(pid, signal.SIGINT)
        code = child.wait(timeout=10)
        if code != 0:
            raise RuntimeError(f"run exited {code}; see {host.base}/run.log")
    finally:
        notify.close()
    must(host.in_ns([SUPERVISOR, "cleanup", name]), env, host.log)
    hwm, rss = kib(status["VmHWM"]), kib(status["VmRSS"])
    verdict = "meets" if hwm <= RSS_TARGET_KIB else "MISSES"
    print(f"  run, {SEED_LAYERS} layers, as uid {NOBODY}: READY=1 after {ready_ms:.1f} ms; "
          f"{watchdogs} answered queries (WATCHDOG=1) in the next {QUERY_SECONDS} s")
    print(f"    VmHWM (peak RSS) {hwm:6} KiB = {hwm / 1024:.2f} MiB  ({verdict} the <= 3 MiB target)")
    print(f"    VmRSS            {rss:6} KiB = {rss / 1024:.2f} MiB")


def supervisor_pid(name):
    wanted = b"\0".join([SUPERVISOR.encode(), b"run", name.encode()]) + b"\0"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(wanted):
                        return int(entry)
            except OSError:
                continue
    raise RuntimeError(f"no process runs {SUPERVISOR} run {name}")


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":", 1) for line in f if ":" in line)


def kib(value):
    number, unit = value.split()
    assert unit == "kB", value
    return int(number)


def main():
    if os.geteuid() != 0:
        sys.exit("needs root: it mounts overlayfs and enters namespaces")
    for path in (SUPERVISOR, STANDIN):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} not found; run `cargo build --release -p left4me-supervisor -p left4me-standin` first")
    host = Host()
    try:
        ports = free_udp_ports(len(LAYER_COUNTS))
        build_state(host, ports)
        env = phase_env(host)
        print(f"median wall time of {RUNS} runs each; state dir on tmpfs ({host.state});")
        print(f"every phase started as `nsenter --target <bench PID 1> --pid --mount -- unshare --mount "
              f"--propagation private -- ...`")
        show("/bin/true (cost of spawning a process)", timed(["/bin/true"], env, host.log))
        wrapper_ms = timed(host.in_ns(["/bin/true"]), env, host.log)
        show("/bin/true through the wrapper (subtract it)", wrapper_ms)
        wrapper_ms = wrapper_ms.median
        results = {}
        bench_phases(host, env, results)
        seed_ms = bench_seed(host, env)
        ours = results[("prepare", SEED_LAYERS)]
        print(f"  seed / prepare at {SEED_LAYERS} layers: {seed_ms / ours:.1f}x as measured, "
              f"{(seed_ms - wrapper_ms) / max(ours - wrapper_ms, 1e-9):.1f}x without the wrapper (target >= 10x)")
        bench_run_rss(host, env)
    finally:
        host.close()


if __name__ == "__main__":
    main()
