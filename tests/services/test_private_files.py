"""Private files: created 0600 (folders 0700) whatever the umask, never made private after the fact."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.private_files import ensure_private_file, write_private_file
from services.sqlite import SqliteDatabase


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the most permissive umask: only the mode given at creation protects the file
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(folder: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in folder.iterdir()}


def test_new_files_and_folders_are_private(tmp_path: Path, open_umask: None) -> None:
    ensure_private_file(tmp_path / "data" / "a.db")
    write_private_file(tmp_path / "keys" / "keys.json", '{"k": 1}')
    assert (mode(tmp_path / "data"), mode(tmp_path / "data" / "a.db")) == (0o700, 0o600)
    assert mode(tmp_path / "keys" / "keys.json") == 0o600
    assert (tmp_path / "keys" / "keys.json").read_text() == '{"k": 1}'


def test_rewriting_replaces_a_readable_file_with_a_private_one(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "keys" / "keys.json"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)
    write_private_file(path, "new")
    assert (path.read_text(), mode(path)) == ("new", 0o600)
    assert list(modes(path.parent)) == ["keys.json"]  # no temporary file left behind
    ensure_private_file(path)  # an existing file is left as it is
    assert path.read_text() == "new"


async def test_sqlite_data_files_and_their_wal_are_private(tmp_path: Path, open_umask: None) -> None:
    db = SqliteDatabase(tmp_path / "data" / "state.db", schema="CREATE TABLE IF NOT EXISTS t (x INTEGER);")
    await db.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    assert modes(tmp_path / "data") == {"state.db": 0o600, "state.db-shm": 0o600, "state.db-wal": 0o600}
    await db.close()
