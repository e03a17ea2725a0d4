"""Business agents that run a company together: the CEO decides, the CFO and the CTO advise and act.

They talk only through events and messages (the bus and the Durable entities), never by calling each other.
"""

from agents.business.base import BusinessAgent, handles
from agents.business.ceo import CEOAgent
from agents.business.cfo import CFOAgent
from agents.business.cto import CTOAgent

__all__ = ["BusinessAgent", "CEOAgent", "CFOAgent", "CTOAgent", "handles"]
