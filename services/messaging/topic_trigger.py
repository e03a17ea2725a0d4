"""What the Service Bus topic triggers do with a message: decode it into an Event and submit it once.

A message that can never become an event is recorded under `deadletters/` with its reason and then raises,
so the host abandons it and Service Bus dead-letters it at the subscription's max delivery count: it is
neither retried forever nor dropped without a trace. A redelivered message id maps to the same event id, and
the kernel accepts an event id once.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from aos_core.runtime import with_aos
from services.messaging.cloudevents_amqp import InvalidMessage, event_from_message

log = logging.getLogger("aos.servicebus")


async def receive_topic_message(message: Any, *, direct: bool = False) -> dict[str, Any]:
    """Handle one `azure.functions.ServiceBusMessage`; returns the event's record as a dict.

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
        reason = str(exc)
        await with_aos(lambda aos: _record_poison(aos, message, _topic(aos, direct), reason))
        log.error("message %s can never be processed: %s", message.message_id, exc)
        raise

    async def submit(aos: Any) -> dict[str, Any]:
        record = await aos.submit(event, topic=_topic(aos, direct), to_agent=event.subject if direct else None)
        return record.to_dict()

    return await with_aos(submit)


def _topic(aos: Any, direct: bool) -> str:
    return str(aos.config.messaging.topic(direct=direct))


async def _record_poison(aos: Any, message: Any, topic: str, reason: str) -> None:
    body = message.get_body() or b""
    await aos.records.dead_letter(topic, message.message_id or hashlib.sha256(body).hexdigest(), reason,
                                  body[:4096].decode("utf-8", "replace"),
                                  delivery_count=getattr(message, "delivery_count", None))
