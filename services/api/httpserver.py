"""The api's HTTP server: aiohttp's, with its own protocol errors answered in the API's JSON.

aiohttp answers requests its parser rejects (a URL or header over 8 KB, a bad
method, conflicting Content-Length and Transfer-Encoding) itself, as plain
text, before any handler or middleware runs; clfpy then fails decoding it.
aiohttp has no hook for that answer, so this module gives the app's server a
request handler whose `handle_error` answers `{"Error": ...}`: the one place
that depends on aiohttp's server internals (`Server._loop`, `Server._kwargs`,
`RequestHandler.handle_error`), checked by a test of each such error.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

_encode = msgspec.json.Encoder().encode


def _explain(status: int, message: str | None) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if status >= 500 or not message:
        return f"{status} {phrase}: the request could not be handled"
    detail = " ".join(str(message).split())[:300]
    return f"{status} {phrase}: the request is malformed ({detail}); fix it and send it again"


class _JsonErrors(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs; may raise if sent
        resp = web.Response(
            status=status,
            body=_encode({"Error": _explain(status, message)}),
            content_type="application/json",
        )
        resp.force_close()
        del plain
        return resp


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


def use_json_errors(runner: web.AppRunner) -> None:
    """After `runner.setup()`: the server's protocol errors are answered as JSON."""
    server = runner.server
    if server is not None:
        server.__class__ = _JsonErrorServer
