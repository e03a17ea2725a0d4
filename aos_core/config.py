"""AOSConfig: defaults < config/*.json < environment (AOS_ prefix, __ nesting) < runtime overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from aos_core.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Section):
    backend: Literal["sqlite", "memory", "azure"] = "sqlite"
    path: Path | None = None
    connection: str = "AzureWebJobsStorage"


class MessagingSettings(_Section):
    backend: Literal["sqlite", "servicebus"] = "sqlite"
    path: Path | None = None
    connection: str = "ServiceBusConnection"
    events_topic: str = "agent.events"
    messages_topic: str = "agent.messages"
    max_delivery_count: int = Field(default=10, ge=1)
    lock_duration: float = Field(default=30.0, gt=0)


class DispatchSettings(_Section):
    max_live_agents: int = Field(default=10_000, ge=1)
    idle_timeout: float = Field(default=300.0, gt=0)
    durability: Literal["commit", "memory"] = "commit"
    dedupe_window: int = Field(default=128, ge=1)
    commit_retries: int = Field(default=5, ge=0)


class LifecycleSettings(_Section):
    health_interval: float = Field(default=30.0, gt=0)
    max_restarts: int = Field(default=5, ge=0)
    backoff_initial: float = Field(default=1.0, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    backoff_max: float = Field(default=300.0, ge=0)


class AgentSpec(_Section):
    type: str
    id: str
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)


class AgentsSettings(_Section):
    load_entry_points: bool = True
    types: dict[str, str] = Field(default_factory=dict)
    instances: list[AgentSpec] = Field(default_factory=list)


class ScheduleSpec(_Section):
    id: str
    cron: str
    event_type: str
    subject: str | None = None
    data: Any = None
    enabled: bool = True


def config_dir() -> Path:
    return Path(os.environ.get("AOS_CONFIG_DIR", "config"))


def _deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


class JsonFilesSource(PydanticBaseSettingsSource):
    """Every *.json in the config folder, in file-name order, deep-merged."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.origins: dict[str, str] = {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        folder = config_dir()
        for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                data = json.loads(file.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{file}: not valid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ConfigError(f"{file}: must hold a JSON object")
            for key in _leaf_keys(data):
                self.origins[key] = str(file)
            merged = _deep_merge(merged, data)
        return merged


def _leaf_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, dict):
            keys.extend(_leaf_keys(value, dotted + "."))
    return keys


class AOSConfig(BaseSettings):
    """All AOS settings. A bad value raises ConfigError naming the key and the source it came from."""

    model_config = SettingsConfigDict(env_prefix="AOS_", env_nested_delimiter="__", extra="forbid",
                                      nested_model_default_partial_update=True)

    data_dir: Path = Path(".aos")
    storage: StorageSettings = Field(default_factory=StorageSettings)
    messaging: MessagingSettings = Field(default_factory=MessagingSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    agents: AgentsSettings = Field(default_factory=AgentsSettings)
    schedules: list[ScheduleSpec] = Field(default_factory=list)

    def __init__(self, **overrides: Any) -> None:
        try:
            super().__init__(**overrides)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, overrides)) from None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, JsonFilesSource(settings_cls)

    def storage_path(self) -> Path:
        return self.storage.path or self.data_dir / "state.db"

    def bus_path(self) -> Path:
        return self.messaging.path or self.data_dir / "bus.db"


def _explain(exc: ValidationError, overrides: dict[str, Any]) -> str:
    files = JsonFilesSource(AOSConfig)
    try:
        files()
    except ConfigError as bad_file:
        return str(bad_file)
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"] if not isinstance(p, int)]
        key = ".".join(str(p) for p in error["loc"])
        lines.append(f"{key}: {error['msg']} (from {_origin(loc, overrides, files.origins)})")
    return "; ".join(lines)


def _origin(loc: list[str], overrides: dict[str, Any], file_origins: dict[str, str]) -> str:
    for depth in range(len(loc), 0, -1):
        dotted = ".".join(loc[:depth])
        node: Any = overrides
        for part in loc[:depth]:
            node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is not None:
            return "runtime override"
        env = "AOS_" + "__".join(p.upper() for p in loc[:depth])
        if env in os.environ:
            return f"environment {env}"
        if dotted in file_origins:
            return file_origins[dotted]
    return "default"
