"""Work queues on Azure Queue Storage (azure-storage-queue, async), with the Functions queue trigger's rules.

A received message is invisible for its visibility timeout; `complete` deletes it, `abandon` makes it visible
again (now or after a delay). Each receive raises its dequeue count; a message received more than
`max_dequeue_count` times is moved to `<queue>-poison` instead of being handed out, as the Functions host does.
Bodies are JSON, base64-encoded like the Functions host expects, so a queue trigger can read what this sends.
A service that cannot be reached, or answers 408, 429 or 5xx, is StorageUnavailableError (as for the stores).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from aos_core.errors import LockLostError
from aos_core.ports import JSON
from services.storage.keys import check_container, encode_value
from services.storage.outages import outages_unavailable

if TYPE_CHECKING:
    from services.storage.connections import StorageConnection

POISON_SUFFIX = "-poison"
MAX_VISIBILITY = 7 * 24 * 3600  # the service's limit, in seconds


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A received message: settle it with `complete` or `abandon` before `visible_again`."""

    id: str
    body: JSON
    dequeue_count: int
    pop_receipt: str
    inserted_on: datetime | None
    visible_again: datetime | None


def _lock_lost(exc: HttpResponseError) -> bool:
    # 404: deleted (by us or after its visibility ran out elsewhere); 400 PopReceiptMismatch: received again since.
    return isinstance(exc, ResourceNotFoundError) or getattr(exc, "error_code", None) == "PopReceiptMismatch"


def _seconds(value: float, what: str) -> int:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= MAX_VISIBILITY:
        raise ValueError(f"{what} must be between 0 and {MAX_VISIBILITY} seconds, got {value!r}")
    return int(value)


