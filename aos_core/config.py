"""AOSConfig: defaults < config/*.json < environment (AOS_ prefix, __ nesting) < runtime overrides.

Layers deep-merge: a layer that sets `dispatch.idle_timeout` leaves the rest of `dispatch` to the layers
below it. Lists (`schedules`, `agents.instances`) are values, not sections: the highest layer that sets one
replaces it whole. A bad value raises ConfigError naming the dotted key, the problem and the layer it came
from, e.g. `dispatch.max_live_agents: Input should be a valid integer (from environment
AOS_DISPATCH__MAX_LIVE_AGENTS)`. Unknown keys are errors in every layer, so a typo never passes silently.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from aos_core.errors import ConfigError
from aos_core.overrides import apply_by_id, json_values

ENV_PREFIX = "AOS_"
_MISSING = object()


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
    dedupe_window: int = Field(default=128, ge=1)  # recent ids kept in the context: a fast path, not the truth
    commit_retries: int = Field(default=5, ge=0)
    max_attempts: int = Field(default=3, ge=1)  # handlings of one event before it is failed and dead-lettered
    handler_timeout: float = Field(default=300.0, gt=0)  # seconds one handling may take before it is cancelled
    block_threshold: float = Field(default=1.0, gt=0)  # seconds the kernel loop may stall before it is reported


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

    url: str | None = Field(default=None, pattern=r"^https://[A-Za-z0-9.-]+(:\d+)?/?$")
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


def config_dir() -> Path:
    """The folder whose `*.json` files are read: `AOS_CONFIG_DIR`, default `config/` under the cwd."""
    return Path(os.environ.get("AOS_CONFIG_DIR", "config"))


def read_config_files(folder: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """`(file name, content)` for every `*.json` in the folder, in file-name order; ConfigError names a bad file."""
    folder = config_dir() if folder is None else folder
    layers = []
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read config file: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: a config file must hold a JSON object, not {type(data).__name__}")
        layers.append((str(file), data))
    return layers


def deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    """`high` over `low`, merging nested dicts key by key (any other value in `high` replaces)."""
    out = dict(low)
    for key, value in high.items():
        below = out.get(key)
        out[key] = deep_merge(below, value) if isinstance(value, dict) and isinstance(below, dict) else value
    return out


class JsonFilesSource(PydanticBaseSettingsSource):
    """Every *.json in the config folder, in file-name order, deep-merged (later files win)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole layer at once

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for _, data in read_config_files():
            merged = deep_merge(merged, data)
        return merged


