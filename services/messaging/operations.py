"""The messaging area's HTTP operation: dead letters (handler in `services.messaging.routes`)."""

from __future__ import annotations

from aos_core.api_operations import LIMIT
from aos_core.operations import HttpOperation, Param, Reply

OPERATIONS: tuple[HttpOperation, ...] = (
    HttpOperation(
        "list_deadletters", "deadletters", ("GET",), "reader", "services.messaging.routes:list_deadletters",
        "Messages that could never become events, with the reason",
        params=(Param("after", schema={"type": "string", "pattern": "^[0-9a-f]{1,64}$"}), LIMIT),
        replies={200: Reply("dead letters in key order", "services.messaging.routes:DeadLetterList")},
        problems=(400, 401, 403)),
)
