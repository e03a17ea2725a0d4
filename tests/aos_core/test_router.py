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


def test_one_agent_subscribed_to_a_type_on_two_topics_keeps_both() -> None:
    router = Router()
    on_orders = router.add(Subscription("order.*", "tally", "t1", topic="orders"))
    on_audit = router.add(Subscription("order.*", "tally", "t1", topic="audit"))
    anywhere = router.add(Subscription("order.*", "tally", "t1"))
    assert [on_orders.id, on_audit.id, anywhere.id] == ["t1|order.*|orders", "t1|order.*|audit", "t1|order.*|*"]
    assert router.remove(anywhere.id)
    for topic in ("orders", "audit"):
        assert router.route(Event(type="order.paid"), topic=topic) == [AgentId("tally", "t1")]
    assert router.route(Event(type="order.paid"), topic="other") == []
    type_subs = [router.add(Subscription("x", "tally", topic=t)) for t in ("a", "b")]
    assert [s.id for s in type_subs] == ["type:tally|x|a", "type:tally|x|b"] and len(router.subscriptions) == 4


def test_a_topic_pattern_never_matches_an_event_without_a_topic_unless_it_matches_empty() -> None:
    router = Router()
    router.add(Subscription("x", "tally", "t1", topic="?*"))
    router.add(Subscription("x", "tally", "t2", topic="*"))
    assert router.route(Event(type="x")) == [AgentId("tally", "t2")]
    assert router.route(Event(type="x"), topic="") == [AgentId("tally", "t2")]


def test_an_event_without_a_valid_subject_still_reaches_later_subscriptions() -> None:
    router = Router()
    router.add(Subscription("*", "tally"))  # type subscription first: the subject would pick the agent
    router.add(Subscription("*", "tally", "orders"))
    for subject in (None, "Not An Id", ""):
        assert router.route(Event(type="order.created", subject=subject)) == [AgentId("tally", "orders")]


def test_removing_an_unknown_subscription_is_false_and_changes_nothing() -> None:
    router = Router()
    sub = router.add(Subscription("*", "tally", "t1"))
    assert router.remove("no|such|id") is False
    assert router.remove(sub.id) is True and router.remove(sub.id) is False
    assert router.subscriptions == []


def test_routing_follows_changes_after_a_cached_answer() -> None:
    router = Router()
    router.add(Subscription("a", "tally", "t1"))
    assert router.route(Event(type="a")) == [AgentId("tally", "t1")]
    assert router.route(Event(type="a")) == [AgentId("tally", "t1")]  # the cached answer
    router.add(Subscription("a", "tally", "t2"))
    assert router.route(Event(type="a")) == [AgentId("tally", "t1"), AgentId("tally", "t2")]
    router.remove_agent("t1")
    assert router.route(Event(type="a")) == [AgentId("tally", "t2")]
    for n in range(10_050):  # many distinct event types: every answer stays right past the cache's bound
        assert router.route(Event(type=f"b{n}")) == []
    assert router.route(Event(type="a")) == [AgentId("tally", "t2")]


def test_bad_subscriptions_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"^a subscription needs an event type pattern \('\*' for all\)$"):
        Subscription("", "tally")
    with pytest.raises(ValueError, match=r"^agent type 'Tally' must match"):
        Subscription("*", "Tally")
    with pytest.raises(ValueError, match=r"^agent id 'T 1' must match"):
        Subscription("*", "tally", "T 1")
