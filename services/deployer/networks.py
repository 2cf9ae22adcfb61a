"""Choosing a subnet for a project's network from the platform's pool. Pure, no I/O."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def free_subnet(pool: str, prefix: int, used: Iterable[str]) -> str | None:
    """The first subnet of size `prefix` in `pool` that overlaps none of `used`; None if full."""
    taken = []
    for text in used:
        try:
            taken.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in taken if t.version == candidate.version):
            return str(candidate)
    return None
