"""Agents: BaseAgent (stateless), PerpetualAgent (state that outlives calls), PurposeDrivenAgent (goals)."""

from agents.base import BaseAgent
from agents.perpetual import PerpetualAgent
from agents.purpose_driven import Goal, PurposeDrivenAgent

__all__ = ["BaseAgent", "Goal", "PerpetualAgent", "PurposeDrivenAgent"]
