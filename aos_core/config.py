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
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from aos_core.config_sections import (
    AgentSpec,
    AgentsSettings,
    ApiSettings,
    AuthSettings,
    DispatchSettings,
    GovernanceSettings,
    KeyVaultSettings,
    LearningSettings,
    LifecycleSettings,
    McpSettings,
    MessagingSettings,
    MLSettings,
    ScheduleSpec,
    StorageSettings,
)
from aos_core.errors import ConfigError
from aos_core.overrides import apply_by_id, json_values

ENV_PREFIX = "AOS_"
_MISSING = object()


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
