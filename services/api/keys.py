"""Every typed key of the api application's state (aiohttp `web.AppKey`), in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.api.auth import Principal
from services.api.deletion import Deleter
from services.api.event_cache import EventCache
from services.api.index import ServiceIndex
from services.api.limits import ProjectLimits, Wakeups
from services.api.nats_callout import NatsCallout
from services.api.registry_client import RegistryClient
from services.api.registry_tokens import TokenSigner
from services.api.store import Store
from services.api.token_cache import TokenCache
from services.api.users import UserDirectory
from shared.bus import Bus
from shared.models import ServiceRecord
from shared.settings import Settings

ViewHandler = Callable[[web.Request, Principal, ServiceRecord], Awaitable[web.StreamResponse]]

SETTINGS = web.AppKey("settings", Settings)
STOPPING = web.AppKey("stopping", asyncio.Event)  # set when the process is asked to stop
BUS = web.AppKey("bus", Bus)
INDEX = web.AppKey("index", ServiceIndex)
EVENTS = web.AppKey("events", EventCache)
TOKENS = web.AppKey("tokens", TokenCache)
STORE = web.AppKey("store", Store)
USERS = web.AppKey("users", UserDirectory)
DELETER = web.AppKey("deleter", Deleter)
SIGNER = web.AppKey("registry_signer", TokenSigner)
REGISTRY = web.AppKey("registry_client", RegistryClient)
VIEWS = web.AppKey("views", dict[str, ViewHandler])
# encoded GET /services answers, by (project, index version): rebuilt after any change
LISTINGS = web.AppKey("listings", dict[tuple[str, int], bytes])
SOCKETS = web.AppKey("log_sockets", set[web.WebSocketResponse])
LIMITS = web.AppKey("limits", ProjectLimits)
WAKEUPS = web.AppKey("wakeups", Wakeups)
CALLOUT = web.AppKey("nats_callout", NatsCallout)
