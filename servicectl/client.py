"""`Client`: one async method per call of the servicectl REST API, plus websocket follows.

Built on aiohttp. Every answer is decoded into the lenient types of
`servicectl.models`; every error status becomes an `ApiError` subclass carrying
the server's `{"Error": ...}` message and the status; network trouble becomes
`ConnectionFailed`. Websocket follows come back as `servicectl.feeds.Feed`.
The base URL may carry a prefix (`http://host:8080/servicectl-1/`), exactly
like clfpy's.

This module must not print, prompt or read the environment: that is the CLI's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from servicectl.errors import (
    ApiError,
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    FollowUnavailable,
    Unavailable,
    UnexpectedAnswer,
    api_error,
)
from servicectl.feeds import Feed
from servicectl.models import (
    DeleteResult,
    DockerCredentials,
    Event,
    HealthCheck,
    LogLine,
    Logs,
    NatsDetails,
    Revisions,
    ServiceDefinition,
    ServiceSummary,
    ServiceView,
    Token,
    TokenInfo,
    UpdateResult,
)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
WS_HEARTBEAT_S = 20.0
WS_PROTOCOL = "servicectl.v1"
# waits between attempts of a write while the API answers 503 or cannot be reached
WRITE_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


def error_message(status: int, reason: str, body: bytes) -> str:
    """The server's `Error` text, or a description of a non-JSON error answer."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("Error"), str):
        return str(data["Error"])
    text = body.decode(errors="replace").strip()
    if len(text) > 200:
        text = text[:200] + "..."
    return f"HTTP {status} {reason}" + (f": {text}" if text else "")


def _decode(cls: type[T], data: bytes, what: str) -> T:
    try:
        return msgspec.json.decode(data, type=cls)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise UnexpectedAnswer(f"unexpected answer to {what}: {err}") from None


