"""Caddy admin API adapter: load a configuration, read it back, read upstream load.

The only module that talks to Caddy. Connection failures and error answers
become `CaddyUnavailable`.
"""

from __future__ import annotations

from typing import Any

import aiohttp


class CaddyUnavailable(Exception):
    """Caddy's admin API did not answer or refused the request."""


class CaddyAdmin:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                json=body,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise CaddyUnavailable(f"{method} {path}: {resp.status} {text.strip()}")
                if not text.strip():
                    return None
                return await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            raise CaddyUnavailable(f"{method} {path}: {type(err).__name__}: {err}") from err

    async def load(self, config: dict[str, Any]) -> None:
        await self._call("POST", "/load", config)

    async def config(self) -> Any:
        return await self._call("GET", "/config/")

    async def upstream_requests(self) -> dict[str, int]:
        """In-flight requests per upstream address (addresses still referenced by Caddy)."""
        found = await self._call("GET", "/reverse_proxy/upstreams")
        out: dict[str, int] = {}
        for item in found or []:
            out[str(item.get("address", ""))] = int(item.get("num_requests", 0))
        return out
