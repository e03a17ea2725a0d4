from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from services.devhost import host_db
from services.devhost.entities import EntityHost
from services.devhost.index import index_functions
from services.devhost.invoker import Invoker
from services.sqlite import SqliteDatabase
from tests.services.devhost.conftest import ADMIN, FUNCTION_KEY, MASTER_KEY, Running, until


async def _counter(http: httpx.AsyncClient, key: str) -> int | None:
    r = await http.get(f"/api/count/{key}")
    return r.json() if r.status_code == 200 else None


async def test_the_real_durable_client_signals_and_reads_entities(running: Running) -> None:
    async with running.client() as http:
        assert (await http.get("/api/count/a")).status_code == 404  # read_entity_state: not there yet
        results = await asyncio.gather(*[http.post("/api/count/a", json=i) for i in range(1, 51)],
                                       *[http.post("/api/count/b", json=2) for _ in range(20)])
        assert {r.status_code for r in results} == {202}

        async def settled() -> bool:
            return await _counter(http, "a") == sum(range(1, 51)) and await _counter(http, "b") == 40

        await until(settled)
        status = (await http.get("/admin/status", headers=ADMIN)).json()
        rows = {(e["name"], e["key"]): e for e in status["entities"]}
        assert rows[("counter", "a")]["operations"] == 50 and rows[("counter", "a")]["pending"] == 0


async def test_a_failing_operation_keeps_state_and_is_reported(running: Running) -> None:
    async with running.client() as http:
        await http.post("/api/count/c", json=5)
        await http.post("/api/count/c?op=fail", content=b"null")
        await http.post("/api/count/c", json=1)

        async def settled() -> bool:
            return await _counter(http, "c") == 6

        await until(settled)
        entity = next(e for e in (await http.get("/admin/status", headers=ADMIN)).json()["entities"] if e["key"] == "c")
        assert "always fails" in entity["last_error"]


async def test_webhooks_answer_unknown_entities_and_orchestrations_clearly(running: Running) -> None:
    base = "/runtime/webhooks/durabletask/"
    async with running.client(ADMIN) as http:
        assert (await http.post(base + "entities/nobody/k?op=x")).status_code == 404
        assert (await http.post(base + "entities/counter/k")).status_code == 400  # no op
        assert (await http.post(base + "entities/counter/k?op=add", content=b"{nope")).status_code == 400
        r = await http.post(base + "orchestrators/thing")
        assert r.status_code == 400 and "no orchestrator function named 'thing'" in r.json()["ExceptionMessage"]
        r = await http.post("/api/orchestrate")  # the real client raises the extension's message
        assert r.status_code == 501 and "no orchestrator function named 'nothing'" in r.text
        r = await http.post(base + "instances/x/rewind?reason=why")
        assert r.status_code == 501 and "rewind" in r.json()["detail"]


async def test_signals_queued_before_a_crash_are_processed_at_start(tmp_path: Path, sample_env: None) -> None:
    from tests.services.devhost.apps.sample_app import build_app

    db = SqliteDatabase(tmp_path / "host.db", schema=host_db.SCHEMA)
    # As if the host accepted three signals (202) and died before running them.
    await db.write(lambda c: host_db.enqueue(c, [("counter", "k", "add", json.dumps("3"), f"r{i}")
                                                 for i in range(3)], 0.0))
    app, _ = build_app()
    with ThreadPoolExecutor(4) as pool:
        entities = EntityHost(index_functions(app), db, Invoker(pool), batch_size=2)
        await entities.start()

        async def done() -> bool:
            return entities.idle() and await entities.read_state("Counter", "k") == "9"

        await until(done)
        assert await db.read(host_db.pending_keys) == []
        # Operations that were committed never run again: a new start finds nothing to do.
        await entities.start()
        assert entities.idle() and entities.processed == 3
    await db.close()


async def test_a_batch_that_cannot_commit_runs_again_from_the_old_state(tmp_path: Path, sample_env: None) -> None:
    from tests.services.devhost.apps.sample_app import build_app

    db = SqliteDatabase(tmp_path / "host.db", schema=host_db.SCHEMA)
    await db.write(lambda c: host_db.enqueue(c, [("counter", "k", "add", json.dumps("5"), "r1")], 0.0))
    real_commit = host_db.commit_batch
    failures = []

    def failing_once(*args: object, **kwargs: object) -> None:
        if not failures:
            failures.append(1)
            raise OSError("disk full")
        real_commit(*args, **kwargs)  # type: ignore[arg-type]

    app, _ = build_app()
    with ThreadPoolExecutor(2) as pool:
        entities = EntityHost(index_functions(app), db, Invoker(pool))
        host_db.commit_batch = failing_once  # type: ignore[assignment]
        try:
            await entities.start()

            async def done() -> bool:
                return await entities.read_state("counter", "k") is not None

            await until(done)
        finally:
            host_db.commit_batch = real_commit  # type: ignore[assignment]
        assert await entities.read_state("counter", "k") == "5"  # applied once, not 10
    await db.close()


async def test_the_webhooks_need_the_key_the_binding_gives_the_app_client(running: Running) -> None:
    from services.devhost.durable_webhooks import client_binding

    binding = json.loads(client_binding(running.host.settings))
    rpc = httpx.URL(binding["rpcBaseUrl"])
    assert f"code={MASTER_KEY}" in binding["requiredQueryStringParameters"]  # no system key set: the master key
    assert rpc.password == MASTER_KEY and binding["managementUrls"]["statusQueryGetUri"].endswith(f"code={MASTER_KEY}")
    url = "/runtime/webhooks/durabletask/entities/counter/k?op=add"
    async with running.client() as http:
        assert (await http.post(url, json=1)).status_code == 401
        assert (await http.post(url, json=1, auth=(rpc.username, "wrong"))).status_code == 401
        assert (await http.post(url, json=1, headers={"x-functions-key": FUNCTION_KEY})).status_code == 401
        assert (await http.post(url, json=1, auth=(rpc.username, MASTER_KEY))).status_code == 202
        assert (await http.post(url + f"&code={MASTER_KEY}", content=b"NaN")).status_code == 400
