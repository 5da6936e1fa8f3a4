"""Where the log pipeline's lines end up: standard output, a rotating file, syslog.

Each output writes a batch of rendered ``(level, line)`` pairs at a time, from its own
writer thread, and raises when it fails (the writer counts the lost lines).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
from typing import IO

__all__ = ["FileOutput", "Output", "StreamOutput", "SyslogOutput"]


class Output(logging.Handler):
    """Where lines end up. Subclasses write a batch of ``(level, line)`` pairs."""

    label = "output"

    def write_batch(self, lines: list[tuple[int, str]]) -> None:
        """Write the lines; raise on failure (the writer counts every line as lost)."""
        raise NotImplementedError

    def flush_batch(self) -> None:
        """Flush after a batch (called by the writer thread; failures raise)."""
        super().flush()

    def flush(self) -> None:
        """Deferred: the writer thread flushes once per batch."""

    _closed = False

    def close(self) -> None:
        """Flush and close once; a failure is the writer's to count, not raised."""
        # logging.shutdown() closes every handler ever made at exit: once is enough.
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # a full disk at exit: counted by the writer
            self.flush_batch()
        with contextlib.suppress(OSError):  # closing a file flushes its buffer
            super().close()


class StreamOutput(Output, logging.StreamHandler):  # type: ignore[type-arg]
    """Standard output, or the stream given to ``configure_logging()``."""

    label = "stdout"

    def write_batch(self, lines: list[tuple[int, str]]) -> None:
        """One write for the whole batch."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self.stream.write("".join([f"{line}\n" for _, line in lines]))

    def flush_batch(self) -> None:
        """Flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            self.stream.flush()


class FileOutput(Output, logging.handlers.RotatingFileHandler):
    """A size-rotated file written a batch at a time.

    The stdlib's ``RotatingFileHandler`` checks the file's type and seeks to its end for
    every record (four system calls, and a flush of the buffer): here that happens once
    per batch, and the size is counted as lines are added. Rotation still happens
    before the line that would reach ``maxBytes``; a lone line longer than that is
    written to a fresh file rather than rotating an empty one.
    """

    label = "file"

    def _opened(self) -> IO[str]:
        if self.stream is None:
            self.stream = self._open()
        return self.stream

    def write_batch(self, lines: list[tuple[int, str]]) -> None:
        """Write the lines, rotating between them where the size limit falls."""
        with self.lock:  # type: ignore[union-attr]
            self._write_lines([f"{line}\n" for _, line in lines])

    def flush_batch(self) -> None:
        """Flush the file, if it is open."""
        with self.lock:  # type: ignore[union-attr]
            if self.stream is not None:
                self.stream.flush()

    def _write_lines(self, lines: list[str]) -> None:
        stream = self._opened()
        name = self.baseFilename
        # bpo-45401: never rotate what is not a regular file (/dev/stdout, a FIFO).
        if self.maxBytes <= 0 or (os.path.exists(name) and not os.path.isfile(name)):
            stream.write("".join(lines))
            return
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        chunk: list[str] = []
        for line in lines:
            length = len(line) if line.isascii() else len(line.encode("utf-8"))
            if size and size + length >= self.maxBytes:
                stream.write("".join(chunk))
                chunk = []
                self.doRollover()
                stream = self._opened()  # a delayed handler leaves the new file unopened
                size = 0
            chunk.append(line)
            size += length
        stream.write("".join(chunk))


class SyslogOutput(Output, logging.handlers.SysLogHandler):
    """Syslog over a socket path or UDP; one datagram per line."""

    label = "syslog"
    _failures = 0

    def write_batch(self, lines: list[tuple[int, str]]) -> None:
        """Send each line with its level's priority; raise if any failed."""
        self._failures = 0
        for level, line in lines:
            record = logging.LogRecord("", level, "", 0, line, None, None)
            self.emit(record)  # calls handleError() on failure
        if self._failures:
            raise OSError(f"{self._failures} of {len(lines)} syslog messages failed")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib name
        """Count the failure; :meth:`write_batch` reports it."""
        self._failures += 1

    def format(self, record: logging.LogRecord) -> str:
        """The line was rendered when it was queued."""
        return str(record.msg)

    def flush_batch(self) -> None:
        """Nothing is buffered."""
