"""What import-linter cannot see: services reach NATS only through the bus adapter's methods.

`make lint` checks with import-linter that only `shared.bus`, `shared.kv` and
`shared.streams` import nats; this test checks that no service uses the raw
nats-py connection or JetStream context the `Bus` holds for those modules.
"""

from __future__ import annotations

import re
from pathlib import Path

from shared.runner import redact

ROOT = Path(__file__).resolve().parents[2]
RAW = re.compile(r"\.(nc|js)\b(?!on)")


def test_services_use_only_the_bus_methods() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "services").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if RAW.search(line)
    ]
    assert offenders == []


def test_the_check_finds_raw_use() -> None:
    assert RAW.search("await self.bus.nc.subscribe(x)")
    assert RAW.search("await bus.js.publish(s, b)")
    assert not RAW.search("import json") and not RAW.search("x.json()")


def test_log_lines_never_carry_tokens_or_credentials() -> None:
    token = "sct_" + "A1b2-_" * 7 + "x"
    text = redact(f"protocols ['servicectl.token.{token}'] don't overlap; Basic dXNlcjpwYXNz")
    assert token not in text and "dXNlcjpwYXNz" not in text
    assert "servicectl.token.sct_…(redacted)" in text
    assert redact("nothing secret here: 200 OK") == "nothing secret here: 200 OK"
