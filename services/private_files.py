"""Files only this user may read: the host's keys and every SQLite data file are created mode 0600.

The mode is given when the file is created (`os.open`), never set afterwards with chmod, so there is no moment
when another user of the machine could open it.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_private_file(path: str | Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist yet (an existing file is left as it is)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def write_private_file(path: str | Path, text: str) -> None:
    """Replace `path` with `text`, atomically: a new 0600 file is written next to it and renamed over it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)  # a leftover could have another mode; O_EXCL makes sure ours is new
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