class StorageWorkQueue:
    """One Queue Storage queue and its poison queue, created on first use."""

    def __init__(self, name: str, connection: StorageConnection | None = None, *, service_client: Any = None,
                 visibility_timeout: float = 30, max_dequeue_count: int = 5) -> None:
        if (connection is None) == (service_client is None):
            raise ValueError("pass exactly one of connection or service_client")
        self.name = check_container(name)  # queue names follow the container-name rules
        self.poison_name = check_container(name + POISON_SUFFIX)
        if max_dequeue_count < 1:
            raise ValueError("max_dequeue_count must be at least 1")
        self.visibility_timeout = _seconds(visibility_timeout, "visibility_timeout")
        self.max_dequeue_count = max_dequeue_count
        self._connection = connection
        self._service = service_client
        self._credential: Any = None
        self._clients: dict[str, Any] = {}

    async def _queue(self, name: str) -> Any:
        client = self._clients.get(name)
        if client is None:
            if self._service is None:
                assert self._connection is not None
                self._credential = self._connection.credential()
                self._service = self._connection.queue_service_client(self._credential)
            from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

            client = self._service.get_queue_client(name, message_encode_policy=TextBase64EncodePolicy(),
                                                    message_decode_policy=TextBase64DecodePolicy())
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass
            self._clients[name] = client
        return client

    @outages_unavailable
    async def send(self, body: JSON, *, delay: float = 0, time_to_live: float | None = None) -> str:
        """Enqueue `body` (any JSON value), visible after `delay` seconds; returns the message id."""
        text = encode_value(body)  # a bad body fails here, before anything is sent
        ttl = None if time_to_live is None else int(time_to_live)
        queue = await self._queue(self.name)
        sent = await queue.send_message(text, visibility_timeout=_seconds(delay, "delay") or None, time_to_live=ttl)
        return str(sent.id)

    @outages_unavailable
    async def receive(self, max_messages: int = 1, *, visibility_timeout: float | None = None) -> list[WorkItem]:
        """Up to `max_messages` (1-32) messages, each hidden for the visibility timeout; poison ones are moved."""
        if not 1 <= max_messages <= 32:
            raise ValueError("max_messages must be between 1 and 32")
        hide = self.visibility_timeout if visibility_timeout is None else _seconds(visibility_timeout,
                                                                                  "visibility_timeout")
        queue = await self._queue(self.name)
        items: list[WorkItem] = []
        async for message in queue.receive_messages(max_messages=max_messages, messages_per_page=max_messages,
                                                    visibility_timeout=hide):
            if message.dequeue_count > self.max_dequeue_count:
                # Lost to another receiver meanwhile: doubled in poison, never lost.
                await self._to_poison(queue, message.id, message.pop_receipt, message.content, lock_lost_ok=True)
                continue
            items.append(self._item(message))
            if len(items) >= max_messages:
                break
        return items

    @staticmethod
    def _item(message: Any) -> WorkItem:
        try:
            body = json.loads(message.content)
        except (TypeError, ValueError):
            body = message.content  # sent by another producer as plain text
        return WorkItem(message.id, body, message.dequeue_count, message.pop_receipt, message.inserted_on,
                        message.next_visible_on)

    async def _to_poison(self, queue: Any, message_id: str, pop_receipt: str, content: str, *,
                         lock_lost_ok: bool = False) -> None:
        poison = await self._queue(self.poison_name)
        await poison.send_message(content)
        await self._delete(queue, message_id, pop_receipt, lock_lost_ok=lock_lost_ok)

    async def _delete(self, queue: Any, message_id: str, pop_receipt: str, *, lock_lost_ok: bool = False) -> None:
        try:
            await queue.delete_message(message_id, pop_receipt)
        except HttpResponseError as exc:
            if not _lock_lost(exc):
                raise
            if not lock_lost_ok:  # its visibility ran out and another receiver took it
                raise LockLostError(f"queue {self.name} message {message_id}: visibility expired or already "
                                    "settled") from None

    @outages_unavailable
    async def complete(self, item: WorkItem) -> None:
        """Delete a processed message. LockLostError if its visibility ran out and another receiver took it."""
        await self._delete(await self._queue(self.name), item.id, item.pop_receipt)

    @outages_unavailable
    async def abandon(self, item: WorkItem, *, delay: float = 0) -> WorkItem:
        """Make the message visible again after `delay` seconds (0: now); returns it with its new pop receipt."""
        return await self._update(item, _seconds(delay, "delay"))

    @outages_unavailable
    async def extend(self, item: WorkItem, seconds: float) -> WorkItem:
        """Keep the message hidden for `seconds` more (long work); returns it with its new pop receipt."""
        return await self._update(item, _seconds(seconds, "seconds"))

    async def _update(self, item: WorkItem, visibility: int) -> WorkItem:
        queue = await self._queue(self.name)
        try:
            updated = await queue.update_message(item.id, item.pop_receipt, visibility_timeout=visibility)
        except HttpResponseError as exc:
            if not _lock_lost(exc):
                raise
            raise LockLostError(f"queue {self.name} message {item.id}: visibility expired or already settled") from None
        return WorkItem(item.id, item.body, item.dequeue_count, updated.pop_receipt, item.inserted_on,
                        updated.next_visible_on)

    @outages_unavailable
    async def dead_letter(self, item: WorkItem, *, reason: str) -> None:
        """Move the message to the poison queue now, with `reason` next to its body."""
        content = encode_value({"body": item.body, "reason": reason, "dequeue_count": item.dequeue_count})
        await self._to_poison(await self._queue(self.name), item.id, item.pop_receipt, content)

    @outages_unavailable
    async def poison_messages(self, max_messages: int = 32) -> list[JSON]:
        """The bodies in the poison queue (peeked: they stay there)."""
        poison = await self._queue(self.poison_name)
        peeked = await poison.peek_messages(max_messages=max_messages)
        return [self._item(message).body for message in peeked]

    async def close(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.close()
        if self._connection is not None and self._service is not None:
            await self._service.close()
            self._service = None
            if self._credential is not None:
                await self._credential.close()
                self._credential = None
