"""Password hashing (scrypt) and opaque secrets. Pure CPU work, no I/O.

User passwords are low-entropy, so they get a slow, salted hash. Tokens and
registry passwords are 256-bit random secrets, so a SHA-256 digest is enough
to store them without keeping the secret itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
_DKLEN = 32
TOKEN_PREFIX = "sct_"
TOKEN_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, dk = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(dk)
        got = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def new_secret() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_id(nbytes: int = 6) -> str:
    return secrets.token_hex(nbytes)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_token(text: str) -> bool:
    """Cheap shape check before any lookup: prefix and url-safe base64 body."""
    if not text.startswith(TOKEN_PREFIX) or len(text) != len(TOKEN_PREFIX) + 43:
        return False
    body = text[len(TOKEN_PREFIX) :]
    return all(c.isascii() and (c.isalnum() or c in "-_") for c in body)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
