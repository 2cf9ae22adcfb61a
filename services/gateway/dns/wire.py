"""DNS wire format: just enough of RFC 1035 and RFC 2782 to answer SRV and A. Pure."""

from __future__ import annotations

import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_SRV = 33
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_OK = 0
RCODE_FORMERR = 1
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4

_HEADER = struct.Struct("!6H")


class MalformedQuery(ValueError):
    """The datagram is not a DNS query we can parse."""


@dataclass(frozen=True)
class Query:
    id: int
    name: str  # lower-case, with the trailing dot
    qtype: int
    qclass: int
    question: bytes  # the question section as received, echoed in the answer
    recursion_desired: bool


def parse_query(data: bytes) -> Query:
    if len(data) < _HEADER.size + 5:
        raise MalformedQuery("too short")
    qid, flags, qdcount, _an, _ns, _ar = _HEADER.unpack_from(data)
    if flags & 0x8000 or qdcount != 1:
        raise MalformedQuery("not a single-question query")
    labels: list[str] = []
    off = _HEADER.size
    while True:
        if off >= len(data):
            raise MalformedQuery("name runs past the end")
        n = data[off]
        off += 1
        if n == 0:
            break
        if n & 0xC0 or off + n > len(data):
            raise MalformedQuery("compressed or truncated name in a question")
        labels.append(data[off : off + n].decode("ascii", "replace").lower())
        off += n
    if off + 4 > len(data):
        raise MalformedQuery("question runs past the end")
    qtype, qclass = struct.unpack_from("!2H", data, off)
    return Query(
        id=qid,
        name=".".join(labels) + ".",
        qtype=qtype,
        qclass=qclass,
        question=data[_HEADER.size : off + 4],
        recursion_desired=bool(flags & 0x0100),
    )


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def _header(query: Query, rcode: int, answers: int) -> bytes:
    flags = 0x8000 | 0x0400 | (0x0100 if query.recursion_desired else 0) | 0x0080 | rcode
    return _HEADER.pack(query.id, flags, 1, answers, 0, 0)


def _record(rtype: int, ttl: int, rdata: bytes) -> bytes:
    # 0xC00C: a pointer to the name in the question, which every answer repeats
    return b"\xc0\x0c" + struct.pack("!2HIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def srv_answer(query: Query, targets: list[tuple[str, int]], ttl: int = 0) -> bytes:
    records = b"".join(
        _record(TYPE_SRV, ttl, struct.pack("!3H", 10, 10, port) + encode_name(host))
        for host, port in targets
    )
    return _header(query, RCODE_OK, len(targets)) + query.question + records


def a_answer(query: Query, address: str, ttl: int = 0) -> bytes:
    octets = bytes(int(part) for part in address.split("."))
    return _header(query, RCODE_OK, 1) + query.question + _record(TYPE_A, ttl, octets)


def empty_answer(query: Query, rcode: int = RCODE_OK) -> bytes:
    return _header(query, rcode, 0) + query.question


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare error reply to an unparsable datagram, if it has at least an id."""
    if len(data) < 2:
        return None
    return _HEADER.pack(int.from_bytes(data[:2], "big"), 0x8000 | rcode, 0, 0, 0, 0)
