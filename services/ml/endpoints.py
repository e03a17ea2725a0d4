"""Remote Reasoners: an Azure ML managed online endpoint and an OpenAI-compatible chat completions endpoint.

Both send JSON over HTTPS with the endpoint key from the SecretStore (never logged), and every call goes
through services.reliability: a timeout per attempt, retries with backoff for 408/429/5xx and network
errors, and the circuit breaker named after the endpoint so a dead endpoint fails fast for every agent.
httpx is imported when a client is first used, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aos_core.clock import SystemClock
from aos_core.errors import AOSError, ConfigError
from aos_core.ports import Clock, SecretStore
from services.ml import telemetry
from services.ml.chat import ChatRequest, ChatResult, openai_body, parse_openai
from services.ml.reasoner import ReasoningRequest, ReasoningResult, clip
from services.reliability import CircuitBreaker, is_transient, retry_async, with_timeout

if TYPE_CHECKING:
    import httpx

_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


class InferenceError(AOSError):
    """The endpoint refused or failed the request; `status` is its HTTP status (None: no answer)."""

    def __init__(self, endpoint: str, detail: str, status: int | None = None) -> None:
        super().__init__(f"{endpoint}: {detail}")
        self.endpoint = endpoint
        self.status = status


class TransientInferenceError(InferenceError):
    """Busy or briefly down (408, 429, 5xx): worth retrying. `retry_after` is the server's hint in seconds."""

    def __init__(self, endpoint: str, detail: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(endpoint, detail, status)
        self.retry_after = retry_after


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientInferenceError) or is_transient(exc)


