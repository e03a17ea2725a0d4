"""The handler of the dead-letter operation (declared in `services.messaging.operations`).

`GET /api/deadletters`: the Service Bus messages that could never become events, as the topic triggers
recorded them (`services.messaging.topic_trigger`), in key order, paged with `after` (the last id seen).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from aos_core import api
from aos_core.event_records import DEADLETTERS

if TYPE_CHECKING:
    from aos_core.auth import Caller
    from aos_core.kernel import AgentOperatingSystem

_ID = re.compile(r"^[0-9a-f]{1,64}$")


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    topic: str | None = None
    message_id: str | None = None
    reason: str | None = None
    delivery_count: int | None = None
    recorded_at: str | None = None
    body: str | None = None  # the first 4 KiB, decoded as UTF-8 with replacement characters


class DeadLetterList(BaseModel):
    deadletters: list[DeadLetter]
    next: str | None = None


def _dead_letter(key: str, value: Any) -> DeadLetter:
    dead_id = key.removeprefix(DEADLETTERS)
    try:
        return DeadLetter.model_validate({**value, "id": dead_id})
    except (TypeError, ValidationError):  # a record written by something else: list it, do not fail the page
        return DeadLetter(id=dead_id, reason="unreadable dead-letter record")


async def list_deadletters(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    after = request.query.get("after") or None
    if after is not None and not _ID.match(after):
        raise api.Problem(400, "Invalid request", f"after must be a dead-letter id (1 to 64 hex digits), not {after!r}")
    limit = api.int_param(request, "limit", 100, 1, 1000)
    docs = await aos.store.list(DEADLETTERS, start_after=DEADLETTERS + after if after else None, limit=limit)
    items = [_dead_letter(doc.key, doc.value) for doc in docs]
    next_url = f"/api/deadletters?after={items[-1].id}&limit={limit}" if len(items) == limit else None
    return api.ApiResponse(200, DeadLetterList(deadletters=items, next=next_url).model_dump(mode="json"))
