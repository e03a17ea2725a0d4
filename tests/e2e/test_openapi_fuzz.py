"""Property-based run over the OpenAPI document (schemathesis), against function_app on the local host in-process.

Every operation gets at least 200 generated requests (valid and invalid); no answer may be a 5xx, and every
answer must match the document's schema for its status. Then the stateful phase follows the document's links
(a created agent -> get, message, delete; an accepted event -> its status; a decision -> feedback) through
sequences of calls. The host runs on uvicorn in this process, so entity signals go through the real Durable
client to the host's own webhooks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as seed_for
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from aos_core.openapi import openapi_document
from function_app import API
from tests.services.devhost.conftest import FUNCTION_KEY

SCHEMA = schemathesis.openapi.from_dict(openapi_document(API))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
HEADERS = {"x-functions-key": FUNCTION_KEY}
EXAMPLES = 200  # per operation


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_5xx_or_an_answer_outside_the_schema(case: Any, in_process_host: str) -> None:
    case.call_and_validate(base_url=in_process_host, headers=HEADERS, checks=CHECKS)


@pytest.fixture(scope="module")
def decision(in_process_host: str) -> str:
    """A decision record to rate: the CFO decides a spend request (the stateful phase starts from the list)."""
    with httpx.Client(base_url=in_process_host, headers=HEADERS, timeout=30) as http:
        http.post("/api/agents", json={"type": "cfo", "id": "cfo", "config": {
            "budgets": {"marketing": 400000}, "subscribe": ["finance.spend_request"]}}).raise_for_status()
        http.post("/api/events?wait=20", json={"type": "finance.spend_request", "id": "fuzz-spend-1",
                                               "data": {"id": "s1", "department": "marketing", "amount": 100}})
        decisions = http.get("/api/decisions").json()["decisions"]
    assert decisions, "the CFO recorded no decision to follow links from"
    return str(decisions[0]["id"])


def test_linked_sequences_never_get_a_5xx_or_an_answer_outside_the_schema(in_process_host: str, decision: str
                                                                         ) -> None:
    seen: Counter[tuple[str, int]] = Counter()

    class Workflow(SCHEMA.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": in_process_host, "headers": HEADERS}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            seen[(case.operation.definition.raw.get("operationId", ""), response.status_code)] += 1

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    # Generation only, as schemathesis' runner does. Replaying part of a scenario against a server whose state
    # has moved on can still draw different steps, which Hypothesis reports as a flaky strategy (not a failure
    # of the API); like that runner, start another suite then, a few times at most (six: on a loaded machine three
    # once drew no step to a link). The steps a suite draws
    # follow the server's answers (ids, timings), so one seed's path may miss a link: another suite follows
    # until every link below was taken to a resource that exists.
    required = [("get_agent", 200), ("delete_agent", 200), ("get_event", 200), ("post_feedback", 201)]
    for seed in range(6):
        try:
            seed_for(seed)(Workflow).run(settings=settings(
                max_examples=EXAMPLES, stateful_step_count=6, deadline=None, database=None, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck)))
        except FlakyStrategyDefinition:
            continue
        if all(seen[pair] for pair in required):
            break
    # The links were followed to resources that exist, not only to generated ids.
    for operation, status in required:
        assert seen[(operation, status)] > 0, f"no {operation} answered {status}: {sorted(seen.items())}"
