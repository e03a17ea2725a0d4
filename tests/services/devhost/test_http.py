from __future__ import annotations

import asyncio
import uuid

from tests.services.devhost.conftest import ADMIN, FUNCTION_KEY, MASTER_KEY, Running


async def test_route_parameters_constraints_and_headers(running: Running) -> None:
    async with running.client() as http:
        r = await http.get("/api/hello/World")
        assert (r.status_code, r.text, r.headers["x-greeting"]) == (200, "hello World", "yes")
        assert (await http.get("/api/hello/w0rld")).status_code == 404  # alpha constraint
        r = await http.get("/api/items/42", headers={"x-functions-key": FUNCTION_KEY})
        assert r.json() == {"id": 42} and r.headers["content-type"].startswith("application/json")
        assert (await http.get("/api/items/new")).text == "literal wins"  # a literal beats {id:int}
        assert (await http.get("/api/files/a/b%2Fc/d.txt")).text == "a/b/c/d.txt"
        assert (await http.get("/API/Hello/x")).status_code == 200  # literals match case-insensitively


async def test_body_query_status_and_methods(running: Running) -> None:
    async with running.client() as http:
        r = await http.put("/api/echo?a=1&b=two", json={"x": [1, 2]}, headers={"x-test": "hdr"})
        assert r.status_code == 201
        assert r.json() == {"method": "PUT", "query": {"a": "1", "b": "two"}, "header": "hdr", "body": {"x": [1, 2]}}
        r = await http.get("/api/echo")
        assert r.status_code == 405 and set(r.json()["allowed"]) == {"POST", "PUT"}


async def test_auth_levels(running: Running) -> None:
    async with running.client() as http:
        assert (await http.get("/api/items/1")).status_code == 401
        assert (await http.get("/api/items/1", headers={"x-functions-key": "wrong"})).status_code == 401
        assert (await http.get("/api/items/1", params={"code": FUNCTION_KEY})).status_code == 200
        assert (await http.get("/api/items/1", params={"code": MASTER_KEY})).status_code == 200
        # admin level: the function key is not enough
        assert (await http.delete("/api/items/1", headers={"x-functions-key": FUNCTION_KEY})).status_code == 401
        assert (await http.delete("/api/items/1", headers={"x-functions-key": MASTER_KEY})).status_code == 204


async def test_bad_requests_are_4xx_and_a_raising_function_is_500(running: Running) -> None:
    async with running.client() as http:
        r = await http.get("/api/nowhere")
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert (await http.get("/elsewhere")).status_code == 404
        assert (await http.post("/api/echo", content=b"{not json")).status_code == 400
        r = await http.get("/api/boom")
        assert r.status_code == 500 and "secret internals" not in r.text  # no exception text leaks
        assert (await http.get("/api/hello/again")).status_code == 200  # and it keeps serving
    recent = running.host.invoker.recent("boom")
    assert recent[0].outcome == "Failed" and "RuntimeError" in (recent[0].error or "")


async def test_a_slow_sync_function_does_not_block_the_server(running: Running) -> None:
    async with running.client() as http:
        blocked = asyncio.create_task(http.get("/api/block"))
        assert (await http.get("/api/hello/meanwhile")).status_code == 200
        assert not blocked.done()
        assert (await http.post("/api/release")).status_code == 200
        assert (await blocked).text == "released"


async def test_root_redirects_to_admin_and_the_page_lists_functions(running: Running) -> None:
    async with running.client() as http:
        r = await http.get("/", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "/admin"
        await http.get("/api/hello/page")
        page = await http.get("/admin", headers=ADMIN)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for name in ("hello", "on_message", "beat", "Counter", "sample.events"):
            assert name in page.text
        status = (await http.get("/admin/status", headers=ADMIN)).json()
        hello = next(f for f in status["functions"] if f["name"] == "hello")
        assert hello["counts"]["Succeeded"] == 1 and hello["recent"][0]["outcome"] == "Succeeded"


async def test_each_invocation_has_its_own_version_4_uuid(running: Running) -> None:
    async with running.client() as http:
        for _ in range(20):
            assert (await http.get("/api/hello/again")).status_code == 200
    ids = [uuid.UUID(i.id) for i in running.host.invoker.recent("hello")]
    assert len(ids) == 20 and len(set(ids)) == 20 and {(i.version, i.variant) for i in ids} == {(4, uuid.RFC_4122)}
