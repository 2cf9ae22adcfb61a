"""What the DNS responder answers, from the routes the gateway wrote. Pure.

- `SRV <project>-<service>.svc.servicectl.`: one record per live task
  (`localhost.`, its port); a service with a route but no live task points at
  Caddy's 503 fallback server, an unknown one at the 404 fallback server.
- `A localhost.`: 127.0.0.1 (Caddy's dialer cannot read `localhost.` from
  /etc/hosts), `AAAA localhost.`: none.
- anything else: NXDOMAIN.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.gateway.dns import wire
from shared import names


@dataclass(frozen=True)
class Table:
    routes: Mapping[str, Sequence[str]]  # DNS label -> ["127.0.0.1:port", ...]
    notfound_port: int
    unavailable_port: int

    def targets(self, label: str) -> list[tuple[str, int]]:
        upstreams = self.routes.get(label)
        if upstreams is None:
            return [(names.DNS_TARGET, self.notfound_port)]
        ports = [int(u.rsplit(":", 1)[1]) for u in upstreams]
        if not ports:
            return [(names.DNS_TARGET, self.unavailable_port)]
        return [(names.DNS_TARGET, port) for port in ports]

    def answer(self, query: wire.Query) -> bytes:
        if query.qclass != wire.CLASS_IN:
            return wire.empty_answer(query, wire.RCODE_NOTIMP)
        if query.name == names.DNS_TARGET:
            if query.qtype == wire.TYPE_A:
                return wire.a_answer(query, "127.0.0.1")
            return wire.empty_answer(query)
        if query.name.endswith(names.DNS_SERVICE_SUFFIX):
            label = query.name[: -len(names.DNS_SERVICE_SUFFIX)]
            if query.qtype == wire.TYPE_SRV and label and "." not in label:
                return wire.srv_answer(query, self.targets(label))
            return wire.empty_answer(query)
        return wire.empty_answer(query, wire.RCODE_NXDOMAIN)


def routes_from_json(text: str) -> dict[str, list[str]]:
    """The routes file: `{"routes": {"<label>": ["127.0.0.1:port", ...]}}`."""
    data = json.loads(text)
    routes = data.get("routes", {}) if isinstance(data, dict) else {}
    return {
        str(label): [str(u) for u in ups if isinstance(u, str) and ":" in u]
        for label, ups in routes.items()
        if isinstance(ups, list)
    }


def routes_to_json(routes: Mapping[str, Sequence[str]]) -> str:
    return json.dumps({"routes": {k: list(v) for k, v in sorted(routes.items())}}, indent=1)
