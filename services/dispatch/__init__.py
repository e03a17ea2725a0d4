"""Dispatcher port adapters: perpetual agents as Durable entities (the in-process one is `aos_core.dispatch`)."""

from services.dispatch.durable import ENTITY_NAME, DurableEntityDispatcher, durable_client, run_agent_entity

__all__ = ["ENTITY_NAME", "DurableEntityDispatcher", "durable_client", "run_agent_entity"]
