"""Is a MongoDB-wire server ready? A real round trip: OP_MSG {ping: 1}, with the standard library only (the
services script runs before any virtual environment exists). Usage: mongo_ping.py HOST PORT; exit 0 when the
reply says ok: 1.0."""

import socket
import struct
import sys


def bson_doc(items):
    body = b""
    for k, v in items:
        if isinstance(v, int):
            body += b"\x10" + k.encode() + b"\x00" + struct.pack("<i", v)
        else:
            s = v.encode() + b"\x00"
            body += b"\x02" + k.encode() + b"\x00" + struct.pack("<i", len(s)) + s
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


doc = bson_doc([("ping", 1), ("$db", "admin")])
payload = struct.pack("<I", 0) + b"\x00" + doc
msg = struct.pack("<iiii", 16 + len(payload), 1, 0, 2013) + payload
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
    s.sendall(msg)
    hdr = b""
    while len(hdr) < 16:
        chunk = s.recv(16 - len(hdr))
        if not chunk:
            sys.exit(1)
        hdr += chunk
    length, _, _, opcode = struct.unpack("<iiii", hdr)
    rest = b""
    while len(rest) < length - 16:
        chunk = s.recv(length - 16 - len(rest))
        if not chunk:
            sys.exit(1)
        rest += chunk
# the reply must be an OP_MSG whose body says ok: 1.0
ok = opcode == 2013 and (b"\x01ok\x00" + struct.pack("<d", 1.0)) in rest
sys.exit(0 if ok else 1)
