"""Remote reasoners against a real HTTP server on 127.0.0.1: both wire formats, keys, errors, 429s, slow
answers, the circuit breaker and the cache in front."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from aos_core.errors import ConfigError
from aos_core.testing import ManualClock
from services.ml.cache import CachedReasoner
from services.ml.endpoints import AzureMLEndpointReasoner, InferenceError, OpenAIChatReasoner, TransientInferenceError
from services.ml.local_server import LocalScoringServer
from services.ml.reasoner import ReasoningRequest, RuleBasedReasoner
from services.reliability import CircuitBreaker, CircuitOpenError, OperationTimeoutError
from services.secrets import EnvironmentSecretStore
from tests.services.ml.conftest import API_KEY

SECRETS = EnvironmentSecretStore({"ml-endpoint-key": API_KEY})


class Delays:
    def __init__(self) -> None:
        self.waited: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


def azureml(server: LocalScoringServer, **kwargs: Any) -> AzureMLEndpointReasoner:
    options: dict[str, Any] = {"secrets": SECRETS, "key_secret": "ml-endpoint-key", "deployment": "blue",
                               "sleep": Delays(), **kwargs}
    return AzureMLEndpointReasoner(f"{server.url}/score", **options)


def openai(server: LocalScoringServer, **kwargs: Any) -> OpenAIChatReasoner:
    options: dict[str, Any] = {"secrets": SECRETS, "key_secret": "ml-endpoint-key", "sleep": Delays(), **kwargs}
    return OpenAIChatReasoner(f"{server.url}/v1/chat/completions", **options)


def failing(*statuses: int, headers: dict[str, str] | None = None) -> Any:
    """An intercept answering with `statuses` in turn, then normally."""
    queue = list(statuses)

    def intercept(path: str, body: Any, _: dict[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        if queue:
            return queue.pop(0), {"error": "scripted"}, dict(headers or {})
        return None

    return intercept


async def test_azureml_scoring_round_trip(scoring_server: LocalScoringServer) -> None:
    reasoner = azureml(scoring_server)
    request = ReasoningRequest("growth opportunity in Europe", adapter="ceo@1.2.0", system="be brief",
                               parameters={"temperature": 0.0})
    result = await reasoner.reason(request)
    await reasoner.close()
    assert result.text == RuleBasedReasoner().answer(request).text
    assert result.adapter == "ceo@1.2.0" and result.usage["prompt_tokens"] == 4
    sent = scoring_server.requests[-1]
    assert sent["path"] == "/score"
    assert sent["body"] == {"input_data": request.to_dict()}
    assert sent["headers"]["azureml-model-deployment"] == "blue"
    assert "authorization" not in sent["headers"]  # the server saw it; the record keeps no key


async def test_openai_chat_round_trip(scoring_server: LocalScoringServer) -> None:
    reasoner = openai(scoring_server)
    request = ReasoningRequest("cut costs", adapter="cfo@3.0.0", system="You are the CFO",
                               parameters={"max_tokens": 64})
    result = await reasoner.reason(request)
    await reasoner.close()
    body = scoring_server.requests[-1]["body"]
    assert body["model"] == "cfo"  # multi-LoRA servers serve each adapter as a model
    assert body["messages"] == [{"role": "system", "content": "You are the CFO"},
                                {"role": "user", "content": "cut costs"}]
    assert body["max_tokens"] == 64
    assert result.text.startswith("[cfo]")
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + result.usage["completion_tokens"]


async def test_azure_openai_api_key_header(scoring_server: LocalScoringServer) -> None:
    reasoner = openai(scoring_server, api_key_header="api-key", deployment="gpt-4o")
    result = await reasoner.reason(ReasoningRequest("hello"))
    await reasoner.close()
    assert result.model == "gpt-4o"


async def test_wrong_key_is_a_clear_error_and_not_retried(scoring_server: LocalScoringServer) -> None:
    reasoner = azureml(scoring_server, secrets=EnvironmentSecretStore({"ml-endpoint-key": "wrong"}))
    with pytest.raises(InferenceError, match="HTTP 401") as info:
        await reasoner.reason(ReasoningRequest("x"))
    await reasoner.close()
    assert info.value.status == 401
    assert len(scoring_server.requests) == 1
    assert "wrong" not in str(info.value)


async def test_missing_secret_is_a_config_error_naming_it(scoring_server: LocalScoringServer) -> None:
    reasoner = azureml(scoring_server, secrets=EnvironmentSecretStore({}))
    with pytest.raises(ConfigError, match="ml-endpoint-key"):
        await reasoner.reason(ReasoningRequest("x"))
    assert len(scoring_server.requests) == 0


def test_bad_url_and_key_without_store_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        AzureMLEndpointReasoner("ftp://x/score")
    with pytest.raises(ConfigError, match="no SecretStore"):
        AzureMLEndpointReasoner("http://127.0.0.1:1/score", key_secret="k")


async def test_429_is_retried_with_backoff(scoring_server: LocalScoringServer) -> None:
    scoring_server.intercept = failing(429, 429, headers={"Retry-After": "2"})
    delays = Delays()
    reasoner = azureml(scoring_server, sleep=delays, attempts=3)
    result = await reasoner.reason(ReasoningRequest("growth"))
    await reasoner.close()
    assert "proceed" in result.text
    assert len(scoring_server.requests) == 3
    assert len(delays.waited) == 2 and delays.waited[1] >= delays.waited[0] * 0.5 > 0


async def test_429_past_the_attempts_raises_with_the_server_hint(scoring_server: LocalScoringServer) -> None:
    scoring_server.intercept = failing(429, 429, 429, headers={"Retry-After": "7"})
    reasoner = azureml(scoring_server, attempts=3)
    with pytest.raises(TransientInferenceError) as info:
        await reasoner.reason(ReasoningRequest("x"))
    await reasoner.close()
    assert info.value.status == 429 and info.value.retry_after == 7.0


async def test_bad_answer_body_is_an_inference_error(scoring_server: LocalScoringServer) -> None:
    scoring_server.intercept = lambda path, body, headers: (200, {"unexpected": True}, {})
    reasoner = openai(scoring_server)
    with pytest.raises(InferenceError, match="choices"):
        await reasoner.reason(ReasoningRequest("x"))
    await reasoner.close()


async def test_breaker_opens_after_repeated_5xx_and_fails_fast(scoring_server: LocalScoringServer) -> None:
    clock = ManualClock()
    scoring_server.intercept = failing(*[503] * 6)
    breaker = CircuitBreaker("ml-test", failure_threshold=3, timeout=30, clock=clock)
    reasoner = azureml(scoring_server, breaker=breaker, attempts=1)
    for _ in range(3):
        with pytest.raises(TransientInferenceError):
            await reasoner.reason(ReasoningRequest("x"))
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        await reasoner.reason(ReasoningRequest("x"))
    assert len(scoring_server.requests) == 3  # the open breaker did not call the endpoint
    scoring_server.intercept = None
    await clock.advance(31)
    assert "proceed" in (await reasoner.reason(ReasoningRequest("growth"))).text
    assert breaker.state == "closed"
    await reasoner.close()


async def test_a_4xx_does_not_open_the_breaker(scoring_server: LocalScoringServer) -> None:
    scoring_server.intercept = failing(400, 400, 400)
    breaker = CircuitBreaker("ml-4xx", failure_threshold=2, timeout=30)
    reasoner = azureml(scoring_server, breaker=breaker, attempts=1)
    for _ in range(3):
        with pytest.raises(InferenceError):
            await reasoner.reason(ReasoningRequest("x"))
    await reasoner.close()
    assert breaker.state == "closed"


async def test_slow_answer_times_out_on_the_clock(scoring_server: LocalScoringServer) -> None:
    clock = ManualClock()
    arrived, release = threading.Event(), threading.Event()

    def slow(path: str, body: Any, headers: dict[str, str]) -> None:
        arrived.set()
        release.wait(10)
        return None

    scoring_server.intercept = slow
    breaker = CircuitBreaker("ml-slow", failure_threshold=1, timeout=30, clock=clock)
    reasoner = azureml(scoring_server, clock=clock, timeout=5, attempts=1, breaker=breaker)
    call = asyncio.ensure_future(reasoner.reason(ReasoningRequest("x")))
    try:
        assert await asyncio.to_thread(arrived.wait, 10)
        await clock.advance(5)
        with pytest.raises(OperationTimeoutError, match="azureml endpoint call timed out after 5 s"):
            await call
    finally:
        release.set()
        await reasoner.close()
    assert breaker.state == "open"  # a timeout counts against the endpoint


async def test_cached_remote_reasoner_calls_the_endpoint_once(scoring_server: LocalScoringServer) -> None:
    reasoner = CachedReasoner(azureml(scoring_server))
    request = ReasoningRequest("growth", adapter="ceo@1.0.0")
    first = await reasoner.reason(request)
    second = await reasoner.reason(request)
    await reasoner.close()
    assert (first.cached, second.cached) == (False, True)
    assert len(scoring_server.requests) == 1
