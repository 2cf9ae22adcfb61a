"""Where the CLI keeps its login (API URL and session token), and reading and writing it.

The file is `$XDG_CONFIG_HOME/servicectl/config.json` (or
`~/.config/servicectl/config.json`), written atomically with mode 0600 in a
0700 directory because it holds a session token. The location is computed
from an environment mapping handed in by the CLI; this module never reads
`os.environ` itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

DEFAULT_API = "http://127.0.0.1:8080"
FILE_MODE = 0o600
DIR_MODE = 0o700


class ConfigError(Exception):
    """The config file cannot be read or written; the message is meant for the user."""


class Login(msgspec.Struct, frozen=True, kw_only=True):
    """What `servicectl login` stores."""

    api: str
    token: str
    username: str = ""
    project: str = ""
    expires_at: str = ""


def config_path(env: Mapping[str, str]) -> Path:
    """`$XDG_CONFIG_HOME/servicectl/config.json`; a relative XDG_CONFIG_HOME is ignored (XDG)."""
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        base = Path(xdg)
    else:
        home = env.get("HOME", "")
        base = (Path(home) if home else Path.home()) / ".config"
    return base / "servicectl" / "config.json"


def default_api(env: Mapping[str, str]) -> str:
    return env.get("SERVICECTL_API", "") or DEFAULT_API


def load(path: Path) -> Login | None:
    """The stored login, or None if there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        return msgspec.json.decode(data, type=Login)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ConfigError(f"{path} is damaged ({err}); remove it and log in again") from None


def save(path: Path, login: Login) -> None:
    """Write atomically: a private temporary file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, msgspec.json.format(msgspec.json.encode(login)) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {err.strerror}") from None


def remove(path: Path) -> bool:
    """Delete the stored login; False if there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as err:
        raise ConfigError(f"cannot remove {path}: {err.strerror}") from None
    return True
