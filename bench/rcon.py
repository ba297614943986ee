#!/usr/bin/env python3
"""RCON benchmark (needs root: left4mectl reads root-only passwords): the wall time of
`left4mectl rcon NAME status` against the game's own reply time, measured with a raw client.
Usage: bench/rcon.py [PATH-TO-left4mectl [PATH-TO-srcds-standin]] (default:
$CARGO_TARGET_DIR/release, else target/release).

The game is the stand-in server (it answers RCON as srcds does), started on a free loopback
port from a game tree whose cfg sets the password `left4mectl create` made. Figures, each the
median (and 90th percentile) of RUNS runs:

- game: a raw Source RCON client in this script doing what one `left4mectl rcon` call does on
  the wire: TCP connect, SERVERDATA_AUTH (until the auth response), `status` plus the empty
  end marker (until the marker comes back), close. That is the game's own reply time.
- left4mectl: `left4mectl rcon NAME status` started as a process and waited for, as an operator
  or a script runs it (process start, spec loading, reading the password, the same exchange).

Target (issue 11): left4mectl at most 5 ms above the game. Everything is removed at the end."""

import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release")
CTL = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(BIN_DIR, "left4mectl"))
STANDIN = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(BIN_DIR, "srcds-standin"))
RUNS = 101
TARGET_MS = 5.0
AUTH, AUTH_RESPONSE, EXECCOMMAND, RESPONSE_VALUE = 3, 2, 2, 0


def free_port():
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            if port >= 65000:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def packet(pid, kind, body):
    payload = struct.pack("<ii", pid, kind) + body.encode() + b"\0\0"
    return struct.pack("<i", len(payload)) + payload


class Reader:
    """Whole packets out of a TCP stream (several may come in one read)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def next(self):
        while True:
            if len(self.buf) >= 4:
                (size,) = struct.unpack_from("<i", self.buf)
                if len(self.buf) >= 4 + size:
                    pid, kind = struct.unpack_from("<ii", self.buf, 4)
                    body = self.buf[12 : 4 + size - 2]
                    self.buf = self.buf[4 + size :]
                    return pid, kind, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk


def raw_status(port, password):
    """One connect + auth + `status` + close; returns the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(sock)
        sock.sendall(packet(1, AUTH, password))
        while True:
            pid, kind, _ = reader.next()
            if kind == AUTH_RESPONSE:
                if pid == -1:
                    raise RuntimeError("wrong password")
                break
        sock.sendall(packet(2, EXECCOMMAND, "status") + packet(3, RESPONSE_VALUE, ""))
        reply = b""
        while True:
            pid, kind, body = reader.next()
            if pid == 3:
                return reply.decode(errors="replace")
            if pid == 2:
                reply += body


def timed(runs, action):
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def main():
    if os.geteuid() != 0:
        sys.exit("bench/rcon.py: run as root (left4mectl reads the root-only RCON password)")
    for path in (CTL, STANDIN):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing: cargo build --release -p left4mectl -p left4me-standin")
    base = tempfile.mkdtemp(prefix="left4me-bench-rcon-", dir="/tmp")
    game = None
    try:
        port = free_port()
        env = dict(
            os.environ,
            LEFT4ME_CONFIG_DIR=os.path.join(base, "etc"),
            LEFT4ME_STATE_DIR=os.path.join(base, "state"),
            LEFT4ME_ADMIN_DIR=os.path.join(base, "admin"),
        )
        os.makedirs(os.path.join(base, "state"))
        write(os.path.join(base, "etc/host.toml"), "port_range = [1024, 65535]\n")
        subprocess.run(
            [CTL, "--no-reload", "create", "bench", "--port", str(port)],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )
        with open(os.path.join(base, "admin/rcon/bench")) as f:
            password = f.read().strip()
        tree = os.path.join(base, "game")
        write(os.path.join(tree, "left4dead2/cfg/left4me_rcon.cfg"), f'rcon_password "{password}"\n')
        write(os.path.join(tree, "left4dead2/cfg/server.cfg"), 'exec left4me_rcon\nhostname "Bench"\n')
        os.symlink(STANDIN, os.path.join(tree, "srcds_run"))
        game = subprocess.Popen(
            [os.path.join(tree, "srcds_run"), "-game", "left4dead2", "-norestart", "-nohltv",
             "-port", str(port), "+clientport", str(free_port()), "+ip", "127.0.0.1",
             "+map", "c1m1_hotel"],
            stdout=subprocess.DEVNULL,
        )
        log = os.path.join(tree, "left4dead2/standin.log")
        deadline = time.monotonic() + 10
        while True:
            text = open(log).read() if os.path.exists(log) else ""
            if "RCON listening" in text and "cfg order:" in text:
                break
            if time.monotonic() > deadline:
                sys.exit(f"the stand-in did not start:\n{text}")
            time.sleep(0.02)

        ctl = [CTL, "rcon", "bench", "status"]
        expected = raw_status(port, password)
        got = subprocess.run(ctl, env=env, check=True, capture_output=True, text=True).stdout
        if "map     : c1m1_hotel" not in got or "map     : c1m1_hotel" not in expected:
            sys.exit(f"unexpected status replies:\n{expected}\n---\n{got}")
        # Warm both paths (page cache, the binary), then measure, interleaved by block.
        for _ in range(5):
            raw_status(port, password)
            subprocess.run(ctl, env=env, check=True, stdout=subprocess.DEVNULL)
        raw = timed(RUNS, lambda: raw_status(port, password))
        cli = timed(RUNS, lambda: subprocess.run(ctl, env=env, check=True, stdout=subprocess.DEVNULL))
        # A process start on its own, for scale: what any CLI pays before its first line.
        true = timed(RUNS, lambda: subprocess.run(["/bin/true"], check=True))
        above = cli[0] - raw[0]
        print(f"rcon `status` round trip, median (p90) of {RUNS} runs on loopback:")
        print(f"  game's own reply (raw client: connect, auth, status) {raw[0]:7.2f} ms ({raw[1]:.2f})")
        print(f"  left4mectl rcon bench status (whole process)         {cli[0]:7.2f} ms ({cli[1]:.2f})")
        print(f"  for scale, starting /bin/true                        {true[0]:7.2f} ms ({true[1]:.2f})")
        verdict = "met" if above <= TARGET_MS else "MISSED"
        print(f"  left4mectl above the game: {above:.2f} ms (target <= {TARGET_MS:.0f} ms: {verdict})")
        return 0 if above <= TARGET_MS else 1
    finally:
        if game is not None:
            game.send_signal(signal.SIGTERM)
            try:
                game.wait(timeout=5)
            except subprocess.TimeoutExpired:
                game.kill()
                game.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
