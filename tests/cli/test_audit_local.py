"""`aos audit verify --local` through the real `aos` entry point, on a real audit file (no host running)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from aos_core import AOSConfig
from aos_core.errors import ConfigError
from services.cli.main import main
from services.governance.factory import open_audit_log


async def _write(data: Path, n: int) -> None:
    log = await open_audit_log(AOSConfig(data_dir=data))
    for i in range(n):
        await log.append("kernel", "event.accepted", f"event/{i}", {"i": i})
    await log.close()


async def test_verify_ok_then_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    await _write(data, 4)
    assert await _run_main(["audit", "verify", "--local", "--data", str(data)]) == 0
    assert "audit chain OK: 4 entries verified" in capsys.readouterr().out

    conn = sqlite3.connect(data / "audit.db")
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2")
    conn.commit()
    conn.close()
    assert await _run_main(["audit", "verify", "--local", "--data", str(data), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert (result["ok"], result["first_bad_seq"]) == (False, 2)


async def _run_main(argv: list[str]) -> int:
    import asyncio

    # main() runs its own event loop: give it a thread, as a shell would give it a process.
    return await asyncio.to_thread(main, argv)


async def test_hmac_key_comes_from_the_named_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = AOSConfig(data_dir=tmp_path, governance={"audit_hmac_secret": "AUDIT_KEY"})
    with pytest.raises(ConfigError, match="AUDIT_KEY"):
        await open_audit_log(config)
    monkeypatch.setenv("AUDIT_KEY", "s3cret")
    log = await open_audit_log(config)
    entry = await log.append("a", "b", "c")
    await log.close()
    plain = await open_audit_log(AOSConfig(data_dir=tmp_path))
    result = await plain.verify()  # without the key the keyed chain does not verify
    await plain.close()
    assert not result.ok and result.first_bad_seq == entry.seq


def test_verify_finds_the_hmac_key_the_way_the_app_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_GOVERNANCE__AUDIT_HMAC_SECRET", "audit-hmac")
    monkeypatch.setenv("AUDIT_HMAC", "s3cret")  # the upper-case spelling of the secret's name
    assert main(["audit", "verify", "--local", "--data", str(tmp_path)]) == 0
