"""The sections of AOSConfig, one pydantic model each: storage, messaging, dispatch, lifecycle, api, auth,
key vault, governance, ML, learning, MCP, agents and schedules. Unknown keys are errors (`extra="forbid"`).
`aos_core.config` composes them and loads the layers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Section):
    backend: Literal["sqlite", "memory", "azure", "cosmos"] = "sqlite"
    path: Path | None = None  # None: data_dir/state.db
    connection: str = "AzureWebJobsStorage"  # the app setting that holds the connection string
    # backend "cosmos": the Cosmos DB connection (`<name>__accountEndpoint`, ...) and the database it uses
    cosmos_connection: str = "CosmosDBConnection"
    cosmos_database: str = Field(default="aos", min_length=1, max_length=255, pattern=r"^[^/\\?#]+$")


class MessagingSettings(_Section):
    backend: Literal["sqlite", "servicebus"] = "sqlite"
    path: Path | None = None  # None: data_dir/bus.db
    connection: str = "ServiceBusConnection"
    # The topics the Service Bus triggers read (`%AOS_EVENTS_TOPIC%`, `%AOS_MESSAGES_TOPIC%` in function_app)
    # are the ones published to, so both come from those app settings.
    events_topic: str = Field(default_factory=lambda: os.environ.get("AOS_EVENTS_TOPIC", "agent.events"))
    messages_topic: str = Field(default_factory=lambda: os.environ.get("AOS_MESSAGES_TOPIC", "agent.messages"))
    max_delivery_count: int = Field(default=10, ge=1)
    lock_duration: float = Field(default=30.0, gt=0)

    def topic(self, *, direct: bool) -> str:
        """The topic of direct messages to one agent (`direct`) or of events routed by subscriptions."""
        return self.messages_topic if direct else self.events_topic


class DispatchSettings(_Section):
    max_live_agents: int = Field(default=10_000, ge=1)
    idle_timeout: float = Field(default=300.0, gt=0)
    durability: Literal["commit", "memory"] = "commit"
    dedupe_window: int = Field(default=16, ge=1)  # recent ids kept in the context: a fast path, not the truth
    commit_retries: int = Field(default=5, ge=0)
    max_attempts: int = Field(default=3, ge=1)  # handlings of one event before it is failed and dead-lettered
    handler_timeout: float = Field(default=300.0, gt=0)  # seconds one handling may take before it is cancelled
    block_threshold: float = Field(default=1.0, gt=0)  # seconds the kernel loop may stall before it is reported
    # allocations between young collections of a hosting process's garbage collector (aos_core/gc_tuning.py);
    # 0 leaves Python's defaults
    gc_threshold: int = Field(default=200_000, ge=0)


class LifecycleSettings(_Section):
    health_interval: float = Field(default=30.0, gt=0)
    max_restarts: int = Field(default=5, ge=0)
    backoff_initial: float = Field(default=1.0, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    backoff_max: float = Field(default=300.0, ge=0)


class ApiSettings(_Section):
    """The HTTP API (`aos_core.api`): request limits."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)  # larger bodies get 413
    max_wait: float = Field(default=30.0, gt=0)  # the largest `?wait=` a caller may ask for, in seconds
    max_batch: int = Field(default=100, ge=1)  # events in one POST /api/events batch
    event_retention: float = Field(default=7 * 86_400.0, gt=0)  # seconds an accepted event's record is kept


class AuthSettings(_Section):
    """Who may do what over HTTP: app roles `reader` < `operator` < `admin`."""

    key_roles: str = "admin"  # comma-separated roles of a caller with a function key and no principal
    # Trust `X-MS-CLIENT-PRINCIPAL` only behind App Service authentication (which sets WEBSITE_AUTH_ENABLED and
    # strips the header from callers); None: decide by that variable.
    trust_principal_header: bool | None = None


class KeyVaultSettings(_Section):
    """Key Vault for secrets (AOS_KEYVAULT__URL); unset: secrets come from the environment only."""

    # [0-9], not \d: in the pattern's regex engine \d takes any script's digits
    url: str | None = Field(default=None, pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]+)?/?$")
    client_id: str | None = None  # a user-assigned managed identity; None: DefaultAzureCredential


class GovernanceSettings(_Section):
    """Audit log, policies, alert rules and idempotency keys (services.governance, services.observability).

    `policies` and `alerts` are lists of rule objects validated by those packages when they load them
    (an error names `governance.policies[i]...`), so aos_core needs no knowledge of rule kinds.
    """

    audit_backend: Literal["sqlite", "table", "none"] = "sqlite"  # none: no audit log (benchmarks only)
    audit_path: Path | None = None  # None: data_dir/audit.db
    audit_table: str = "aosaudit"  # the Table Storage table when audit_backend is "table"
    audit_hmac_secret: str | None = None  # SecretStore name of the HMAC key for entry hashes (None: plain SHA-256)
    policies: list[dict[str, Any]] = Field(default_factory=list)
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    idempotency_ttl: float = Field(default=86_400.0, gt=0)  # seconds an Idempotency-Key is remembered


