"""One owner per data folder: the local host, or `aos run`, never both.

Both write the same SQLite files and keep live agents in memory, so a second process on a folder the host is
using would put the host's agents to sleep under it and leave it reading stale context. Whoever opens the
folder first holds an advisory lock on `<data>/owner.lock` until it exits (the kernel frees it even after
`kill -9`); the next one is refused with who holds it and what to do instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aos_core.errors import ConfigError

LOCK_FILE = "owner.lock"


class DataFolderInUse(ConfigError):
    """Another process (a running host, or `aos run`) owns the data folder."""


@contextmanager
def own_data_folder(folder: Path, owner: str) -> Iterator[None]:
    """Hold `folder` for this process while the block runs; DataFolderInUse if another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks, nothing is checked
        yield
        return
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as the host makes it
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataFolderInUse(_refusal(folder, path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "owner": owner}).encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _refusal(folder: Path, path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        who = f"{holder['owner']} (pid {holder['pid']})"
    except (OSError, ValueError, KeyError, TypeError):
        who = "another process"
    return (f"the data folder {folder} is in use by {who}. Send events to a running host with `aos send` "
            f"(or its HTTP API), stop it first, or give this command another folder with --data.")
