"""Bad input below the JSON: split bodies, huge chunked bodies, protocol errors, odd credentials."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator

import requests

from tests.client import Api
from tests.stack import Stack


def raw(stack: Stack, data: bytes, *, pause_after: int = 0) -> tuple[int, dict[str, str], bytes]:
    """Send `data` on a fresh connection (pausing after `pause_after` bytes); the answer."""
    with socket.create_connection(("127.0.0.1", stack.ports["api"]), timeout=10) as s:
        if pause_after:
            s.sendall(data[:pause_after])
            time.sleep(0.05)
            s.sendall(data[pause_after:])
        else:
            s.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return status, headers, body


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("content-length:"):
            return len(body) >= int(line.split(":", 1)[1])
    return False


def test_a_body_that_arrives_in_two_reads_is_read_whole(stack: Stack, api: Api) -> None:
    body = json.dumps({"name": "split"}).encode()
    request = (
        b"POST /servicectl-1/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Auth-Token: {api.token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head_len = len(request) - len(body)
    status, _, answer = raw(stack, request, pause_after=head_len + len(body) // 2)
    assert status == 201, answer


def test_a_huge_chunked_body_is_too_large_not_bad(stack: Stack) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "' + b"a" * 1024
        for _ in range(100 * 1024):  # 100 MB
            yield b"a" * 1024

    r = requests.post(
        f"{stack.api_url}/auth/tokens",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413
    assert "too large" in r.json()["Error"]


def test_protocol_errors_are_answered_in_json(stack: Stack) -> None:
    cases = [
        b"GET /servicectl-1/services/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /services HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
        b"G(T /services HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]
    for request in cases:
        status, headers, body = raw(stack, request)
        assert 400 <= status < 500, (request[:40], status)
        assert headers.get("content-type", "").startswith("application/json"), headers
        message = json.loads(body)["Error"]
        assert "malformed" in message and "Error" not in message.split(":")[0], message


def test_registry_token_endpoint_refuses_malformed_user_names_with_401(stack: Stack) -> None:
    for user in ("red1.web.*", ">.>.>", "a.b.\u00e4", "p.s.\x00", "a.b", "x" * 300):
        basic = base64.b64encode(f"{user}:secret".encode()).decode()
        r = requests.get(
            f"{stack.api_url}/auth/registry",
            params={"service": "servicectl-registry"},
            headers={"Authorization": f"Basic {basic}"},
            timeout=10,
        )
        assert r.status_code == 401, (user, r.status_code, r.text)
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
