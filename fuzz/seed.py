#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/ (run once; `make fuzz` grows the corpus from them).

spec_catalog: host.toml, blueprint, instance and overlay texts joined by NUL bytes, taken from
the generator's fixture cases and examples/. a2s_reply: datagrams, each preceded by its length
(u16 little endian): the Valve developer wiki's example replies, whole and split. rcon_stream:
a read size byte, then what srcds sends (auth burst, multi-packet replies, the mirror trailer).
"""
import hashlib
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def read(path):
    return path.read_bytes() if path.is_file() else b""


for case in sorted((ROOT / "generator" / "tests").glob("[0-9]*-*/config")):
    host = read(case / "host.toml")
    blueprints = sorted((case / "blueprints").glob("*.toml"))
    blueprint = read(blueprints[0]) if blueprints else b""
    for instance in sorted((case / "instances").glob("*.toml")):
        put("spec_catalog", b"\0".join([host, blueprint, read(instance), b""]))
for example in sorted((ROOT / "examples").glob("*.toml")):
    put("spec_catalog", b"\0".join([b"", b"", b"port = 27015\n", example.read_bytes()]))

SINGLE = b"\xff\xff\xff\xff"
CHALLENGE = SINGLE + bytes([0x41, 0x4B, 0xA1, 0xD5, 0x22])
INFO_CSS = SINGLE + bytes.fromhex(
    "4902676d6532787320436f756e7465722d537472696b6520536f757263652023310064655f6475737400"
    "63737472696b6500436f756e7465722d537472696b653a20536f7572636500f00005100464"
    "6c0000312e302e302e323200"
)
PLAYERS = SINGLE + bytes.fromhex(
    "4402015b445d2d2d2d2d3e542e4e2e573c2d2d2d2d000e000000b49700440"
    "24b696c6c65722021212100050000006924d943"
)
RULES = SINGLE + b"E" + struct.pack("<H", 2) + b"sv_cheats\x000\x00mp_gamemode\x00coop\x00"


def framed(*datagrams):
    return b"".join(struct.pack("<H", len(d)) + d for d in datagrams)


def split(message, chunk, ident=0x1234):
    payload = SINGLE + message[4:]
    pieces = [payload[i:i + chunk] for i in range(0, len(payload), chunk)]
    return [
        b"\xfe\xff\xff\xff" + struct.pack("<IBBH", ident, len(pieces), n, 1248) + p
        for n, p in enumerate(pieces)
    ]


for message in (CHALLENGE, INFO_CSS, PLAYERS, RULES):
    put("a2s_reply", framed(message))
put("a2s_reply", framed(*split(INFO_CSS, 40)))
put("a2s_reply", framed(*reversed(split(PLAYERS, 16))))
put("a2s_reply", framed(CHALLENGE, *split(RULES, 8, 7), INFO_CSS))


def rcon(ident, kind, body):
    return struct.pack("<iii", len(body) + 10, ident, kind) + body + b"\0\0"


AUTH_BURST = rcon(1, 0, b"") + rcon(1, 2, b"")
REPLY = b"".join(rcon(2, 0, bytes([65 + i % 26]) * 4096) for i in range(3))
MIRROR = rcon(3, 0, b"") + rcon(3, 0, b"\0\1\0\0")
for chunk in (1, 7, 255):
    put("rcon_stream", bytes([chunk]) + AUTH_BURST + REPLY + MIRROR)
put("rcon_stream", bytes([16]) + rcon(-1, 2, b"") + struct.pack("<i", 4107) + b"x" * 20)
