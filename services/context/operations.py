"""The context area's HTTP operation: an agent's reasoning steps (handler in `services.context.routes`)."""

from __future__ import annotations

from aos_core.api_operations import AGENT_ID, record_id
from aos_core.operations import HttpOperation, Reply

OPERATIONS: tuple[HttpOperation, ...] = (
    HttpOperation(
        "get_turns", "agents/{agent_id}/turns/{event_id}", ("GET",), "reader", "services.context.routes:get_turns",
        "The steps of the agent's model-and-tools loops for one event", params=(AGENT_ID, record_id("event_id")),
        replies={200: Reply("the steps, in order (none when the agent ran no loop for it)",
                            "services.context.routes:AgentTurns")},
        problems=(400, 401, 403, 404)),
)
