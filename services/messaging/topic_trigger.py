"""What the Service Bus topic triggers do with a message: decode it into an Event and submit it once.

A message that can never be processed (it does not decode into an event, or it is a direct message to an
agent that does not exist) is dead-lettered at once: recorded under `deadletters/` with its reason (listed by
`GET /api/deadletters`), audited, and completed, so it is neither retried as if the next delivery could
succeed nor dropped without a trace. Anything else that fails raises, and the host retries it. A redelivered
message id maps to the same event id, and the kernel accepts an event id once.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from aos_core.errors import NotFoundError
from services.messaging.cloudevents_amqp import InvalidMessage, event_from_message

log = logging.getLogger("aos.servicebus")


async def receive_topic_message(aos: Any, message: Any, *, direct: bool = False) -> dict[str, Any]:
    """Handle one `azure.functions.ServiceBusMessage` with the kernel `aos` (the trigger hands it over);
    returns the event's record as a dict, or for a message that was dead-lettered
    `{"message_id", "status": "deadlettered", "reason"}`.

    `direct`: it came from the messages topic, and goes to the agent named by the event's subject; otherwise
    from the events topic, routed by subscriptions.
    """
    try:
        event = event_from_message(
            message.get_body() or b"", message_id=message.message_id, content_type=message.content_type,
            correlation_id=message.correlation_id, subject=getattr(message, "subject", None),
            application_properties=message.application_properties)
        if direct and not event.subject:
            raise InvalidMessage("a direct message needs the target agent id as its subject")
    except InvalidMessage as exc:
        return await _dead_letter(aos, message, _topic(aos, direct), str(exc))
    topic = _topic(aos, direct)
    try:
        record = await aos.submit(event, topic=topic, to_agent=event.subject if direct else None)
    except NotFoundError as exc:  # no agent of that id: another delivery cannot change that
        if not direct:
            raise
        return await _dead_letter(aos, message, topic, f"unknown agent: {exc}")
    return record.to_dict()


def _topic(aos: Any, direct: bool) -> str:
    return str(aos.config.messaging.topic(direct=direct))


async def _dead_letter(aos: Any, message: Any, topic: str, reason: str) -> dict[str, Any]:
    body = message.get_body() or b""
    dead_id = await aos.records.dead_letter(topic, message.message_id or hashlib.sha256(body).hexdigest(), reason,
                                            body[:4096].decode("utf-8", "replace"),
                                            delivery_count=getattr(message, "delivery_count", None))
    if aos.audit is not None:
        await aos.audit.append("servicebus", "message.deadlettered", f"deadletter/{dead_id}",
                               {"topic": topic, "message_id": message.message_id, "reason": reason})
    log.error("message %s on %s dead-lettered: %s", message.message_id, topic, reason)
    return {"message_id": message.message_id, "status": "deadlettered", "reason": reason}