class Client:
    """An API client bound to one base URL and (after `login`, or given) one session token.

    Use as `async with Client(url, token) as c: ...`; every method is a coroutine.
    """

    def __init__(
        self, api_url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    # ---------------------------------------------------------------- plumbing
    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No total timeout on the session: it would also cut long-lived websockets.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
            )
        return self._session

    def url(self, path: str) -> str:
        return self.api_url + path

    def _auth_headers(self) -> dict[str, str]:
        if not self.token:
            raise AuthenticationFailed(403, "not logged in: no session token")
        return {"X-Auth-Token": self.token}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """One HTTP call; the body of a 2xx answer, or an `ApiError`."""
        headers = {**(self._auth_headers() if auth else {}), **(headers or {})}
        url = self.url(path)
        try:
            async with self.session.request(
                method,
                url,
                json=json,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=CONNECT_TIMEOUT_S),
            ) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise api_error(
                        resp.status, error_message(resp.status, resp.reason or "", body)
                    )
                return body
        except aiohttp.ClientConnectorError as err:
            raise ConnectionFailed(
                f"cannot reach the API at {self.api_url}: {err.strerror or err}"
            ) from None
        except aiohttp.ClientError as err:
            raise ConnectionFailed(f"{method} {url} failed: {err or type(err).__name__}") from err
        except TimeoutError:
            raise ConnectionFailed(f"{method} {url}: no answer within {self.timeout:g} s") from None

    async def _write_once(self, method: str, path: str, body: Any) -> bytes:
        """A write retried while the API is unavailable or unreachable.

        Every attempt carries the same Idempotency-Key, so an attempt whose answer
        was lost is answered with what it stored (a revision), never stored twice;
        a PATCH sets absolute values, so repeating it changes nothing either."""
        key = {"Idempotency-Key": uuid.uuid4().hex}
        for delay in WRITE_RETRY_DELAYS_S:
            try:
                return await self.request(method, path, json=body, headers=key)
            except (Unavailable, ConnectionFailed):
                await asyncio.sleep(delay)
        return await self.request(method, path, json=body, headers=key)

    @staticmethod
    def _service_path(name: str) -> str:
        return f"/services/{quote(name, safe='')}"

    # ---------------------------------------------------------------- auth
    async def login(self, username: str, project: str, password: str) -> Token:
        """Get a session token (`POST /auth/tokens`); the client uses it from now on."""
        body = await self.request(
            "POST",
            "/auth/tokens",
            json={"username": username, "password": password, "project": project},
            auth=False,
        )
        token = _decode(Token, body, "login")
        self.token = token.token
        return token

    async def token_info(self) -> TokenInfo:
        """Who the current token belongs to, and until when it is valid."""
        return _decode(TokenInfo, await self.request("GET", "/auth/tokens/current"), "token info")

    async def nats_details(self) -> NatsDetails:
        """How to follow the project's events and logs on NATS with the session token."""
        return _decode(NatsDetails, await self.request("GET", "/auth/nats"), "NATS details")

    async def revoke_token(self) -> None:
        """Revoke the current session token on the server."""
        await self.request("DELETE", "/auth/tokens/current")

    # ---------------------------------------------------------------- services
    async def list_services(self) -> list[ServiceSummary]:
        return _decode(list[ServiceSummary], await self.request("GET", "/services"), "list")

    async def create_service(
        self, name: str, health_check: HealthCheck | None = None
    ) -> ServiceSummary:
        payload: dict[str, Any] = {"name": name}
        if health_check is not None:
            payload["health_check"] = msgspec.to_builtins(health_check)
        body = await self.request("POST", "/services", json=payload)
        return _decode(ServiceSummary, body, "create")

    async def service_json(self, name: str) -> dict[str, Any]:
        """The status view exactly as the server sent it (for `--json` output)."""
        body = await self.request("GET", self._service_path(name))
        return _decode(dict[str, Any], body, "status")

    async def service(self, name: str) -> ServiceView:
        """The service with its status: tasks, counts, events, target health, deployment."""
        return _decode(ServiceView, await self.request("GET", self._service_path(name)), "status")

    async def docker_credentials(self, name: str) -> DockerCredentials:
        """New registry credentials for the service's repository (`?view=docker`)."""
        body = await self.request("GET", self._service_path(name), params={"view": "docker"})
        return _decode(DockerCredentials, body, "docker credentials")

    async def update_service(self, name: str, definition: ServiceDefinition) -> UpdateResult:
        """Store `definition` as the service's next revision and deploy it."""
        body = await self._write_once(
            "PUT", self._service_path(name), msgspec.to_builtins(definition)
        )
        return _decode(UpdateResult, body, "update")

    async def patch_service(self, name: str, body: dict[str, Any]) -> ServiceView:
        """Change settings that need no new revision (`PATCH /services/<name>`).

        `body` holds what changes: `{"count": N}`, or `{"health_check": {"rel_path",
        "status_codes", "interval"}}`. The answer is the service's status view,
        as `service` returns it.
        """
        body_bytes = await self._write_once("PATCH", self._service_path(name), body)
        return _decode(ServiceView, body_bytes, "update of the service's settings")

    async def delete_service(self, name: str) -> DeleteResult:
        """Stop and remove the service; status DELETED, or DRAINING if it is still going on."""
        return _decode(
            DeleteResult, await self.request("DELETE", self._service_path(name)), "delete"
        )

    async def revisions(self, name: str) -> Revisions:
        body = await self.request("GET", self._service_path(name) + "/revisions")
        return _decode(Revisions, body, "revisions")

    async def rollback(self, name: str, revision: int | None = None) -> UpdateResult:
        """Deploy an earlier revision's definition again, as a new revision.

        Without `revision`, the server picks the serving revision (if a deploy
        failed) or the one before the current.
        """
        body = await self._write_once(
            "POST", self._service_path(name) + "/rollback", {"revision": revision}
        )
        return _decode(UpdateResult, body, "rollback")

    async def logs(self, name: str, tail: int = 20, streams: int = 1) -> Logs:
        """The last `tail` lines of each of the `streams` most recent log streams."""
        body = await self.request(
            "GET",
            self._service_path(name),
            params={"view": "logs", "tail": str(tail), "streams": str(streams)},
        )
        return _decode(Logs, body, "logs")

    # ---------------------------------------------------------------- websockets
    async def _connect(
        self,
        name: str,
        suffix: str,
        params: dict[str, str],
        cls: type[T],
        what: str,
        on_missed: Callable[[int], None] | None,
    ) -> Feed[T]:
        url = self.url(self._service_path(name) + suffix)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S + 5):
                ws = await self.session.ws_connect(
                    url,
                    params=params,
                    headers=self._auth_headers(),
                    heartbeat=WS_HEARTBEAT_S,
                    protocols=(WS_PROTOCOL,),
                )
        except aiohttp.WSServerHandshakeError as err:
            if err.status == 403:
                raise AuthenticationFailed(403, "session token refused; log in again") from None
            if err.status == 404:
                await self.service(name)  # raises NotFound when the service is missing
                raise FollowUnavailable(
                    f"this API ({self.api_url}) cannot follow {what} live (no {suffix} endpoint)"
                ) from None
            if err.status == 400:
                raise BadRequest(400, f"{what}: the API refused the request (HTTP 400)") from None
            raise ApiError(err.status, f"{what}: websocket refused (HTTP {err.status})") from None
        except aiohttp.ClientConnectorError as err:
            raise ConnectionFailed(
                f"cannot reach the API at {self.api_url}: {err.strerror or err}"
            ) from None
        except aiohttp.ClientError as err:
            raise ConnectionFailed(f"{what}: {err or type(err).__name__}") from err
        except TimeoutError:
            raise ConnectionFailed(f"{what}: the websocket did not open in time") from None
        return Feed(ws, cls, what, on_missed)

    @staticmethod
    def _follow_params(tail: int, after: str | None) -> dict[str, str]:
        return {"after": after} if after else {"tail": str(tail)}

    async def events_feed(
        self,
        name: str,
        tail: int = 0,
        on_missed: Callable[[int], None] | None = None,
        after: str | None = None,
    ) -> Feed[Event]:
        """Open `GET /services/<name>/events/follow`: the last `tail` events (or those after
        the stored position `after`), then live ones."""
        params = self._follow_params(tail, after)
        return await self._connect(
            name, "/events/follow", params, Event, f"events of {name}", on_missed
        )

    async def events_feed_json(
        self,
        name: str,
        tail: int = 0,
        on_missed: Callable[[int], None] | None = None,
        after: str | None = None,
    ) -> Feed[dict[str, Any]]:
        """Like `events_feed`, but each event as the API sent it (every field of its type)."""
        return await self._connect(
            name,
            "/events/follow",
            self._follow_params(tail, after),
            dict[str, Any],
            f"events of {name}",
            on_missed,
        )

    async def logs_feed(
        self,
        name: str,
        tail: int = 20,
        on_missed: Callable[[int], None] | None = None,
        after: str | None = None,
    ) -> Feed[LogLine]:
        """Open `GET /services/<name>/logs/follow`: the last `tail` lines (or those after the
        stored position `after`, "<seq>:<n>"), then live ones."""
        params = self._follow_params(tail, after)
        return await self._connect(
            name, "/logs/follow", params, LogLine, f"logs of {name}", on_missed
        )

    async def follow_events(self, name: str, tail: int = 0) -> AsyncIterator[Event]:
        """Events as they happen (after the last `tail`), until the feed ends."""
        feed = await self.events_feed(name, tail)
        try:
            async for event in feed:
                yield event
        finally:
            await feed.close()

    async def follow_logs(self, name: str, tail: int = 20) -> AsyncIterator[LogLine]:
        """Log lines of every task of the service as they are written, until the feed ends."""
        feed = await self.logs_feed(name, tail)
        try:
            async for line in feed:
                yield line
        finally:
            await feed.close()
