"""Generate, once, the secrets the platform keeps in its data dir.

- the registry token signing key (EC P-256) and its self-signed certificate,
  which the registry trusts (`rootcertbundle`) and the api signs tokens with;
- the deployer's registry secret (a pull-only platform credential);
- a NATS password for each of the platform's identities, and the account nkey
  seed with which the api's auth callout signs users' NATS credentials.

Existing files are never overwritten, so keys survive restarts.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import nkeys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nacl.signing import SigningKey

from shared import names, natsconf
from shared.settings import Settings


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ensure_token_key(settings: Settings) -> None:
    key_path, cert_path = settings.token_key_path, settings.token_cert_path
    if key_path.exists() and cert_path.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.REGISTRY_ISSUER)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_deployer_secret(settings: Settings) -> None:
    path = settings.deployer_secret_path
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32).encode())


def ensure_nats_secrets(settings: Settings) -> None:
    for identity in natsconf.ALL_IDENTITIES:
        path = settings.nats_secret_path(identity)
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(32).encode())
    seed_path = settings.nats_issuer_seed_path
    if not seed_path.exists():
        _write_private(seed_path, nkeys_seed())


def nkeys_seed() -> bytes:
    """A new account nkey seed ("SA..."): ed25519, in nkeys' encoding."""
    return bytes(nkeys.encode_seed(bytes(SigningKey.generate()), nkeys.PREFIX_BYTE_ACCOUNT))


def ensure_all(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)  # secrets, the NATS store and the registry's images live here
    ensure_token_key(settings)
    ensure_deployer_secret(settings)
    ensure_nats_secrets(settings)
