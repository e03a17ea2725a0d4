"""The types of agents looked up recently, so an event addressed to a known agent costs no registry read.

An agent's type can only change through the registry, and every registry change moves the registry generation
that routing follows (`AgentRegistration._routes_current`). So a type read while generation `g` was routed stays
right until routing moves past `g`; then it is read again. Bounded: dormant agents stay out of memory.
"""

from __future__ import annotations

from collections import OrderedDict

_SIZE = 4096  # agents; a few hundred KB at most


class AgentTypes:
    def __init__(self, size: int = _SIZE) -> None:
        self._size = size
        self._known: OrderedDict[str, tuple[str, int]] = OrderedDict()  # agent id -> (type, generation)

    def get(self, agent_id: str, generation: int) -> str | None:
        """The agent's type if it was read at `generation`, else None."""
        known = self._known.get(agent_id)
        if known is None or known[1] != generation:
            return None
        self._known.move_to_end(agent_id)
        return known[0]

    def put(self, agent_id: str, agent_type: str, generation: int) -> None:
        self._known[agent_id] = (agent_type, generation)
        self._known.move_to_end(agent_id)
        if len(self._known) > self._size:
            self._known.popitem(last=False)
