"""The host page at `/admin`: functions with their triggers and last invocations, topics, entities, orchestrations.

Plain HTML built from the same dict `/admin/status` returns as JSON; no scripts, no build step.
"""

from __future__ import annotations

import html
import json
import time
from typing import TYPE_CHECKING, Any

from services.devhost import host_db, leases, orchestration_db
from services.devhost.durable_webhooks import describe_entities
from services.devhost.orchestration_webhooks import describe

if TYPE_CHECKING:
    from services.devhost.server import DevHost


async def _subscriptions(host: DevHost) -> list[tuple[str, str]]:
    def query(conn: Any) -> list[tuple[str, str]]:
        return [(t, n) for t, n in conn.execute("SELECT topic, name FROM bus_subscriptions ORDER BY topic, name")]

    return await host.bus.db.read(query)


async def collect(host: DevHost) -> dict[str, Any]:
    """The host's state for the page and for `/admin/status`."""
    functions = []
    for spec in host.functions:
        item: dict[str, Any] = {"name": spec.name, "trigger": spec.trigger_type, "description": spec.describe(),
                                "counts": host.invoker.counts.get(spec.name, {"Succeeded": 0, "Failed": 0}),
                                "recent": [{"id": i.id, "started": i.started.isoformat(), "duration_ms": i.duration_ms,
                                            "outcome": i.outcome, "error": i.error}
                                           for i in host.invoker.recent(spec.name)[:5]]}
        if spec.trigger_type == "httpTrigger":
            item["url"] = host.http.url(spec)
        if spec.name in host.timers.next_run:
            item["next_run"] = host.timers.next_run[spec.name].isoformat()
        functions.append(item)
    topics = []
    for topic, name in await _subscriptions(host):
        stats = await host.bus.stats(topic, name)
        dead = await host.bus.dead_letters(topic, name)
        topics.append({"topic": topic, "subscription": name, **stats,
                       "dead_letters": [{"id": d.event.id, "type": d.event.type, "reason": d.reason,
                                         "description": d.description, "delivery_count": d.delivery_count}
                                        for d in dead[-20:]]})
    entities = describe_entities(await host.db.read(host_db.list_entities))
    ttl = host.leases.ttl
    instances = await host.db.read(lambda c: leases.list_instances(c, time.time(), ttl))
    orchestrations = await host.db.read(lambda c: orchestration_db.list_instances(c, limit=200))
    return {"host": host.settings.base_url, "instance": host.leases.instance_id, "instances": instances,
            "partitions": host.leases.partitions, "functions": functions, "topics": topics, "entities": entities,
            "entity_operations_processed": host.entities.processed,
            "orchestrations": [describe(o) for o in orchestrations],
            "orchestration_episodes": host.orchestrations.episodes,
            "activities_run": host.orchestrations.activities_run}


def _cell(value: Any) -> str:
    # What a person reads: yes/no, JSON for structures (never Python's True or {'a': 1}), text as it is.
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or '<tr><td>none</td></tr>'}</tbody></table>"


def render(status: dict[str, Any]) -> str:
    functions = _table(["function", "trigger", "succeeded", "failed", "last invocations"], [
        [f["name"], f["description"] + (f" {f['url']}" if f.get("url") else ""), f["counts"]["Succeeded"],
         f["counts"]["Failed"],
         "; ".join(f"{r['started'][11:19]} {r['outcome']} {r['duration_ms']}ms" + (f" ({r['error']})" if r["error"]
                                                                                    else "") for r in f["recent"])]
        for f in status["functions"]])
    topics = _table(["topic", "subscription", "active", "scheduled", "locked", "dead-lettered", "dead letters"], [
        [t["topic"], t["subscription"], t.get("active", 0), t.get("scheduled", 0), t.get("locked", 0),
         t.get("dead_lettered", 0), "; ".join(f"{d['id']}: {d['reason']} {d['description'] or ''}"
                                              for d in t["dead_letters"])]
        for t in status["topics"]])
    entities = _table(["entity", "key", "exists", "operations", "pending", "last error", "state"], [
        [e["name"], e["key"], e["exists"], e["operations"], e["pending"], e["last_error"] or "",
         (e["state"] or "")[:200]] for e in status["entities"]])
    instances = _table(["instance", "pid", "url", "live", "partitions", "singletons", "last heartbeat"], [
        [i["id"] + (" (this one)" if i["id"] == status["instance"] else ""), i["pid"], i["url"], i["live"],
         ", ".join(map(str, i["partitions"])), ", ".join(i["singletons"]),
         time.strftime("%H:%M:%S", time.gmtime(i["heartbeat"]))] for i in status["instances"]])
    orchestrations = _table(["instance", "orchestrator", "status", "custom status", "created", "updated", "output"], [
        [o["instanceId"], o["name"], o["runtimeStatus"], json.dumps(o["customStatus"])[:200], o["createdTime"][:19],
         o["lastUpdatedTime"][:19], json.dumps(o["output"])[:200]] for o in status.get("orchestrations", [])])
    style = ("body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>AOS local host</title>"
            f"<style>{style}</style></head><body><h1>AOS local Functions host</h1>"
            f"<p>{html.escape(status['host'])} &middot; <a href='/admin/status'>JSON</a></p>"
            f"<h2>Instances</h2>{instances}<h2>Functions</h2>{functions}<h2>Topics and subscriptions</h2>{topics}"
            f"<h2>Durable entities</h2>{entities}<h2>Orchestrations</h2>{orchestrations}</body></html>")
