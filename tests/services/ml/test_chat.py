"""Chat with tools through the Reasoner port: the rule-based default's tool rules, the OpenAI wire format over
the real local server, bad input, and the Azure OpenAI request shape checked against the `openai` SDK's own
request (AsyncAzureOpenAI) with a real azure-identity credential (the App Service managed identity flow of
Azure Functions, against a token endpoint on 127.0.0.1). The model service itself is the boundary: requests
to it are captured by httpx's MockTransport, the transport both clients send through."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from aos_core.config import MLSettings
from aos_core.errors import ConfigError
from services.ml.chat import ChatMessage, ChatRequest, ToolCall, ToolRule, ToolSpec, openai_body
from services.ml.endpoints import (
    COGNITIVE_SERVICES_SCOPE,
    AzureMLEndpointReasoner,
    AzureOpenAIChatReasoner,
    InferenceError,
    OpenAIChatReasoner,
)
from services.ml.factory import build_reasoner
from services.ml.local_server import LocalScoringServer
from services.ml.reasoner import InvalidRequestError, ReasoningRequest, RuleBasedReasoner
from services.secrets import EnvironmentSecretStore

LOOKUP = ToolSpec("kb__search", "Search the knowledge base.",
                  {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})
RULES = [ToolRule(r"risk of (?P<topic>\w+)", "kb__search", {"query": "{topic} incidents"})]


def ask(text: str, *more: ChatMessage, tools: tuple[ToolSpec, ...] = (LOOKUP,)) -> ChatRequest:
    messages = (ChatMessage("system", "be brief"), ChatMessage("user", text), *more)
    return ChatRequest(messages, tools, adapter="cto@1.0.0")


async def test_the_rule_based_reasoner_calls_a_tool_by_rule_then_answers_with_what_it_read() -> None:
    reasoner = RuleBasedReasoner(tool_rules=RULES)
    first = await reasoner.chat(ask("What is the risk of payments?"))
    assert first.finish_reason == "tool_calls" and first.text == ""
    (call,) = first.tool_calls
    assert (call.name, call.arguments) == ("kb__search", {"query": "payments incidents"})
    result = ChatMessage("tool", '{"hits": 2}', tool_call_id=call.id, name=call.name)
    second = await reasoner.chat(ask("What is the risk of payments?", first.message, result))
    assert second.tool_calls == () and second.finish_reason == "stop"
    assert second.text.endswith("(consulted kb__search: {\"hits\": 2})")
    assert second.usage["prompt_tokens"] > first.usage["prompt_tokens"]
    assert (await reasoner.chat(ask("What is the risk of payments?"))) == first  # deterministic


async def test_without_a_matching_rule_or_tool_it_answers_as_reason_does() -> None:
    reasoner = RuleBasedReasoner(tool_rules=RULES)
    plain = await reasoner.reason(ReasoningRequest("What is the risk of payments?", adapter="cto@1.0.0"))
    not_offered = await reasoner.chat(ask("What is the risk of payments?", tools=()))
    assert not_offered.text == plain.text and not not_offered.tool_calls
    assert (await reasoner.chat(ask("growth please"))).text.startswith("[cto@1.0.0] recommendation: proceed")


@pytest.mark.parametrize("build", [
    lambda: ChatRequest(()),
    lambda: ChatRequest((ChatMessage("system", "x"),)),
    lambda: ChatMessage("robot", "x"),  # type: ignore[arg-type]
    lambda: ChatMessage("tool", "result without a call id"),
    lambda: ChatMessage("user", "x", tool_calls=(ToolCall("c", "t", {}),)),
    lambda: ToolSpec("github/create_issue"),
    lambda: ToolSpec("t", parameters={"type": "string"}),
    lambda: ChatRequest((ChatMessage("user", "x"),), (LOOKUP, LOOKUP)),
    lambda: ChatRequest((ChatMessage("user", "x"), ChatMessage("tool", "r", tool_call_id="never-asked"))),
    lambda: ChatRequest((ChatMessage("user", "x"),), parameters={"temprature": 0}),
])
def test_malformed_chats_are_refused_before_anything_is_sent(build: Any) -> None:
    with pytest.raises(InvalidRequestError):
        build()


def test_bad_tool_rules_in_config_name_themselves() -> None:
    with pytest.raises(ConfigError, match=r"ml.tool_rules\[0\]"):
        build_reasoner(MLSettings(tool_rules=[{"pattern": "(", "tool": "x"}]))
    reasoner = build_reasoner(MLSettings(tool_rules=[{"pattern": "risk", "tool": "kb__search"}]))
    assert isinstance(reasoner.inner, RuleBasedReasoner) and reasoner.inner.tool_rules[0].tool == "kb__search"


async def test_an_openai_compatible_endpoint_round_trips_tools_and_tool_calls() -> None:
    with LocalScoringServer(RuleBasedReasoner(tool_rules=RULES), api_key="k") as server:
        reasoner = OpenAIChatReasoner(f"{server.url}/v1/chat/completions", key_secret="key",
                                      secrets=EnvironmentSecretStore({"key": "k"}))
        try:
            first = await reasoner.chat(ask("What is the risk of payments?"))
            (call,) = first.tool_calls
            assert call.arguments == {"query": "payments incidents"} and first.model == "rule-based"
            sent = server.requests[-1]["body"]
            assert sent["model"] == "cto" and sent["tools"][0] == {"type": "function", "function": {
                "name": "kb__search", "description": "Search the knowledge base.", "parameters": LOOKUP.parameters}}
            result = ChatMessage("tool", "none found", tool_call_id=call.id, name=call.name)
            second = await reasoner.chat(ask("What is the risk of payments?", first.message, result))
            assert "consulted" in second.text and second.usage["completion_tokens"] > 0
            echoed = server.requests[-1]["body"]["messages"]
            assert echoed[2]["tool_calls"][0]["function"] == {"name": "kb__search",
                                                              "arguments": '{"query": "payments incidents"}'}
            assert echoed[3] == {"role": "tool", "content": "none found", "tool_call_id": call.id}
        finally:
            await reasoner.close()


async def test_an_answer_with_a_malformed_tool_call_is_an_inference_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "kb__search", "arguments": "{not json"}}]}}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        reasoner = OpenAIChatReasoner("https://models.example/v1/chat/completions", client=client, attempts=1)
        with pytest.raises(InferenceError, match="tool call is malformed"):
            await reasoner.chat(ask("hello"))


async def test_an_azure_ml_online_endpoint_gets_the_chat_as_input_data_and_answers_in_the_openai_shape() -> None:
    sent: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": "fine"}}],
                                         "usage": {"prompt_tokens": 5, "completion_tokens": 1}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        reasoner = AzureMLEndpointReasoner("https://aos-cto.eastus.inference.ml.azure.com/score", deployment="blue",
                                           key_secret="ml-key", secrets=EnvironmentSecretStore({"ml-key": "k1"}),
                                           client=client, attempts=1)
        result = await reasoner.chat(ask("What is the risk of payments?"))
    body = json.loads(sent[0].content)["input_data"]
    assert body["adapter"] == "cto@1.0.0" and body["messages"][1]["content"] == "What is the risk of payments?"
    assert body["tools"][0]["function"]["name"] == "kb__search"
    assert sent[0].headers["azureml-model-deployment"] == "blue" and sent[0].headers["authorization"] == "Bearer k1"
    assert (result.text, result.usage, result.model) == ("fine", {"prompt_tokens": 5, "completion_tokens": 1}, "blue")


# --- Azure OpenAI: the request the openai SDK sends is the request we send ---------------------------------


class TokenEndpoint:
    """The App Service / Functions managed identity endpoint (IDENTITY_ENDPOINT) on 127.0.0.1."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                endpoint.calls.append({"query": query, "header": self.headers.get("X-IDENTITY-HEADER")})
                body = json.dumps({"access_token": "entra-token-123", "expires_on": str(int(time.time()) + 3600),
                                   "resource": query["resource"][0], "token_type": "Bearer"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/msi/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def managed_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", "identity-header-secret")
    yield endpoint
    endpoint.close()


COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
              "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                  "role": "assistant", "content": None, "tool_calls": [
                      {"id": "call_1", "type": "function",
                       "function": {"name": "kb__search", "arguments": '{"query": "payments"}'}}]}}],
              "usage": {"prompt_tokens": 31, "completion_tokens": 12, "total_tokens": 43}}


