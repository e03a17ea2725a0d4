"""How the `aos` command talks to people and scripts: JSON, tables, one-line errors, progress on stderr."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import IO, Any

import click


class CliError(click.ClickException):
    """An expected failure: `aos: <message>` on one line of stderr and an exit code, never a traceback.

    Exit codes: 1 the host or a remote service said no, 2 bad input, 3 no host to talk to.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        # One line even for a multi-line message (a validation error, say), so scripts can log it as is.
        click.echo(f"aos: {' '.join(self.format_message().split())}", err=True)


@contextmanager
def local_errors(exit_code: int = 2) -> Iterator[None]:
    """Commands that work on local files and config: an AOSError or ValueError is bad input, one line."""
    from aos_core.errors import AOSError

    try:
        yield
    except (AOSError, ValueError) as exc:
        raise CliError(str(exc), exit_code) from None


def echo_json(value: Any, *, indent: int | None = None) -> None:
    click.echo(json.dumps(value, indent=indent, default=str))


def compact(value: Any) -> str:
    """A value inside a line of human output: text as is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[str(h) for h in headers]] + [[compact(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join([c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]))


def fields(record: dict[str, Any], names: Sequence[str] | None = None) -> None:
    """`name: value` lines, aligned, for one record (all its keys, or `names` in that order)."""
    keys = [n for n in (names or list(record)) if n in record]
    width = max((len(k) for k in keys), default=0) + 1
    for key in keys:
        click.echo(f"{key + ':':<{width}} {compact(record[key])}")


class Progress:
    """A spinner line on stderr while something long runs (a blocking call or a polling loop).

    Drawn from a thread so it also turns while the main thread blocks; silent unless stderr is a terminal,
    so scripts and logs see only the final output.
    """

    FRAMES = "|/-\\"

    def __init__(self, label: str, *, stream: IO[str] | None = None) -> None:
        self.label = label
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    @property
    def enabled(self) -> bool:
        isatty = getattr(self._stream, "isatty", None)
        return bool(isatty and isatty())

    def update(self, label: str) -> None:
        self.label = label

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.enabled:
            self._thread = threading.Thread(target=self._spin, name="aos-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._stream.write("\r\033[K")  # clear the spinner line so the result starts clean
            self._stream.flush()

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(0.1):
            elapsed = time.monotonic() - self._started
            self._stream.write(f"\r\033[K{self.FRAMES[frame % 4]} {self.label} ({elapsed:.0f} s)")
            self._stream.flush()
            frame += 1
