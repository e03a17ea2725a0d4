"""A full disk under the local host: clear 503s that name storage while it is full, readiness says so, and
the host heals by itself once space is freed, with nothing acknowledged lost and nothing applied twice."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import HostProcess
from tests.e2e.test_exactly_once import TALLY, _batch, _context, _drained


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'}): "
                    "the disk-full test needs root and a kernel that allows tmpfs mounts")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    # Unbuffered: a buffered file would try its unwritten tail again on close and raise there.
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


async def test_a_full_disk_is_a_503_and_the_host_heals_when_space_is_freed(make_host: Any, small_disk: Path
                                                                          ) -> None:
    host: HostProcess = make_host()
    host.data = small_disk / "data"
    host.start()
    sent: list[list[dict[str, Any]]] = []
    acked: set[str] = set()
    async with host.client() as http:
        assert (await http.post("/api/agents", json=TALLY)).status_code == 201
        for n in range(3):
            sent.append(_batch("before", n * 100))
            assert (await http.post("/api/events", json=sent[-1])).status_code == 202
            acked.update(e["id"] for e in sent[-1])
        await _drained(http, sorted(acked))
        filler = _fill(small_disk)
        refusals: list[httpx.Response] = []
        for n in range(40):
            sent.append(_batch("full", n * 100))
            r = await http.post("/api/events", json=sent[-1])
            if r.status_code == 202:
                acked.update(e["id"] for e in sent[-1])
                continue
            refusals.append(r)
            if len(refusals) >= 3:
                break
        assert refusals, "the disk never filled up"
        for r in refusals:
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "storage" in r.json()["title"].lower() + r.json()["detail"].lower()
        ready = await http.get("/api/health", params={"ready": "1"})
        assert ready.status_code == 503 and "unavailable" in ready.json()["checks"]["storage"]
        assert (await http.get("/api/health")).status_code == 200  # alive, just not ready

        filler.unlink()
        for _ in range(100):  # it heals by itself: no restart
            if (await http.get("/api/health", params={"ready": "1"})).status_code == 200:
                break
            await asyncio.sleep(0.2)  # polling the host's readiness over HTTP
        else:
            raise AssertionError("the host did not become ready after space was freed")
        for batch in sent:  # the client resends whatever was not acknowledged
            if any(e["id"] not in acked for e in batch):
                r = await http.post("/api/events", json=batch)
                assert r.status_code in (200, 202), r.text
                acked.update(e["id"] for e in batch)
        ids = [e["id"] for b in sent for e in b]
        statuses = await _drained(http, ids)
        assert set(statuses.values()) == {"completed"}
        assert (await _context(http))["total"] == len(ids)
