"""No secret in any log, whatever clients sent: runs after the bad-input and auth tests.

The platform's processes log through `shared.runner` (tokens and credentials
redacted); this reads every log file of the session's stack and looks for
session tokens, the NATS identities' passwords and the deployer's registry
secret, and checks that the logs and the data dir are not world-readable.
"""

from __future__ import annotations

import asyncio
import re
import stat

import aiohttp
import requests

from shared import natsconf, natsserver
from tests.client import Api
from tests.stack import Stack

TOKEN = re.compile(r"sct_[A-Za-z0-9_-]{43}")


async def offer_token_as_only_subprotocol(stack: Stack, api: Api, service: str) -> None:
    """A valid token offered only as a websocket subprotocol (aiohttp logs unknown ones)."""
    url = f"{stack.api_url}/servicectl-1/services/{service}/events/follow"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=(f"servicectl.token.{api.token}",)) as ws,
    ):
        await ws.close()


def test_no_token_or_password_in_any_log(stack: Stack, api: Api) -> None:
    assert api.post("/services", json={"name": "quiet"}).status_code == 201
    asyncio.run(offer_token_as_only_subprotocol(stack, api, "quiet"))
    r = requests.post(
        f"{stack.api_url}/auth/tokens",
        json={"username": "nobody", "password": "x" * 12, "project": "none"},
        timeout=10,
    )
    assert r.status_code == 403
    fake = "sct_" + "Q" * 43
    requests.get(
        f"{stack.api_url}/services/x/logs/follow",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Protocol": f"servicectl.token.{fake}",
        },
        timeout=10,
    )
    secrets = [natsserver.password(stack.settings, i) for i in natsconf.ALL_IDENTITIES]
    secrets.append(stack.settings.deployer_secret_path.read_text().strip())
    logs = sorted((stack.base / "logs").glob("*.log"))
    assert logs
    api_log = (stack.base / "logs" / "api.log").read_text()
    assert "servicectl.token.sct_…(redacted)" in api_log  # logged, and cut out
    for path in logs:
        text = path.read_text(errors="replace")
        assert not TOKEN.search(text), f"a session token in {path.name}: {TOKEN.search(text)}"
        for secret in secrets:
            assert secret not in text, f"a platform secret in {path.name}"
        mode = path.stat().st_mode
        assert not mode & (stat.S_IRWXG | stat.S_IRWXO), f"{path.name} is readable by others"
    data_mode = stack.settings.data_dir.stat().st_mode
    assert not data_mode & (stat.S_IRWXG | stat.S_IRWXO), "the data dir is readable by others"
    conf_mode = stack.settings.nats_config_path.stat().st_mode
    assert not conf_mode & (stat.S_IRWXG | stat.S_IRWXO)
