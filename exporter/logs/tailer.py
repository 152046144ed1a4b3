"""Following one log file by (device, inode, offset).

The rules (after google/mtail's filestream): when ``stat(path)`` no longer names the
open file it was rotated by rename, so the old file is drained to its end and the new
one read from the start; when the size drops below our offset, or the first bytes of
the file changed under the same inode, it was truncated (copytruncate), so we seek to
0. A partial last line is never handed out; it is re-read once complete. A line longer
than ``max_line`` is skipped (counted by the caller) without buffering it all.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

HEAD_BYTES = 64
READ_CHUNK = 256 * 1024


@dataclass
class FileState:
    """What survives a restart: which file and how far we have read it."""

    dev: int
    ino: int
    offset: int
    head: str  # hex of the first bytes (up to HEAD_BYTES), to notice truncate-and-regrow
    tail: str = ""  # hex of the bytes just before ``offset``: finds the copytruncate copy after a restart

    def to_json(self) -> dict:
        return {"dev": self.dev, "ino": self.ino, "offset": self.offset, "head": self.head, "tail": self.tail}

    @classmethod
    def from_json(cls, d: dict) -> FileState:
        return cls(int(d["dev"]), int(d["ino"]), int(d["offset"]), str(d.get("head", "")), str(d.get("tail", "")))


class TailedFile:
    """An open log file and the byte offset just past the last complete line read."""

    def __init__(self, path: str, offset: int | None = 0, max_line: int = 1024 * 1024):
        self.path = path
        self.max_line = max_line
        # O_NONBLOCK: a FIFO or device put where a log was must not block the tailer.
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            st = os.fstat(self.fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
        except OSError:
            os.close(self.fd)
            raise
        self.dev, self.ino = st.st_dev, st.st_ino
        self.size = st.st_size
        if offset is None:  # start at the end, at a line boundary
            offset = self._line_start_before(st.st_size)
        self.offset = min(offset, st.st_size)
        self.partial = b""
        self.skipping = False  # inside an over-long line
        self.head = self._read_head()
        # The last bytes before ``offset``: with ``head`` they identify the copy that
        # copytruncate left beside the file.
        self.tail = os.pread(self.fd, min(HEAD_BYTES, self.offset), self.offset - min(HEAD_BYTES, self.offset))
        self.last_growth = 0.0
        self.more = False  # the last read stopped at its budget, not at the end of the file
        self.seen_mtime = st.st_mtime_ns

    def _line_start_before(self, size: int) -> int:
        if size == 0:
            return 0
        start = max(0, size - 65536)
        data = os.pread(self.fd, size - start, start)
        idx = data.rfind(b"\n")
        if idx < 0:
            return start if start > 0 else 0
        return start + idx + 1

    def _read_head(self) -> bytes:
        try:
            return os.pread(self.fd, HEAD_BYTES, 0)
        except OSError:
            return b""

    def state(self) -> FileState:
        return FileState(self.dev, self.ino, self.offset, self.head[: min(len(self.head), self.offset)].hex(),
                         self.tail.hex())

    def truncated(self, size: int) -> bool:
        """True when the file was truncated (size below our offset, or its head rewritten)."""
        if size < self.offset + len(self.partial):
            return True
        if self.offset > 0 and self.head:
            n = min(len(self.head), self.offset)
            if os.pread(self.fd, n, 0) != self.head[:n]:
                return True
            if self.tail and os.pread(self.fd, len(self.tail), self.offset - len(self.tail)) != self.tail:
                return True
        return False

    def reset(self) -> None:
        """Start over from byte 0 (after a truncation)."""
        self.offset = 0
        self.partial = b""
        self.skipping = False
        self.head = b""
        self.tail = b""

    def read_lines(self, budget: int = 1024 * 1024) -> tuple[list[bytes], int]:
        """Complete lines available now (without newlines) and the number of over-long
        lines skipped. Reads at most about ``budget`` bytes per call."""
        out: list[bytes] = []
        skipped = 0
        pos = self.offset + len(self.partial)
        read = 0
        while read < budget:
            chunk = os.pread(self.fd, READ_CHUNK, pos)
            if not chunk:
                break
            pos += len(chunk)
            read += len(chunk)
            if len(self.head) < HEAD_BYTES and self.offset < HEAD_BYTES:
                self.head = self._read_head()
            if self.skipping:
                idx = chunk.find(b"\n")
                if idx < 0:
                    self.offset += len(chunk)
                    continue
                self.skipping = False
                self.offset += idx + 1
                chunk = chunk[idx + 1:]
            data = self.partial + chunk if self.partial else chunk
            idx = data.rfind(b"\n")
            if idx < 0:
                self.partial = data
            else:
                lines = data[:idx].split(b"\n")
                self.offset += idx + 1
                self.partial = data[idx + 1:]
                if self.max_line:
                    long = [ln for ln in lines if len(ln) > self.max_line] if len(data) > self.max_line else []
                    if long:
                        skipped += len(long)
                        lines = [ln for ln in lines if len(ln) <= self.max_line]
                out.extend(lines)
            if len(self.partial) > self.max_line:
                # Drop an over-long partial line and skip to its end.
                self.offset += len(self.partial)
                self.partial = b""
                self.skipping = True
                skipped += 1
        self.more = read >= budget
        if read:
            self.size = max(self.size, pos)
            n = min(HEAD_BYTES, self.offset)
            self.tail = os.pread(self.fd, n, self.offset - n)
        return out, skipped

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            finally:
                self.fd = -1
