"""Docker's raw log stream cut into frames: the one parser of the 8-byte stream header.

`GET /containers/{id}/logs` of a container created without a TTY multiplexes
stdout and stderr: every frame is a header `[stream, 0, 0, 0, size (4 bytes,
big-endian)]` followed by `size` bytes, and with `timestamps=1` every frame is
one log message `<RFC3339Nano timestamp> <text>` (with its newline unless
Docker split an over-long line). A TTY container's stream is not multiplexed:
it is parsed as newline-separated stdout messages.

Pure: bytes in, frames out; it must not do I/O or know what a line number is.
Data may arrive cut anywhere, so the parser keeps what it cannot use yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stream = Literal["stdout", "stderr"]

HEADER_BYTES = 8
MAX_FRAME_BYTES = 16 * 1024 * 1024
_STREAMS: dict[int, Stream] = {0: "stdout", 1: "stdout", 2: "stderr"}


class FrameError(ValueError):
    """The bytes are not a multiplexed Docker log stream."""


@dataclass(frozen=True, slots=True)
class Frame:
    stream: Stream
    payload: bytes


class FrameParser:
    """Incremental parser: `feed` bytes as they arrive, get the frames completed so far."""

    def __init__(self, *, multiplexed: bool = True, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.multiplexed = multiplexed
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that are not part of a complete frame yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        return self._frames() if self.multiplexed else self._raw_lines()

    def flush(self) -> list[Frame]:
        """The stream ended: a raw stream's unterminated last line is a frame too.

        A multiplexed stream that ends inside a frame lost that frame (the
        connection broke); its bytes are dropped here and read again on resume.
        """
        rest = bytes(self._buf)
        self._buf.clear()
        if not self.multiplexed and rest:
            return [Frame("stdout", rest)]
        return []

    def _frames(self) -> list[Frame]:
        buf = self._buf
        out: list[Frame] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_BYTES:
            kind = buf[pos]
            if kind not in _STREAMS or buf[pos + 1] or buf[pos + 2] or buf[pos + 3]:
                raise FrameError(
                    f"bad log frame header {bytes(buf[pos : pos + HEADER_BYTES])!r}: "
                    "is the container running with a TTY?"
                )
            size = int.from_bytes(buf[pos + 4 : pos + 8], "big")
            if size > self.max_frame:
                raise FrameError(f"log frame of {size} bytes exceeds {self.max_frame}")
            if end - pos - HEADER_BYTES < size:
                break
            start = pos + HEADER_BYTES
            out.append(Frame(_STREAMS[kind], bytes(buf[start : start + size])))
            pos = start + size
        del buf[:pos]
        return out

    def _raw_lines(self) -> list[Frame]:
        buf = self._buf
        cut = buf.rfind(b"\n")
        if cut < 0:
            if len(buf) > self.max_frame:
                # no newline for far too long: hand it on as one unterminated message
                data = bytes(buf)
                buf.clear()
                return [Frame("stdout", data)]
            return []
        data = bytes(buf[: cut + 1])
        del buf[: cut + 1]
        return [Frame("stdout", line + b"\n") for line in data[:-1].split(b"\n")]
