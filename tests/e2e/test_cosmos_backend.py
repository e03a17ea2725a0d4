"""`aos serve` with AOS_STORAGE__BACKEND=cosmos on the local Cosmos DB server: the tally flow across a restart and
the "launch product X" business scenario, over real HTTP, with the agents' state in Cosmos DB only."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from tests.cosmosdb import CosmosServer
from tests.e2e.conftest import ROOT, HostProcess
from tests.support.scenario import check_scenario

EXAMPLE_CONFIG = json.loads((ROOT / "examples" / "config" / "aos.json").read_text())
ORDERS = json.loads((ROOT / "examples" / "events" / "01-orders.json").read_text())


def cosmos_settings(cosmosdb: CosmosServer) -> dict[str, str]:
    """Settings that select Cosmos DB for state, with a database of the test's own."""
    return {"AOS_STORAGE__BACKEND": "cosmos", "CosmosDBConnection": cosmosdb.connection_string,
            "AOS_STORAGE__COSMOS_DATABASE": f"aos-{uuid.uuid4().hex[:12]}"}


async def cosmos_contexts(cosmosdb: CosmosServer, database: str, *agent_ids: str) -> dict[str, Any]:
    """The agents' states the app left in Cosmos DB, read with a store and context servers of our own."""
    from services.context import ContextMCPServer
    from services.storage.connections import resolve_cosmos_connection
    from services.storage.cosmos import CosmosStateStore

    connection = resolve_cosmos_connection("CosmosDBConnection", {"CosmosDBConnection": cosmosdb.connection_string})
    store = CosmosStateStore(connection, database=database)
    try:
        return {agent_id: dict(await ContextMCPServer(agent_id, store).load_state()) for agent_id in agent_ids}
    finally:
        await store.close()


def _post_orders(http: httpx.Client) -> dict[str, list[str]]:
    """Post the sample order events with ?wait; each agent's result status per event id."""
    r = http.post("/api/events", params={"wait": 10}, json=ORDERS)
    assert r.status_code == 200, r.text
    return {item["id"]: sorted(f"{x['agent_id']}:{x['status']}" for x in item["results"]) for item in r.json()["items"]}


def test_tally_flow_on_cosmos_survives_a_restart_exactly_once(make_host: Any, cosmosdb: CosmosServer) -> None:
    settings = cosmos_settings(cosmosdb)
    host: HostProcess = make_host(settings, EXAMPLE_CONFIG)
    host.start()
    with httpx.Client(base_url=host.base, headers={"x-functions-key": host.env["AOS_DEVHOST__FUNCTION_KEY"]},
                      timeout=30) as http:
        first = _post_orders(http)
        assert first["evt-order-1"] == ["all-events:completed", "orders:completed"]
        assert http.get("/api/agents/orders/context").json()["state"]["total"] == 3
        assert http.get("/api/health", params={"ready": 1}).status_code == 200
    host.stop()

    host.start()  # a new worker: registrations and contexts come back from Cosmos DB
    with httpx.Client(base_url=host.base, headers={"x-functions-key": host.env["AOS_DEVHOST__FUNCTION_KEY"]},
                      timeout=30) as http:
        assert _post_orders(http) == first  # the same ids answer with the first results and apply nothing
        orders = http.get("/api/agents/orders/context").json()["state"]
        assert orders["total"] == 3 and orders["by_type"] == {"order.created": 2, "order.shipped": 1}
        r = http.post("/api/events", params={"wait": 10},
                      json={"id": "evt-order-4", "source": "shop/web", "type": "order.created", "data": {}})
        assert {x["agent_id"]: x["result"] for x in r.json()["results"]} == {"all-events": {"total": 4},
                                                                              "orders": {"total": 4}}
    assert not (host.data / "state.db").exists()  # state went to Cosmos DB, not to the embedded store
    stored = asyncio.run(cosmos_contexts(cosmosdb, settings["AOS_STORAGE__COSMOS_DATABASE"], "orders", "all-events"))
    assert stored["orders"] == {"total": 4, "by_type": {"order.created": 3, "order.shipped": 1}}
    assert stored["all-events"]["total"] == 4


def test_launch_product_x_on_cosmos(make_host: Any, cosmosdb: CosmosServer) -> None:
    host: HostProcess = make_host(cosmos_settings(cosmosdb), EXAMPLE_CONFIG)
    host.start()
    key = host.env["AOS_DEVHOST__FUNCTION_KEY"]
    with httpx.Client(base_url=host.base, headers={"x-functions-key": key}, timeout=30) as http:
        check_scenario(host.base, key, http)
    assert not (host.data / "state.db").exists()
