from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aos_core.config import AOSConfig, DispatchSettings, LifecycleSettings, StorageSettings
from aos_core.errors import ConfigError

# (section, key, environment variable, the section model, the values hypothesis may pick)
KEYS: list[tuple[str, str, str, type[Any], st.SearchStrategy[Any]]] = [
    ("dispatch", "max_live_agents", "AOS_DISPATCH__MAX_LIVE_AGENTS", DispatchSettings, st.integers(1, 10_000)),
    ("storage", "backend", "AOS_STORAGE__BACKEND", StorageSettings, st.sampled_from(["sqlite", "memory", "azure"])),
    ("lifecycle", "backoff_max", "AOS_LIFECYCLE__BACKOFF_MAX", LifecycleSettings,
     st.integers(0, 1000).map(float)),
]
DEFAULTS = [10_000, "sqlite", 300.0]
LAYERS = ("base_file", "site_file", "env", "override")


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


layer_values = st.tuples(*(st.fixed_dictionaries({layer: maybe(values) for layer in LAYERS})
                           for *_, values in KEYS))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60, deadline=None)
@given(chosen=layer_values, as_models=st.booleans())
def test_the_highest_layer_that_sets_a_key_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                chosen: tuple[dict[str, Any], ...], as_models: bool) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("AOS_CONFIG_DIR", str(folder))
    files: dict[str, dict[str, Any]] = {"10-base.json": {}, "20-site.json": {}}
    overrides: dict[str, Any] = {}
    for (section, key, env, model, _), values in zip(KEYS, chosen, strict=True):
        for file, layer in (("10-base.json", "base_file"), ("20-site.json", "site_file")):
            if values[layer] is not None:
                files[file].setdefault(section, {})[key] = values[layer]
        if values["env"] is None:
            monkeypatch.delenv(env, raising=False)
        else:
            monkeypatch.setenv(env, str(values["env"]))
        if values["override"] is not None:
            overrides[section] = model(**{key: values["override"]}) if as_models else {key: values["override"]}
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content))

    config = AOSConfig(**overrides)

    for (section, key, *_), values, default in zip(KEYS, chosen, DEFAULTS, strict=True):
        expected = next((values[layer] for layer in reversed(LAYERS) if values[layer] is not None), default)
        assert getattr(getattr(config, section), key) == expected, (section, key, values)
    # Partial layers never reset the rest of a section.
    assert (config.dispatch.durability, config.storage.connection) == ("commit", "AzureWebJobsStorage")
    assert config.lifecycle.max_restarts == 5


def test_no_files_no_environment_gives_the_defaults() -> None:
    config = AOSConfig()
    assert config.data_dir.name == "data"  # conftest points AOS_DATA_DIR at a temporary folder
    assert config.storage.backend == "sqlite" and config.messaging.events_topic == "agent.events"
    assert config.dispatch.max_live_agents == 10_000 and config.schedules == []
    assert config.agents.instances == [] and config.agents.load_entry_points is True
    assert config.storage_path() == config.data_dir / "state.db"
    assert config.bus_path() == config.data_dir / "bus.db"


def test_paths_can_be_set_and_the_config_folder_defaults_to_config_under_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AOS_CONFIG_DIR")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "app.json").write_text(json.dumps({"storage": {"path": "elsewhere/s.db"}}))
    config = AOSConfig(messaging={"path": "b.db"})
    assert config.storage_path() == Path("elsewhere/s.db")
    assert config.bus_path() == Path("b.db")


def test_files_merge_in_name_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    (tmp_path / "10-base.json").write_text(json.dumps({"dispatch": {"idle_timeout": 10, "dedupe_window": 5}}))
    (tmp_path / "20-site.json").write_text(json.dumps({"dispatch": {"idle_timeout": 20}}))
    (tmp_path / "notes.txt").write_text("not config")
    config = AOSConfig()
    assert (config.dispatch.idle_timeout, config.dispatch.dedupe_window) == (20, 5)


def test_sections_lists_and_nested_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    (tmp_path / "app.json").write_text(json.dumps({
        "agents": {"types": {"ceo": "agents.business:CEOAgent"},
                   "instances": [{"type": "ceo", "id": "ceo", "depends_on": ["cfo"]}]},
        "schedules": [{"id": "daily", "cron": "0 0 9 * * *", "event_type": "report.due", "data": {"k": 1}}]}))
    monkeypatch.setenv("AOS_AGENTS__TYPES__CFO", "agents.business:CFOAgent")
    config = AOSConfig()
    assert config.agents.types == {"ceo": "agents.business:CEOAgent", "cfo": "agents.business:CFOAgent"}
    assert config.agents.instances[0].depends_on == ["cfo"] and config.agents.instances[0].config == {}
    assert config.schedules[0].data == {"k": 1} and config.schedules[0].enabled
    # A list is a value: the higher layer replaces it whole.
    monkeypatch.setenv("AOS_SCHEDULES", json.dumps([{"id": "hourly", "cron": "0 0 * * * *", "event_type": "t"}]))
    assert [s.id for s in AOSConfig().schedules] == ["hourly"]


