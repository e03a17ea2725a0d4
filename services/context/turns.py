"""Where an agent's model-and-tools loops keep their steps, in its context's key space (agents.thinking):

  context/<agent>/turns/<event>/<loop>/<seq>    seq 0 is the task; then model turns, tool results, a stop

Steps are written create-only by the loop and read back by it (to resume after a crash), by the API
(`GET /api/agents/{agent_id}/turns/{event_id}`) and by the dashboard. `ContextMCPServer.delete` removes them
with the rest of the agent's context.
"""

from __future__ import annotations

from typing import Any

from aos_core.event_records import key_slug
from aos_core.ports import StateStore


def turns_prefix(agent_id: str, event_id: str, loop: str | None = None) -> str:
    """Where the steps of `agent_id`'s loops for `event_id` are (one loop's when `loop` is given)."""
    base = f"context/{agent_id}/turns/{key_slug(event_id)}/"
    return base if loop is None else f"{base}{key_slug(loop)}/"


async def read_turns(store: StateStore, agent_id: str, event_id: str, loop: str | None = None,
                     *, limit: int = 10_000) -> list[dict[str, Any]]:
    """The committed steps of `agent_id`'s loops for `event_id` (of one loop when given), in order."""
    steps: list[dict[str, Any]] = []
    after: str | None = None
    prefix = turns_prefix(agent_id, event_id, loop)
    while len(steps) < limit and (page := await store.list(prefix, start_after=after, limit=min(500, limit))):
        steps.extend(d.value for d in page)
        after = page[-1].key
    return steps[:limit]
