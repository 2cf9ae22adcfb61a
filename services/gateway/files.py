"""Write HAProxy's files (configuration, map, error page): each replaced atomically.

HAProxy reads them only when it starts or reloads; a reader never sees half a
file. Mode 0600: they name the control sockets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def write(files: Mapping[Path, str]) -> None:
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
