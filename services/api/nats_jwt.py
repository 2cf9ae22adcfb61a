"""NATS JWTs for the auth callout: read the server's request, sign a user and the answer. Pure.

The format (NATS JWT v2): header `{"typ": "JWT", "alg": "ed25519-nkey"}`, base64url
(no padding) JSON parts, an ed25519 signature of "<header>.<claims>" by the
issuer's nkey. No maintained PyPI library writes the authorization claims
(nats-jwt 0.2 lists them as unsupported), so the few fields needed are built here;
`nkeys` signs and PyNaCl verifies (nkeys cannot verify with a public key alone).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import nkeys
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from shared.natsconf import Permissions

_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


class InvalidRequest(ValueError):
    """An authorization request that is not a JWT signed by the key it names."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def encode(claims: dict[str, Any], issuer: nkeys.KeyPair) -> str:
    claims = {**claims, "iat": int(time.time()), "iss": issuer.public_key.decode(), "jti": ""}
    claims["jti"] = base64.b32encode(hashlib.sha256(_json(claims)).digest()).decode().rstrip("=")
    signing_input = _b64e(_json(_HEADER)) + "." + _b64e(_json(claims))
    return signing_input + "." + _b64e(issuer.sign(signing_input.encode()))


def _public_key_bytes(key: str) -> bytes:
    raw = base64.b32decode(key + "=" * (-len(key) % 8))
    if len(raw) < 4 or nkeys.crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise InvalidRequest("bad nkey checksum")
    return raw[1:-2]


def decode_verified(token: str) -> dict[str, Any]:
    """The claims of a JWT whose signature matches its own `iss` key.

    Who may publish authorization requests is the server's business: it lets
    only itself publish on the callout subject of the AUTH account."""
    try:
        head, body, sig = token.split(".")
        header = json.loads(_b64d(head))
        claims: dict[str, Any] = json.loads(_b64d(body))
        if header.get("alg") != _HEADER["alg"]:
            raise InvalidRequest(f"unexpected algorithm {header.get('alg')!r}")
        VerifyKey(_public_key_bytes(str(claims["iss"]))).verify(
            f"{head}.{body}".encode(), _b64d(sig)
        )
    except (ValueError, KeyError, TypeError, BadSignatureError) as err:
        raise InvalidRequest(f"not a valid authorization request: {err}") from err
    return claims


@dataclass(frozen=True)
class AuthRequest:
    user_nkey: str
    server_id: str
    client_id: int
    token: str


def parse_request(data: bytes) -> AuthRequest:
    claims = decode_verified(data.decode("ascii", "replace"))
    try:
        n = claims["nats"]
        return AuthRequest(
            user_nkey=str(n["user_nkey"]),
            server_id=str(n["server_id"]["id"]),
            client_id=int(n["client_info"]["id"]),
            token=str((n.get("connect_opts") or {}).get("auth_token") or ""),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidRequest(f"authorization request without {err}") from err


def user_jwt(
    issuer: nkeys.KeyPair, user_nkey: str, account: str, perms: Permissions, expires_at: float
) -> str:
    """A user placed in `account` with `perms`, until `expires_at` (the server then disconnects it).

    No `name` claim: with one, every configuration reload disconnects the user."""
    claims = {
        "sub": user_nkey,
        "aud": account,
        "exp": int(expires_at),
        "nats": {
            "pub": perms.as_config()["publish"],
            "sub": perms.as_config()["subscribe"],
            "subs": -1,
            "data": -1,
            "payload": -1,
            "type": "user",
            "version": 2,
        },
    }
    return encode(claims, issuer)


def response(
    issuer: nkeys.KeyPair, request: AuthRequest, *, user: str = "", error: str = ""
) -> bytes:
    """The authorization response: the user's JWT, or why they are refused."""
    nats: dict[str, Any] = {"type": "authorization_response", "version": 2}
    if user:
        nats["jwt"] = user
    if error:
        nats["error"] = error
    claims = {"sub": request.user_nkey, "aud": request.server_id, "nats": nats}
    return encode(claims, issuer).encode()
