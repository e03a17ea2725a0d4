"""bench/durable_floor_app.py, the floor bench/http.py measures direct messages against, on the local host: each
message is answered once its signal is queued, and its counter entity applies it once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.support.host_process import ADMIN, KEY, HostProcess


def test_the_floor_app_hands_each_message_to_its_entity_once(tmp_path: Path) -> None:
    host = HostProcess(tmp_path, {}, None, app="bench.durable_floor_app:app")
    host.start()
    try:
        with httpx.Client(base_url=host.base, headers={"x-functions-key": KEY}, timeout=30) as client:
            for n, agent in enumerate(["m1", "m2", "m1", "m1", "m2"]):
                answer = client.post(f"/api/agents/{agent}/messages", json={"id": f"msg-{n}"})
                assert answer.status_code == 202
                assert f'"id":"msg-{n}"' in answer.text  # the shape wrk's script reads
            assert client.post("/api/agents/m1/messages", json={"id": "x"}, headers={"x-functions-key": "no"}
                               ).status_code == 401
            deadline, counts = time.monotonic() + 30, {}
            while counts != {"m1": 3, "m2": 2} and time.monotonic() < deadline:
                time.sleep(0.05)  # the entities apply the queued signals after the answers
                status = client.get("/admin/status", headers=ADMIN).json()
                counts = {e["key"]: json.loads(e["state"]) for e in status["entities"] if e["name"] == "counter"}
        assert counts == {"m1": 3, "m2": 2}
    finally:
        host.stop()
