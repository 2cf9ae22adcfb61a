"""The gateway's DNS responder: wire format and answers (pure), and the real process."""

from __future__ import annotations

import socket
import struct

import pytest

from services.gateway.dns import wire
from services.gateway.dns.table import Table, routes_from_json, routes_to_json
from tests.stack import Stack


def query(name: str, qtype: int, qid: int = 0x1234) -> bytes:
    header = struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0)
    return header + wire.encode_name(name) + struct.pack("!2H", qtype, wire.CLASS_IN)


def parse_answer(data: bytes) -> tuple[int, int, list[tuple[int, bytes]]]:
    qid, flags, _qd, ancount, _ns, _ar = struct.unpack_from("!6H", data)
    off = 12
    while data[off]:
        off += data[off] + 1
    off += 5  # zero byte, qtype, qclass
    records = []
    for _ in range(ancount):
        assert data[off : off + 2] == b"\xc0\x0c"
        rtype, _cls, _ttl, rdlen = struct.unpack_from("!2HIH", data, off + 2)
        off += 12
        records.append((rtype, data[off : off + rdlen]))
        off += rdlen
    return qid, flags & 0x000F, records


TABLE = Table(
    {"demo-web": ["127.0.0.1:32768", "127.0.0.1:32769"], "demo-idle": []},
    notfound_port=8054,
    unavailable_port=8055,
)


def srv_ports(records: list[tuple[int, bytes]]) -> list[int]:
    return [struct.unpack_from("!3H", rdata)[2] for rtype, rdata in records if rtype == 33]


@pytest.mark.parametrize(
    ("name", "ports"),
    [
        ("demo-web.svc.servicectl.", [32768, 32769]),
        ("DEMO-WEB.svc.servicectl.", [32768, 32769]),
        ("demo-idle.svc.servicectl.", [8055]),
        ("demo-nope.svc.servicectl.", [8054]),
    ],
)
def test_srv_answers(name: str, ports: list[int]) -> None:
    qid, rcode, records = parse_answer(TABLE.answer(wire.parse_query(query(name, 33))))
    assert (qid, rcode) == (0x1234, 0)
    assert srv_ports(records) == ports
    assert all(rdata.endswith(wire.encode_name("localhost.")) for _, rdata in records)


def test_localhost_and_other_names() -> None:
    _, rcode, records = parse_answer(TABLE.answer(wire.parse_query(query("localhost.", 1))))
    assert rcode == 0 and records == [(1, bytes([127, 0, 0, 1]))]
    _, rcode, records = parse_answer(TABLE.answer(wire.parse_query(query("localhost.", 28))))
    assert rcode == 0 and records == []
    _, rcode, _ = parse_answer(TABLE.answer(wire.parse_query(query("example.org.", 1))))
    assert rcode == wire.RCODE_NXDOMAIN


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x12\x34" + b"\x00" * 10,
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab",
    ],
)
def test_malformed_queries(data: bytes) -> None:
    with pytest.raises(wire.MalformedQuery):
        wire.parse_query(data)


def test_routes_file_round_trip() -> None:
    routes = {"a-b": ["127.0.0.1:1"], "c-d": []}
    assert routes_from_json(routes_to_json(routes)) == routes
    assert routes_from_json('{"routes": {"x-y": "junk", "z-w": [1, "127.0.0.1:5"]}}') == {
        "z-w": ["127.0.0.1:5"]
    }


def test_responder_process_answers(stack: Stack) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(query("localhost.", 1), ("127.0.0.1", stack.ports["dns"]))
        _, rcode, records = parse_answer(s.recv(512))
        assert rcode == 0 and records == [(1, bytes([127, 0, 0, 1]))]
        s.sendto(query("nobody-here.svc.servicectl.", 33), ("127.0.0.1", stack.ports["dns"]))
        _, _, records = parse_answer(s.recv(512))
        assert srv_ports(records) == [stack.ports["notfound"]]
        s.sendto(b"\x01\x02garbage", ("127.0.0.1", stack.ports["dns"]))
        reply = s.recv(512)
        assert reply[:2] == b"\x01\x02" and reply[3] & 0x0F == wire.RCODE_FORMERR
