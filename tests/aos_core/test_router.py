from __future__ import annotations

import pytest

from aos_core.events import AgentId, Event
from aos_core.router import Router, Subscription


def test_instance_and_type_subscriptions() -> None:
    router = Router()
    router.add(Subscription("order.*", "tally", "orders"))
    router.add(Subscription("*", "tally"))  # type subscription: the subject picks the agent
    assert router.route(Event(type="order.created")) == [AgentId("tally", "orders")]
    assert router.route(Event(type="order.created", subject="shop-1")) == [AgentId("tally", "orders"),
                                                                          AgentId("tally", "shop-1")]
    assert router.route(Event(type="ticket.opened", subject="Not An Id")) == []


def test_each_agent_receives_an_event_once() -> None:
    router = Router()
    router.add(Subscription("order.*", "tally", "orders"))
    router.add(Subscription("order.created", "tally", "orders"))
    router.add(Subscription("*", "tally"))
    assert router.route(Event(type="order.created", subject="orders")) == [AgentId("tally", "orders")]


def test_topic_filter_and_removal() -> None:
    router = Router()
    sub = router.add(Subscription("*", "tally", "t1", topic="agent.events"))
    assert router.route(Event(type="a"), topic="agent.events") == [AgentId("tally", "t1")]
    assert router.route(Event(type="a"), topic="other") == []
    assert router.route(Event(type="a")) == []
    assert router.remove(sub.id)
    assert router.route(Event(type="a"), topic="agent.events") == []


def test_remove_agent_drops_its_subscriptions_and_the_cache() -> None:
    router = Router()
    router.add(Subscription("a.*", "tally", "t1"))
    router.add(Subscription("a.*", "tally", "t2"))
    assert len(router.route(Event(type="a.b"))) == 2
    router.remove_agent("t1")
    assert router.route(Event(type="a.b")) == [AgentId("tally", "t2")]


def test_bad_subscriptions() -> None:
    with pytest.raises(ValueError):
        Subscription("", "tally")
    with pytest.raises(ValueError):
        Subscription("*", "Tally")