class AOSConfig(BaseSettings):
    """All AOS settings: `AOSConfig()` reads config files and environment; keyword arguments override both.

    Overrides may be dicts or section models (`storage=StorageSettings(backend="memory")`); either way only
    the keys they set override the layers below. A bad value raises ConfigError naming key and source.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid",
                                      nested_model_default_partial_update=True)

    data_dir: Path = Path(".aos")  # where the embedded SQLite files live
    storage: StorageSettings = Field(default_factory=StorageSettings)
    messaging: MessagingSettings = Field(default_factory=MessagingSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    agents: AgentsSettings = Field(default_factory=AgentsSettings)
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    api: ApiSettings = Field(default_factory=ApiSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    keyvault: KeyVaultSettings = Field(default_factory=KeyVaultSettings)
    ml: MLSettings = Field(default_factory=MLSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    # Per schedule id, fields that replace that schedule's (AOS_SCHEDULE_OVERRIDES__CFO_VARIANCE_REPORT__CRON).
    schedule_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def __init__(self, **overrides: Any) -> None:
        # A section model passed as an override would replace the whole section; only what it set counts.
        overrides = {key: _set_fields(value) for key, value in overrides.items()}
        try:
            super().__init__(**overrides)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, overrides)) from None
        except SettingsError as exc:  # an environment value that should be JSON and is not
            field = m.group(1) if (m := re.search(r'field "(\w+)"', str(exc))) else ""
            names = sorted(n for n in os.environ if n.upper().startswith(f"{ENV_PREFIX}{field.upper()}"))
            raise ConfigError(f"{field}: not valid JSON: {exc.__cause__ or exc} (from environment "
                              f"{', '.join(names)})") from None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first. No .env or secrets-dir layers: Functions app settings arrive as environment variables.
        return init_settings, env_settings, JsonFilesSource(settings_cls)

    @model_validator(mode="after")
    def _apply_overrides(self) -> AOSConfig:
        self.agents.instances = apply_by_id(self.agents.instances, "agents.overrides", self.agents.overrides,
                                            _override_agent)
        self.schedules = apply_by_id(self.schedules, "schedule_overrides", self.schedule_overrides,
                                     _override_schedule)
        return self

    def storage_path(self) -> Path:
        """The SQLite state file: `storage.path`, default `data_dir/state.db`."""
        return self.storage.path or self.data_dir / "state.db"

    def bus_path(self) -> Path:
        """The SQLite bus file: `messaging.path`, default `data_dir/bus.db`."""
        return self.messaging.path or self.data_dir / "bus.db"


def _override_agent(spec: AgentSpec, override: dict[str, Any]) -> AgentSpec:
    return spec.model_copy(update={"config": deep_merge(spec.config, json_values(override))})


def _override_schedule(spec: ScheduleSpec, override: dict[str, Any]) -> ScheduleSpec:
    if "id" in override:
        raise ValueError(f"schedule_overrides: the id of schedule {spec.id!r} cannot be overridden")
    return ScheduleSpec.model_validate({**spec.model_dump(exclude_unset=True), **override})


def _set_fields(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {k: _set_fields(getattr(value, k)) for k in value.model_fields_set}
    if isinstance(value, dict):
        return {k: _set_fields(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_set_fields(v) for v in value]
    return value


# --- where a bad value came from ---------------------------------------------------------------------


def _explain(exc: ValidationError, overrides: dict[str, Any]) -> str:
    env = _environment_layer()
    layers = [("runtime override", overrides), ("environment", env)]
    layers += [(name, data) for name, data in reversed(read_config_files())]  # later files are higher
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        if not loc:  # a check across sections (overrides): its message names the keys itself
            lines.append(error["msg"])
            continue
        source = _origin(layers, loc)
        if source == "environment":
            source = f"environment {_env_name(loc)}"
        key = ".".join(str(part) for part in loc)
        lines.append(f"{key}: {error['msg']} (from {source})")
    return "; ".join(lines)


def _origin(layers: list[tuple[str, Any]], loc: list[Any]) -> str:
    """The layer whose value ends up at `loc`, following the same deep merge the settings sources use."""
    contributing = layers  # highest first; each value is that layer's node at the current depth
    for part in loc:
        present = [(name, child) for name, node in contributing
                   if (child := _child(node, part)) is not _MISSING]
        if not present:
            break  # a missing required key: blame the layer that supplied its parent
        # Dicts merge with the dicts below them; anything else hides every lower layer.
        run = []
        for name, child in present:
            if run and not isinstance(child, dict):
                break
            run.append((name, child))
            if not isinstance(child, dict):
                break
        contributing = run
    return contributing[0][0] if contributing is not layers else "default"


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def _environment_layer() -> dict[str, Any]:
    # The same nesting pydantic-settings applies (case-insensitive, `__` nesting, JSON for complex values),
    # rebuilt here only to find which variable a bad value came from.
    layer: dict[str, Any] = {}
    for name, raw in sorted(os.environ.items()):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[path[-1]] = value
    return layer


def _env_name(loc: list[Any]) -> str:
    upper = {name.upper(): name for name in os.environ}
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            break  # a list is one variable holding JSON
        parts.append(str(part))
    for depth in range(len(parts), 0, -1):
        candidate = ENV_PREFIX + "__".join(parts[:depth]).upper()
        if candidate in upper:
            return upper[candidate]
    return ENV_PREFIX + "__".join(parts).upper()