class MLSettings(_Section):
    """Inference and Azure ML (services.ml): which Reasoner serves agents, its cache, and the training target.

    `reasoner` is `local` (deterministic, rule-based, no model download), `azureml` (an online endpoint's
    scoring URI), `openai` (an OpenAI-compatible chat completions endpoint) or `azure_openai` (an Azure OpenAI
    resource endpoint; Entra ID unless `api_key_secret` is set). Keys are SecretStore names.
    """

    reasoner: Literal["local", "azureml", "openai", "azure_openai"] = "local"
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    # azureml: the `azureml-model-deployment` header; openai: the model name; azure_openai: the deployment
    deployment: str | None = None
    api_version: str = "2024-10-21"  # azure_openai: the data-plane `api-version`
    api_key_secret: str | None = None  # SecretStore name of the endpoint key
    # The local reasoner's tool calls in a chat: [{"pattern": regex, "tool": name, "arguments": {...}}]
    tool_rules: list[dict[str, Any]] = Field(default_factory=list)
    timeout: float = Field(default=30.0, gt=0)
    attempts: int = Field(default=3, ge=1)
    cache_ttl: float = Field(default=3600.0, ge=0)  # 0: no caching
    cache_max_entries: int = Field(default=10_000, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_timeout: float = Field(default=60.0, ge=0)
    subscription_id: str | None = None  # the Azure ML workspace, for `aos ml train/deploy` without --dry-run
    resource_group: str | None = None
    workspace: str | None = None
    compute: str = "gpu-cluster"
    training_environment: str = "azureml:aos-lora-training@latest"
    serving_environment: str = "azureml:aos-lora-serving@latest"
    instance_type: str = "Standard_NC6s_v3"
    base_model: str = "azureml:aos-base-model@latest"


class LearningSettings(_Section):
    """Self-learning (services.learning): DPO datasets from feedback and when new pairs trigger training."""

    enabled: bool = True
    min_new_pairs: int = Field(default=200, ge=1)  # new preference pairs per adapter before a training job
    min_interval: float = Field(default=86_400.0, ge=0)  # seconds between two jobs for one adapter
    validation_fraction: float = Field(default=0.1, ge=0, lt=1)
    min_score_margin: float = Field(default=0.2, ge=0, le=1)  # scored answers closer than this make no pair
    auto_submit: bool = False  # False: a due job is written as a dry run for an operator to submit
    beta: float = Field(default=0.1, gt=0)  # the DPO temperature passed to the training job
    epochs: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=5e-6, gt=0)


class McpSettings(_Section):
    """MCP servers agents may call (services.mcp.client), by name; an agent's config lists the ones it uses.

    Each server: `{"command": ..., "args": [...]}` (stdio) or `{"url": ..., "headers": {...},
    "secret_headers": {"Authorization": "secret-name"}}` (streamable HTTP), plus `timeout`, `attempts`,
    `failure_threshold`, `reset_timeout`. Checked by services.mcp.client when an agent's toolbox is built.
    """

    servers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # The OS's own endpoint `/api/mcp` (services.mcp.http). A browser page may call it only from these origins
    # (`scheme://host[:port]`, a `:*` port wildcard allowed) besides loopback and the app's own host names.
    allowed_origins: list[str] = Field(default_factory=list)
    # No MCP request runs longer than this, whatever it waits for; it must exceed `api.max_wait`.
    max_request_seconds: float = Field(default=60.0, gt=0, le=600)


class AgentSpec(_Section):
    """One agent instance the kernel registers and starts at initialize (dependencies first)."""

    type: str
    id: str
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)


class AgentsSettings(_Section):
    builtin_types: bool = True  # the types shipped in agents/ (agents.builtin): tally, ceo, cfo, cto
    load_entry_points: bool = True  # agent types of installed plugin packages (`aos.agents` entry point group)
    types: dict[str, str] = Field(default_factory=dict)  # type name -> "module:Class"
    instances: list[AgentSpec] = Field(default_factory=list)
    # Per agent id, keys deep-merged over that instance's `config`, so an app setting can change one value
    # (AOS_AGENTS__OVERRIDES__CFO__BUDGETS__PRODUCT=250000) without restating the whole `instances` list.
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ScheduleSpec(_Section):
    """A timer: `cron` is NCRONTAB (six fields, seconds first, like Functions timers) or five-field cron."""

    # The id becomes a storage key, an event id and a source path: keep it to URL-safe characters.
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    cron: str
    event_type: str
    subject: str | None = None
    data: Any = None
    enabled: bool = True