class RemoteReasoner:
    """Shared plumbing: key lookup, HTTP client, breaker, retries and timeouts. Subclasses shape the JSON."""

    kind = "remote"

    def __init__(
        self,
        url: str,
        *,
        secrets: SecretStore | None = None,
        key_secret: str | None = None,
        deployment: str | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        breaker: CircuitBreaker | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"ml.endpoint_url: {url!r} is not an http(s) URL")
        if key_secret is not None and secrets is None:
            raise ConfigError(f"ml.api_key_secret: {key_secret!r} is set but no SecretStore was given")
        self.url = url
        self.secrets = secrets
        self.key_secret = key_secret
        self.deployment = deployment
        self.timeout = timeout
        self.attempts = attempts
        self.clock = clock  # None: timeouts on the event loop's clock
        self._timer: Clock = clock or SystemClock()
        self.sleep = sleep
        # One breaker per endpoint URL for the whole process; the name carries no key or query string.
        self.breaker = breaker or CircuitBreaker(name=f"ml:{url.split('?', 1)[0]}", clock=clock)
        self._client = client
        self._own_client = client is None

    async def reason(self, request: ReasoningRequest) -> ReasoningResult:
        """Ask the endpoint; InferenceError for a refusal, CircuitOpenError while the breaker is open."""
        return self.parse(request, await self._exchange(self.payload(request)))

    async def chat(self, request: ChatRequest) -> ChatResult:
        """The model's next turn (answer or tool calls), with the same retries, breaker and errors as `reason`."""
        data = await self._exchange(self.chat_payload(request))
        try:
            return self.parse_chat(request, data)
        except ValueError as exc:
            raise InferenceError(self.kind, str(exc)) from None

    async def _exchange(self, body: dict[str, Any]) -> Any:
        start = self._timer.monotonic()
        headers = await self._headers()
        data = await retry_async(self._attempt, body, headers, attempts=self.attempts, retry_if=_retryable,
                                 sleep=self.sleep, clock=self.clock, initial=0.5, maximum=10.0)
        telemetry.histogram("ml.endpoint.duration", (self._timer.monotonic() - start) * 1000.0, kind=self.kind)
        return data

    async def _attempt(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        async with self.breaker:
            try:
                return await with_timeout(self._post(body, headers), self.timeout, f"{self.kind} endpoint call",
                                          clock=self.clock)
            except InferenceError as exc:
                if isinstance(exc, TransientInferenceError):
                    raise
                refused = exc  # the endpoint answered (400, 401, 404): healthy, whatever breaker we were given
        raise refused

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> Any:
        client = self._http()
        response = await client.post(self.url, json=body, headers=headers)
        status = response.status_code
        if status in _TRANSIENT:
            telemetry.increment("ml.endpoint.errors", status=status, kind=self.kind)
            raise TransientInferenceError(self.kind, f"HTTP {status}", status, _retry_after(response))
        if status >= 400:
            telemetry.increment("ml.endpoint.errors", status=status, kind=self.kind)
            raise InferenceError(self.kind, f"HTTP {status}: {clip(response.text)}", status)
        try:
            return response.json()
        except ValueError:
            raise InferenceError(self.kind, f"answer is not JSON: {clip(response.text)}", status) from None

    async def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key_secret is not None and self.secrets is not None:
            key = await self.secrets.get_secret(self.key_secret)
            if not key:
                raise ConfigError(f"ml.api_key_secret: secret {self.key_secret!r} is not set")
            headers.update(self.auth_headers(key))
        return headers

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            # Our own timeout (on the Clock) bounds each attempt; httpx's is a backstop for a hung socket.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout + 5.0))
        return self._client

    async def close(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    # --- what subclasses define ---------------------------------------------------------------------

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def payload(self, request: ReasoningRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, request: ReasoningRequest, data: Any) -> ReasoningResult:
        raise NotImplementedError

    def chat_payload(self, request: ChatRequest) -> dict[str, Any]:
        return openai_body(request, self.deployment or request.adapter_name or "default")

    def parse_chat(self, request: ChatRequest, data: Any) -> ChatResult:
        return parse_openai(data, adapter=request.adapter, default_model=self.deployment or self.kind)


class AzureMLEndpointReasoner(RemoteReasoner):
    """An Azure ML managed online endpoint's scoring URI (`https://<endpoint>.<region>.inference.ml.azure.com/score`).

    Sends `{"input_data": {"prompt", "system", "adapter", "parameters"}}` (what the AOS scoring script reads)
    with `Authorization: Bearer <endpoint key>` and, when `deployment` is set, `azureml-model-deployment` to pin
    a deployment. Reads `{"output": text}` (also a bare string or `[text]`).
    """

    kind = "azureml"

    def auth_headers(self, key: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        if self.deployment:
            headers["azureml-model-deployment"] = self.deployment
        return headers

    def payload(self, request: ReasoningRequest) -> dict[str, Any]:
        return {"input_data": request.to_dict()}

    def parse(self, request: ReasoningRequest, data: Any) -> ReasoningResult:
        if isinstance(data, list) and data:
            data = data[0]
        if isinstance(data, dict):
            text, usage = data.get("output"), data.get("usage") or {}
        else:
            text, usage = data, {}
        if not isinstance(text, str):
            raise InferenceError(self.kind, "answer has no text output")
        return ReasoningResult(text=text, adapter=request.adapter, model=self.deployment or self.kind,
                               usage={k: v for k, v in usage.items() if isinstance(v, int)})

    def chat_payload(self, request: ChatRequest) -> dict[str, Any]:
        # The scoring script gets the chat as `input_data` (an OpenAI-shaped body) and answers in that shape.
        return {"input_data": {**openai_body(request, self.deployment or request.adapter_name or "default"),
                               "adapter": request.adapter}}


class OpenAIChatReasoner(RemoteReasoner):
    """An OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, Azure OpenAI, vLLM, a serverless model).

    `model` is `deployment` when set, else the adapter name: servers with multi-LoRA (vLLM `--lora-modules
    ceo=...`) serve each adapter as a model of that name. `api_key_header="api-key"` for Azure OpenAI.
    """

    kind = "openai"

    def __init__(self, url: str, *, api_key_header: str = "Authorization", **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.api_key_header = api_key_header

    def auth_headers(self, key: str) -> dict[str, str]:
        if self.api_key_header.lower() == "authorization":
            return {"Authorization": f"Bearer {key}"}
        return {self.api_key_header: key}

    def payload(self, request: ReasoningRequest) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages.append({"role": "user", "content": request.prompt})
        model = self.deployment or request.adapter_name or "default"
        return {"model": model, "messages": messages, **request.parameters}

    def parse(self, request: ReasoningRequest, data: Any) -> ReasoningResult:
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise InferenceError(self.kind, "answer has no choices[0].message.content") from None
        if not isinstance(text, str):
            raise InferenceError(self.kind, "choices[0].message.content is not text")
        usage = data.get("usage") or {}
        return ReasoningResult(text=text, adapter=request.adapter, model=str(data.get("model") or self.kind),
                               usage={k: v for k, v in usage.items() if isinstance(v, int)})


COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
AZURE_OPENAI_API_VERSION = "2024-10-21"  # the GA data-plane version with tools


class AzureOpenAIChatReasoner(OpenAIChatReasoner):
    """Azure OpenAI: `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`.

    Authenticates with Microsoft Entra ID: a bearer token for the Cognitive Services scope from azure-identity
    (`credential`, default DefaultAzureCredential: the app's managed identity on Azure, `az login` locally;
    the credential caches and refreshes the token). When `key_secret` names an API key in the SecretStore, that
    key is sent as `api-key` instead. The request is the one the `openai` SDK's `AsyncAzureOpenAI` sends.
    """

    kind = "azure_openai"

    def __init__(self, endpoint: str, *, deployment: str | None = None,
                 api_version: str = AZURE_OPENAI_API_VERSION, credential: Any = None, **kwargs: Any) -> None:
        if not deployment:
            raise ConfigError("ml.deployment: required for azure_openai (the model deployment's name)")
        base = endpoint.split("?", 1)[0].rstrip("/")
        url = f"{base}/openai/deployments/{quote(deployment, safe='')}/chat/completions?api-version={api_version}"
        super().__init__(url, deployment=deployment, api_key_header="api-key", **kwargs)
        self._credential = credential
        self._own_credential = credential is None

    async def _headers(self) -> dict[str, str]:
        headers = await super()._headers()
        if self.key_secret is None:
            if self._credential is None:
                from azure.identity.aio import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
            token = await self._credential.get_token(COGNITIVE_SERVICES_SCOPE)
            headers["Authorization"] = f"Bearer {token.token}"
        return headers

    async def close(self) -> None:
        await super().close()
        if self._credential is not None and self._own_credential:
            await self._credential.close()
            self._credential = None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
