"""Docker credentials: issue them per service, check them for the token endpoint, revoke them.

A service credential is `<project>.<service>.<id>` with a random password; only
its SHA-256 digest is stored (with a NATS TTL equal to its lifetime). It may
push and pull `<project>/<service>` and nothing else, and stops working as soon
as the service is deleted. The deployer has one platform credential (a secret
file in the data dir) that may pull every repository and push none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.api import secrets
from services.api.store import Store
from shared import kv, names
from shared.clock import now
from shared.models import RegistryCredential, ServiceRecord
from shared.rules import RuleViolation, check_project, check_service_name
from shared.settings import Settings

SERVICE_ACTIONS = frozenset({"push", "pull"})
DEPLOYER_ACTIONS = frozenset({"pull"})


@dataclass(frozen=True)
class IssuedCredential:
    user: str
    password: str
    expires_at: float


@dataclass(frozen=True)
class Identity:
    """Who presented a valid credential, and which repositories it may touch how."""

    subject: str
    allowed: dict[str, frozenset[str]]


async def issue(store: Store, settings: Settings, record: ServiceRecord) -> IssuedCredential:
    user = names.registry_user(record.project, record.name, secrets.new_id(6))
    password = secrets.new_secret()
    issued = now()
    cred = RegistryCredential(
        project=record.project,
        service=record.name,
        service_uid=record.uid,
        password_digest=secrets.digest(password),
        issued_at=issued,
        expires_at=issued + settings.docker_cred_ttl_s,
    )
    await kv.create(store.bus.kv.registry_creds, user, cred, ttl=float(settings.docker_cred_ttl_s))
    return IssuedCredential(user, password, cred.expires_at)


async def revoke_service(store: Store, record: ServiceRecord) -> None:
    bucket = store.bus.kv.registry_creds
    for key in await kv.keys(bucket, names.registry_creds_of_service(record.project, record.name)):
        await kv.purge(bucket, key)


_CRED_ID = re.compile(r"[0-9a-f]{12}")


def _plausible(project: str, service: str, cred_id: str) -> bool:
    try:
        check_project(project)
        check_service_name(project, service)
    except RuleViolation:
        return False
    return bool(_CRED_ID.fullmatch(cred_id))


async def authenticate(
    store: Store, settings: Settings, user: str, password: str
) -> Identity | None:
    """The identity behind HTTP Basic credentials, or None if they are not valid now."""
    if user == names.DEPLOYER_REGISTRY_USER:
        try:
            expected = settings.deployer_secret_path.read_text().strip()
        except OSError:
            return None
        if expected and secrets.constant_time_equal(password, expected):
            return Identity(subject=user, allowed={"*": DEPLOYER_ACTIONS})
        return None
    parts = names.split_registry_user(user)
    if parts is None or not _plausible(*parts):
        return None  # not a name we could have issued: no look-up (wildcards, NUL, ...)
    found = await kv.get(store.bus.kv.registry_creds, user, RegistryCredential)
    if found is None:
        return None
    cred = found.value
    if cred.expires_at <= now():
        return None
    if not secrets.constant_time_equal(secrets.digest(password), cred.password_digest):
        return None
    service = await store.get_service(cred.project, cred.service)
    if service is None or service.value.uid != cred.service_uid or service.value.deleting:
        return None
    repo = names.image_repository(cred.project, cred.service)
    return Identity(subject=user, allowed={repo: SERVICE_ACTIONS})
