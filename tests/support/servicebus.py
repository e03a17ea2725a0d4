"""The network boundary of Service Bus, which cannot run here: a sender link that hands out the SDK's real
`ServiceBusMessageBatch` objects and records what was sent, and a client that hands out that link."""

from __future__ import annotations

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch


class StandInLink:
    """What the SDK's ServiceBusSender does over AMQP: hands out real batches, records what was sent."""

    def __init__(self, max_batch_bytes: int = 4096, failures: list[Exception] | None = None) -> None:
        self.max_batch_bytes = max_batch_bytes
        self.failures = failures or []
        self.sent: list[list[ServiceBusMessage]] = []
        self.closed = False

    async def create_message_batch(self) -> ServiceBusMessageBatch:
        return ServiceBusMessageBatch(max_size_in_bytes=self.max_batch_bytes)

    async def send_messages(self, batch: ServiceBusMessageBatch) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(list(batch._messages))  # the SDK keeps the batch's messages here

    async def close(self) -> None:
        self.closed = True


class StandInClient:
    fully_qualified_namespace = "aos-test.servicebus.windows.net"

    def __init__(self, link: StandInLink) -> None:
        self.link = link
        self.topics: list[str] = []

    def get_topic_sender(self, topic_name: str) -> StandInLink:
        self.topics.append(topic_name)
        return self.link
