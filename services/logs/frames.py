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

import struct
from typing import Literal, NamedTuple

Stream = Literal["stdout", "stderr"]

HEADER_BYTES = 8
MAX_FRAME_BYTES = 16 * 1024 * 1024
_STREAMS: dict[int, Stream] = {0: "stdout", 1: "stdout", 2: "stderr"}
_HEADER = struct.Struct(">II")  # stream byte and three zero bytes, then the size


class FrameError(ValueError):
    """The bytes are not a multiplexed Docker log stream."""


class Frame(NamedTuple):  # a tuple: made once per line, so it must be cheap
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
        if len(buf) < HEADER_BYTES:
            return []
        word, size = _HEADER.unpack_from(buf)
        if word >> 24 not in _STREAMS or word & 0xFFFFFF or size > self.max_frame:
            raise self._error(buf, 0)
        if len(buf) - HEADER_BYTES < size:
            return []  # not one whole frame yet (a long one arriving in pieces): no copy
        data = bytes(buf)  # one copy; slicing bytes is cheaper than slicing a bytearray
        out: list[Frame] = []
        append = out.append
        unpack = _HEADER.unpack_from
        streams = _STREAMS
        max_frame = self.max_frame
        pos = 0
        end = len(data)
        while end - pos >= HEADER_BYTES:
            word, size = unpack(data, pos)
            kind = streams.get(word >> 24)
            if kind is None or word & 0xFFFFFF or size > max_frame:
                raise self._error(data, pos)
            start = pos + HEADER_BYTES
            if end - start < size:
                break
            append(Frame(kind, data[start : start + size]))
            pos = start + size
        del buf[:pos]
        return out

    def _error(self, data: bytes | bytearray, pos: int) -> FrameError:
        word, size = _HEADER.unpack_from(data, pos)
        if word >> 24 not in _STREAMS or word & 0xFFFFFF:
            return FrameError(
                f"bad log frame header {bytes(data[pos : pos + HEADER_BYTES])!r}: "
                "is the container running with a TTY?"
            )
        return FrameError(f"log frame of {size} bytes exceeds {self.max_frame}")

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
