"""autogen-core's SingleThreadedAgentRuntime publish rate: the in-memory yardstick for `bench/dispatch.py`.

Runs inside a throwaway virtual environment that `bench/dispatch.py` creates (autogen-core is never a dependency
of AOS): `python autogen_baseline.py AGENTS EVENTS` prints one JSON line. The same shape as AOS's in-memory round:
events published to a topic, routed by a type subscription to the agent whose key is the topic's source, each
agent counting what it received.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass

from autogen_core import (
    MessageContext,
    RoutedAgent,
    SingleThreadedAgentRuntime,
    TopicId,
    TypeSubscription,
    message_handler,
)


@dataclass
class Hit:
    type: str


class Tally(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("counts events")
        self.total = 0
        self.by_type: dict[str, int] = {}

    @message_handler
    async def on_hit(self, message: Hit, ctx: MessageContext) -> None:
        self.total += 1
        self.by_type[message.type] = self.by_type.get(message.type, 0) + 1


async def main(agents: int, events: int) -> None:
    runtime = SingleThreadedAgentRuntime()
    await Tally.register(runtime, "tally", Tally)
    await runtime.add_subscription(TypeSubscription(topic_type="bench", agent_type="tally"))
    runtime.start()
    for i in range(agents):  # warm: every agent created
        await runtime.publish_message(Hit("bench.hit"), TopicId("bench", source=f"a{i}"))
    await runtime.stop_when_idle()
    runtime.start()
    started = time.perf_counter()
    cpu = time.process_time()
    for i in range(events):
        await runtime.publish_message(Hit(f"bench.k{i % 5}"), TopicId("bench", source=f"a{i % agents}"))
    await runtime.stop_when_idle()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"events_per_s": events / elapsed, "events_per_cpu_s": events / cpu}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
