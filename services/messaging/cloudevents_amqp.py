"""CloudEvents over AMQP (Service Bus): the property names both directions agree on, and the receive side.

Sending uses structured mode: the body is the whole CloudEvent as JSON with content type
`application/cloudevents+json`, and the attributes are repeated as `cloudEvents_*` application properties so
Service Bus subscription rules can filter on them. Receiving accepts structured mode, and binary mode as other
producers send it: attributes in `cloudEvents_*` (or the older `cloudEvents:*`) application properties and the
body as the event's data. Nothing here imports the Azure SDK: the trigger hands us plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from aos_core import strict_json
from aos_core.events import Event

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
PROPERTY_PREFIX = "cloudEvents_"
_LEGACY_PREFIX = "cloudEvents:"
TRACEPARENT_PROPERTY = "traceparent"  # W3C trace context, as Service Bus's own tracing names it
# The attributes copied to application properties (data goes in the body only).
ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "correlationid")


class InvalidMessage(ValueError):
    """A message that can never become an Event: dead-letter it with this text as the reason."""


def application_properties(event: Event) -> dict[str, str]:
    """The `cloudEvents_*` properties (and `traceparent`) to send with `event`."""
    values = event.model_dump(mode="json", exclude_none=True)
    props = {PROPERTY_PREFIX + name: str(values[name]) for name in ATTRIBUTES if name in values}
    if event.traceparent:
        props[TRACEPARENT_PROPERTY] = event.traceparent
    return props


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)


def _attributes(props: Mapping[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_key, value in props.items():
        key = _text(raw_key)
        for prefix in (PROPERTY_PREFIX, _LEGACY_PREFIX):
            if key.startswith(prefix) and value is not None:
                out[key[len(prefix):]] = _text(value)
    return out


def event_from_message(
    body: bytes,
    *,
    message_id: str | None = None,
    content_type: str | None = None,
    correlation_id: str | None = None,
    subject: str | None = None,
    application_properties: Mapping[Any, Any] | None = None,
) -> Event:
    """Turn one received Service Bus message into an Event, or raise InvalidMessage saying why.

    The message id becomes the event id when the event names none, so a redelivery maps to the same event.
    """
    props = dict(application_properties or {})
    attrs = _attributes(props)
    parsed: Any = None
    if body:
        try:
            parsed = strict_json.loads(body)
        except strict_json.JsonRejected as exc:
            if (content_type or "").startswith(STRUCTURED_CONTENT_TYPE) or not attrs:
                raise InvalidMessage(f"body is not acceptable JSON: {exc}") from None
            parsed = body.decode("utf-8", "replace")
    structured = (content_type or "").startswith(STRUCTURED_CONTENT_TYPE) or (
        isinstance(parsed, dict) and "specversion" in parsed and "type" in parsed and "type" not in attrs
    )
    if structured:
        if not isinstance(parsed, dict):
            raise InvalidMessage("a structured CloudEvents body must be a JSON object")
        fields: dict[str, Any] = dict(parsed)
    else:
        if "type" not in attrs:
            raise InvalidMessage("message has no CloudEvents type (structured body or cloudEvents_type property)")
        fields = {k: v for k, v in attrs.items() if k in Event.model_fields}
        fields["data"] = parsed
        if content_type:
            fields.setdefault("datacontenttype", content_type)
    fields.setdefault("id", message_id or None)
    if fields.get("id") is None:
        fields.pop("id")
    if correlation_id and not fields.get("correlationid"):
        fields["correlationid"] = correlation_id
    if subject and not fields.get("subject") and not structured:
        fields["subject"] = subject
    trace = props.get(TRACEPARENT_PROPERTY) or props.get(TRACEPARENT_PROPERTY.encode())
    if trace and not fields.get("traceparent"):
        fields["traceparent"] = _text(trace)
    try:
        return Event.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())
        raise InvalidMessage(f"not a valid event: {problems}") from None