@pytest.mark.parametrize(("where", "expected"), [
    ("env", "(from environment AOS_DISPATCH__MAX_LIVE_AGENTS)"),
    ("env-json", "(from environment AOS_DISPATCH)"),
    ("file", "app.json)"),
    ("override", "(from runtime override)"),
])
def test_a_bad_value_names_key_problem_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str,
                                                  expected: str) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    # A good value in a lower layer must not be blamed for the bad one above it.
    (tmp_path / "00-good.json").write_text(json.dumps({"dispatch": {"max_live_agents": 5}}))
    kwargs = {}
    if where == "env":
        monkeypatch.setenv("AOS_DISPATCH__MAX_LIVE_AGENTS", "lots")
    elif where == "env-json":
        monkeypatch.setenv("AOS_DISPATCH", json.dumps({"max_live_agents": "lots"}))
    elif where == "file":
        (tmp_path / "app.json").write_text(json.dumps({"dispatch": {"max_live_agents": "lots"}}))
    else:
        kwargs = {"dispatch": {"max_live_agents": "lots"}}
    with pytest.raises(ConfigError) as error:
        AOSConfig(**kwargs)
    message = str(error.value)
    assert message.startswith("dispatch.max_live_agents: Input should be a valid integer")
    assert message.endswith(expected)


def test_constraint_and_list_item_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"^dispatch\.max_live_agents: Input should be greater than or equal "
                                          r"to 1 \(from environment AOS_DISPATCH__MAX_LIVE_AGENTS\)$"):
        monkeypatch.setenv("AOS_DISPATCH__MAX_LIVE_AGENTS", "0")
        AOSConfig()
    monkeypatch.delenv("AOS_DISPATCH__MAX_LIVE_AGENTS")
    (tmp_path / "app.json").write_text(json.dumps({"schedules": [{"id": "x", "cron": "* * * * *"}]}))
    with pytest.raises(ConfigError, match=r"schedules\.0\.event_type: Field required \(from .*app\.json\)"):
        AOSConfig()
    with pytest.raises(ConfigError, match=r"storage\.backend: .*'memory', 'azure' or 'cosmos' \(from runtime"):
        AOSConfig(storage=StorageSettings.model_construct(backend="s3", _fields_set={"backend"}))


def test_environment_json_that_does_not_parse_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_AGENTS__TYPES", "not json")
    with pytest.raises(ConfigError, match=r"^agents: not valid JSON.*\(from environment AOS_AGENTS__TYPES\)$"):
        AOSConfig()


def test_unknown_keys_are_errors_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    (tmp_path / "app.json").write_text(json.dumps({"dispatch": {"max_live_agent": 5}}))
    with pytest.raises(ConfigError, match=r"^dispatch\.max_live_agent: Extra inputs are not permitted \(from .*app"):
        AOSConfig()
    (tmp_path / "app.json").write_text(json.dumps({"dispatchh": {}}))
    with pytest.raises(ConfigError, match=r"^dispatchh: Extra inputs .*app\.json\)$"):
        AOSConfig()
    (tmp_path / "app.json").unlink()
    with pytest.raises(ConfigError, match=r"^storagee: Extra inputs are not permitted \(from runtime override\)$"):
        AOSConfig(storagee={})


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\udcff"])
def test_broken_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    (tmp_path / "app.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError, match=r"app\.json: "):
        AOSConfig()


@pytest.mark.parametrize(("url", "valid"), [
    ("https://kv-aos.vault.azure.net/", True),
    ("https://kv-aos.vault.azure.net:443", True),
    ("http://kv-aos.vault.azure.net/", False),  # secrets only over TLS
    ("https://kv-aos.vault.azure.net:\u0664\u0664\u0663", False),  # Arabic-Indic digits are no port
])
def test_a_key_vault_url_is_https_and_a_host_with_an_ascii_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, valid: bool) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("AOS_KEYVAULT__URL", url)
    if valid:
        assert AOSConfig().keyvault.url == url
    else:
        with pytest.raises(ConfigError, match=r"^keyvault\.url: String should match pattern .*AOS_KEYVAULT__URL\)$"):
            AOSConfig()
