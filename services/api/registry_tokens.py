"""Docker registry bearer tokens: scopes, grants and signed JWTs. No I/O but reading the key.

Implements the token format the registry (CNCF distribution 2.8) accepts: ES256,
a `kid` header holding the libtrust fingerprint of the signing key, integer
times, a single-string `aud`, and an `access` list. See
../shared/notes/registry-token-auth.md for what was measured.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

from shared import names

TOKEN_LIFETIME_S = 300


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    def render(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scopes(raw: Iterable[str]) -> list[Scope]:
    """`repository:<name>:<a,b>` items (several may share one parameter, space-separated)."""
    out: list[Scope] = []
    for item in raw:
        for part in item.split(" "):
            if not part:
                continue
            kind, _, rest = part.partition(":")
            name, _, actions = rest.rpartition(":")
            if not kind or not name:
                continue
            out.append(Scope(kind, name, frozenset(a for a in actions.split(",") if a)))
    return out


def grant(requested: Iterable[Scope], allowed: Mapping[str, frozenset[str]]) -> list[Scope]:
    """The intersection of what is asked and what the credential may do, per repository."""
    granted: list[Scope] = []
    for scope in requested:
        if scope.type != "repository":
            continue
        may = allowed.get(scope.name, allowed.get("*", frozenset()))
        actions = frozenset(a for a in scope.actions if a in may)
        if actions:
            granted.append(Scope(scope.type, scope.name, actions))
    return granted


def libtrust_kid(key: EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


class TokenSigner:
    def __init__(self, key: EllipticCurvePrivateKey) -> None:
        self.key = key
        self.kid = libtrust_kid(key)

    @classmethod
    def from_file(cls, path: Path) -> TokenSigner:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an EC private key")
        return cls(key)

    def sign(self, subject: str, scopes: Iterable[Scope], now: int) -> str:
        claims = {
            "iss": names.REGISTRY_ISSUER,
            "sub": subject,
            "aud": names.REGISTRY_SERVICE,
            "iat": now,
            "nbf": now - 5,
            "exp": now + TOKEN_LIFETIME_S,
            "jti": secrets.token_hex(12),
            "access": [s.render() for s in scopes],
        }
        token: str = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})
        return token
