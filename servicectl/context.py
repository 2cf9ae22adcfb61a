"""What every CLI command gets: the environment, the terminal streams, the stored login.

Built once by `servicectl.cli.main` from `os.environ` and the real streams
(tests build it with their own). Commands print through it: results on
stdout, progress and diagnostics on stderr, so `URL=$(servicectl deploy ...)`
captures only the result.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from servicectl import config
from servicectl.client import Client


class CommandError(Exception):
    """A command cannot go on; printed as `servicectl: <message>`, exit `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class UsageError(CommandError):
    """Bad input noticed before talking to the API (exit 2, like argparse's errors)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 2)


@dataclass
class Context:
    env: Mapping[str, str]
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)

    @property
    def config_file(self) -> Path:
        return config.config_path(self.env)

    def say(self, text: str = "") -> None:
        """A result: stdout."""
        print(text, file=self.stdout, flush=True)

    def progress(self, text: str = "") -> None:
        """Progress and diagnostics: stderr."""
        print(text, file=self.stderr, flush=True)

    def stored_login(self) -> config.Login | None:
        return config.load(self.config_file)

    def client(self) -> Client:
        """A client with the session token: $SERVICECTL_TOKEN, else the stored login."""
        token = self.env.get("SERVICECTL_TOKEN", "")
        stored = self.stored_login()
        if token:
            api = self.env.get("SERVICECTL_API", "") or (
                stored.api if stored else config.DEFAULT_API
            )
            return Client(api, token)
        if stored is None:
            raise CommandError("not logged in: run `servicectl login` first")
        return Client(stored.api, stored.token)

    def ask(self, prompt: str) -> str | None:
        """One line from stdin after a prompt on stderr; None at end of input."""
        self.stderr.write(prompt)
        self.stderr.flush()
        line = self.stdin.readline()
        if not line:
            self.progress()
            return None
        return line.rstrip("\r\n")