class Captured:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=COMPLETION)


async def _sdk_request(endpoint: str, request: ChatRequest, **auth: Any) -> tuple[httpx.Request, Any]:
    from openai import AsyncAzureOpenAI

    captured = Captured()
    async with httpx.AsyncClient(transport=httpx.MockTransport(captured)) as http:
        client = AsyncAzureOpenAI(azure_endpoint=endpoint, azure_deployment="gpt-4o-mini", api_version="2024-10-21",
                                  http_client=http, max_retries=0, **auth)
        wire = openai_body(request, "gpt-4o-mini")  # the same messages and tools, given to the SDK
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=wire["messages"],
                                                          tools=wire["tools"])
    return captured.requests[-1], completion


async def _our_request(endpoint: str, request: ChatRequest, **options: Any) -> tuple[httpx.Request, Any]:
    captured = Captured()
    async with httpx.AsyncClient(transport=httpx.MockTransport(captured)) as http:
        reasoner = AzureOpenAIChatReasoner(endpoint, deployment="gpt-4o-mini", api_version="2024-10-21",
                                           client=http, attempts=1, **options)
        try:
            result = await reasoner.chat(request)
        finally:
            await reasoner.close()
    return captured.requests[-1], result


async def test_azure_openai_with_entra_id_sends_what_the_openai_sdk_sends(managed_identity: TokenEndpoint) -> None:
    from azure.identity.aio import ManagedIdentityCredential, get_bearer_token_provider

    endpoint = "https://aos-test.openai.azure.com/"
    request = ask("What is the risk of payments?")
    credential = ManagedIdentityCredential()
    try:
        theirs, completion = await _sdk_request(
            endpoint, request, azure_ad_token_provider=get_bearer_token_provider(credential, COGNITIVE_SERVICES_SCOPE))
    finally:
        await credential.close()
    ours, result = await _our_request(endpoint, request)  # DefaultAzureCredential: the managed identity here

    assert ours.method == theirs.method == "POST"
    assert ours.url.path == theirs.url.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert ours.url.host == theirs.url.host == "aos-test.openai.azure.com"
    assert ours.url.params["api-version"] == theirs.url.params["api-version"] == "2024-10-21"
    assert ours.headers["authorization"] == theirs.headers["authorization"] == "Bearer entra-token-123"
    assert "api-key" not in ours.headers
    assert json.loads(ours.content) == json.loads(theirs.content)
    assert managed_identity.calls[-1]["query"]["resource"] == ["https://cognitiveservices.azure.com"]
    assert managed_identity.calls[-1]["header"] == "identity-header-secret"

    sdk_call = completion.choices[0].message.tool_calls[0]
    (call,) = result.tool_calls
    assert (call.id, call.name, call.arguments) == (sdk_call.id, sdk_call.function.name,
                                                    json.loads(sdk_call.function.arguments))
    assert result.usage == {"prompt_tokens": completion.usage.prompt_tokens,
                            "completion_tokens": completion.usage.completion_tokens}


async def test_azure_openai_with_a_key_from_the_secret_store_sends_it_as_the_sdk_does() -> None:
    endpoint = "https://aos-test.openai.azure.com"
    request = ask("hello")
    theirs, _ = await _sdk_request(endpoint, request, api_key="key-from-vault")
    ours, _ = await _our_request(endpoint, request, key_secret="aoai-key",
                                 secrets=EnvironmentSecretStore({"aoai-key": "key-from-vault"}))
    assert ours.url == theirs.url
    assert ours.headers["api-key"] == theirs.headers["api-key"] == "key-from-vault"
    assert "authorization" not in ours.headers and "authorization" not in theirs.headers


def test_azure_openai_needs_a_deployment() -> None:
    with pytest.raises(ConfigError, match=r"ml\.deployment"):
        AzureOpenAIChatReasoner("https://aos-test.openai.azure.com")
    with pytest.raises(ConfigError, match=r"ml\.endpoint_url"):
        build_reasoner(MLSettings(reasoner="azure_openai", deployment="gpt-4o-mini"))
