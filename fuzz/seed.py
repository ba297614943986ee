#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/ (run once; `make fuzz` grows the corpus from them).

spec_catalog: host.toml, blueprint, instance and overlay texts joined by NUL bytes, taken from
the generator's fixture cases and examples/. a2s_reply: datagrams, each preceded by its length
(u16 little endian): the Valve developer wiki's example replies, whole and split. rcon_stream:
a read size byte, then what srcds sends (auth burst, multi-packet replies, the mirror trailer).
workshop_answer: a control byte (the calls to run, the first answer's status), then Steam Web
API answer bodies separated by NUL bytes: real-shaped items (ok, removed, banned, other app),
collections with nested children and cycles, and edge cases.

Usage: fuzz/seed.py [TARGET...] (no targets: every target).
"""
import hashlib
import json
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


ONLY = set(sys.argv[1:])


def put(target, data):
    if ONLY and target not in ONLY:
        return
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


def item(ident, hcontent=None, **patch):
    """A good L4D2 item's details, every field the real API sends, with `patch` applied."""
    hcontent = hcontent or 7000000000000000000 + ident
    entry = {
        "publishedfileid": str(ident), "result": 1, "creator": "76561198000000001",
        "creator_app_id": 550, "consumer_app_id": 550, "filename": "",
        "file_size": 1000 + ident,
        "file_url": "https://steamusercontent-a.akamaihd.net/ugc/%d/%X/" % (hcontent, ident),
        "hcontent_file": str(hcontent), "preview_url": "https://steamuserimages-a.akamaihd.net/ugc/1/2/",
        "hcontent_preview": "5", "title": "Campaign %d" % ident, "description": "A campaign.",
        "time_created": 1300000000, "time_updated": 1400000000 + ident, "visibility": 0,
        "banned": 0, "ban_reason": "", "subscriptions": 10, "favorited": 2,
        "lifetime_subscriptions": 12, "lifetime_favorited": 3, "views": 100,
        "tags": [{"tag": "Campaigns"}],
    }
    entry.update(patch)
    return entry


def bare(ident):
    """A good item with only the fields left4me reads."""
    return {"publishedfileid": str(ident), "consumer_app_id": 550, "file_size": 9,
            "file_url": "http://u/", "hcontent_file": str(ident)}


def files(*entries, result=1):
    return json.dumps({"response": {"result": result, "resultcount": len(entries),
                                    "publishedfiledetails": list(entries)}}).encode()


def collection(ident, *children):
    """A collection's entry; each child is (id, filetype)."""
    return {"publishedfileid": str(ident), "result": 1, "children": [
        {"publishedfileid": str(c), "sortorder": n + 1, "filetype": t}
        for n, (c, t) in enumerate(children)]}


def collections(*entries, result=1):
    return json.dumps({"response": {"result": result, "resultcount": len(entries),
                                    "collectiondetails": list(entries)}}).encode()


def workshop(calls, status, *bodies):
    put("workshop_answer", bytes([calls | status << 2]) + b"\0".join(bodies))


FILES, COLLECTIONS, RESOLVE, ALL = range(4)
OK, TOO_MANY, UNAVAILABLE, NOT_FOUND = range(4)
GOOD = files(item(1), item(2), item(3), item(123))
MIXED = files(
    item(1),
    {"publishedfileid": "2", "result": 9},
    item(3, banned=1, ban_reason="Copyright"),
    item(123, consumer_app_id=440),
)
workshop(FILES, OK, GOOD)
workshop(FILES, OK, MIXED)
workshop(FILES, TOO_MANY, b"", GOOD)
workshop(FILES, UNAVAILABLE, b"<html>503</html>", MIXED)
workshop(FILES, NOT_FOUND, b"<html><body>Not Found</body></html>")
workshop(FILES, OK, files(
    item(1, file_size="1001", hcontent_file=77, banned=True),
    item(2, file_url="", file_size=0),
    item(3, file_url="ftp://x/y", hcontent_file="0"),
    item(123, file_size=4 << 30 | 1, time_updated="17", banned="maybe"),
    {"publishedfileid": 0}, {"publishedfileid": "x"}, {"publishedfileid": -1},
))
workshop(FILES, OK, files(result=2))
workshop(FILES, OK, b'{"response":{"result":1}}')
workshop(FILES, OK, b'{"response":{"result":1,"publishedfiledetails":[{"publishedfileid":"1","title":"\\u00e9\\ud83d\\ude00","file_size":1e3}]}}')
NESTED = collections(
    collection(10, (1, 0), (11, 2), (2, 0)),
    collection(20, (3, 0), (10, 2), (21, 2)),
    collection(11, (4, 0), (20, 2)),
    {"publishedfileid": "21", "result": 9},
    collection(30, (5, 0)),
)
workshop(COLLECTIONS, OK, NESTED)
workshop(COLLECTIONS, OK, collections({"publishedfileid": "10", "result": 1}, collection(20)))
workshop(COLLECTIONS, UNAVAILABLE, b"", collections(result=15))
workshop(RESOLVE, OK, NESTED, GOOD)
workshop(RESOLVE, OK, NESTED, NESTED, NESTED, MIXED)
workshop(RESOLVE, TOO_MANY, b"", NESTED, files(*(item(n) for n in range(1, 6))))
# a chain deeper than the depth cap: each level names the next collection
workshop(RESOLVE, OK, collections(collection(10, (1, 0), (11, 2)), collection(20),
                                  *(collection(n, (n - 10, 0), (n + 1, 2)) for n in range(11, 40))),
         GOOD)
# more children than one batch of ids
workshop(RESOLVE, OK, collections(collection(10, *((n, 0) for n in range(100, 260)))),
         files(*(bare(n) for n in range(100, 260))))
workshop(ALL, OK, GOOD, NESTED, NESTED, GOOD)
