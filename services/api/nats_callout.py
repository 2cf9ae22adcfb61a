"""NATS auth callout: end users connect to NATS with their session token.

nats-server asks (subject `$SYS.REQ.USER.AUTH`, account AUTH) about every
connection that is not one of the platform's own identities; the answer is a
user JWT, signed with the platform's issuer key, that places the user in their
project's account with `shared.natsconf.user_permissions` and expires with
the token, or a refusal. Before answering, the session's two pull consumers
(its project's events and logs, named by the session id) are made in the
platform's account; a JetStream error never fails the authorization (during
a configuration reload JetStream answers 503 for a moment).

Revocation: every authorized connection is remembered (server id, client
id) under its token's digest; when a token is revoked (the tokens bucket
changes, see `TokenCache`) its connections are kicked through the system
account. The token is gone before the kick, so the client's reconnect is
refused. Connections made before this process started are kicked once at
start (they reconnect and are authorized again, so they are known).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict

import nkeys

from services.api import nats_jwt, secrets
from services.api.store import Store
from shared import natsconf, natsserver
from shared.bus import Bus, BusError, ControlConnection
from shared.clock import now
from shared.settings import Settings

log = logging.getLogger(__name__)

AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
CONSUMER_INACTIVE_S = 3600.0


def kick_subject(server_id: str) -> str:
    return f"$SYS.REQ.SERVER.{server_id}.KICK"


def connz_subject(account: str) -> str:
    return f"$SYS.REQ.ACCOUNT.{account}.CONNZ"


class NatsCallout:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        store: Store,
        callout: ControlConnection,
        system: ControlConnection,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.store = store
        self.callout = callout
        self.system = system
        self.issuer = nkeys.from_seed(settings.nats_issuer_seed_path.read_text().strip().encode())
        self.sessions: dict[str, set[tuple[str, int]]] = defaultdict(set)
        self._consumers: set[str] = set()

    async def start(self) -> None:
        await self.callout.serve(AUTH_SUBJECT, self.authorize)
        await self.kick_all_users()

    # ------------------------------------------------------------ authorization
    async def authorize(self, data: bytes) -> bytes | None:
        try:
            request = nats_jwt.parse_request(data)
        except nats_jwt.InvalidRequest as err:
            log.warning("ignoring an authorization request: %s", err)
            return None  # the server refuses the connection when no answer comes
        refusal, answer = await self._decide(request)
        if refusal:
            return nats_jwt.response(self.issuer, request, error=refusal)
        return answer

    async def _decide(self, request: nats_jwt.AuthRequest) -> tuple[str, bytes]:
        token = request.token
        if not token:
            return "a session token is required (connect with token=<session token>)", b""
        if not secrets.looks_like_token(token):
            return "malformed session token", b""
        digest = secrets.digest(token)
        try:
            record = await self.store.get_token(digest)
        except BusError:
            return "cannot check the session token right now; try again", b""
        if record is None or record.expires_at <= now():
            return "unknown, expired or revoked session token", b""
        if record.project not in natsserver.projects(self.settings):
            return f"project {record.project} has no NATS account yet", b""
        await self._ensure_consumers(record.project, token)
        perms = natsconf.user_permissions(record.project, token)
        account = natsconf.project_account(record.project)
        user = nats_jwt.user_jwt(self.issuer, request.user_nkey, account, perms, record.expires_at)
        self.sessions[digest].add((request.server_id, request.client_id))
        return "", nats_jwt.response(self.issuer, request, user=user)

    async def _ensure_consumers(self, project: str, token: str) -> None:
        sid = natsconf.session_id(token)
        if sid in self._consumers:
            return
        try:
            for stream, subject in natsconf.session_consumer_filters(project).items():
                await self.bus.ensure_session_consumer(stream, sid, subject, CONSUMER_INACTIVE_S)
            self._consumers.add(sid)
        except BusError as err:
            # authorize anyway: the session's history reads fail until it connects again
            log.warning("session consumers of project %s not made: %s", project, err)

    # ------------------------------------------------------------ revocation
    async def revoked(self, digest: str) -> None:
        """The token with this digest changed: if it is gone, end its connections."""
        if digest not in self.sessions:
            return
        try:
            if await self.store.get_token(digest) is not None:
                return
        except BusError:
            pass  # cannot tell: kick (a valid token's client is authorized again)
        for server_id, cid in self.sessions.pop(digest, set()):
            await self._kick(server_id, cid)

    async def _kick(self, server_id: str, cid: int) -> None:
        body = json.dumps({"cid": cid}).encode()
        try:
            answer = json.loads(await self.system.request(kick_subject(server_id), body))
        except (BusError, ValueError) as err:
            log.warning("cannot end NATS connection %s of a revoked token: %s", cid, err)
            return
        if answer.get("error"):
            log.info("NATS connection %s: %s", cid, answer["error"].get("description"))

    async def kick_all_users(self) -> None:
        """End the users' connections made before this process (their tokens are unknown here)."""
        for project in natsserver.projects(self.settings):
            account = natsconf.project_account(project)
            try:
                raw = await self.system.request(connz_subject(account), b"{}", timeout=1.0)
                data = json.loads(raw).get("data") or {}
            except (BusError, ValueError) as err:
                log.debug("no connections of %s listed: %s", account, err)
                continue
            server_id = str((json.loads(raw).get("server") or {}).get("id", ""))
            for conn in data.get("connections") or []:
                if server_id and "cid" in conn:
                    await self._kick(server_id, int(conn["cid"]))
