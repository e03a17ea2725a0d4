from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aos_core.errors import ConfigError
from services.devhost.index import index_functions, load_app
from services.devhost.settings import load_host_settings, resolve


def test_local_settings_values_become_environment_without_overriding(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"DEVHOST_A": "from-file", "DEVHOST_B": 2}}))
    (tmp_path / "local.settings.json.example").write_text(json.dumps({"Values": {"DEVHOST_C": "example"}}))
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"http": {"routePrefix": "/v1/"},
                                                                   "serviceBus": {"maxConcurrentCalls": 4}}}))
    monkeypatch.setenv("DEVHOST_B", "from-env")
    monkeypatch.delenv("DEVHOST_A", raising=False)
    monkeypatch.delenv("DEVHOST_C", raising=False)
    monkeypatch.setenv("AOS_DEVHOST__FUNCTION_KEY", "fk")
    settings = load_host_settings(tmp_path, tmp_path / "data", port=7999)
    assert (os.environ["DEVHOST_A"], os.environ["DEVHOST_B"]) == ("from-file", "from-env")
    assert "DEVHOST_C" not in os.environ  # the example is read only when local.settings.json is missing
    assert (settings.route_prefix, settings.max_concurrent_calls, settings.function_key) == ("v1", 4, "fk")
    assert os.environ["AOS_DATA_DIR"] == str(tmp_path / "data")
    assert resolve("%DEVHOST_A%-x", "test") == "from-file-x"
    with pytest.raises(ConfigError, match="DEVHOST_MISSING"):
        resolve("%DEVHOST_MISSING%", "function f")


def test_generated_keys_are_kept_in_the_data_folder(tmp_path: Path) -> None:
    first = load_host_settings(tmp_path, tmp_path / "data")
    again = load_host_settings(tmp_path, tmp_path / "data")
    assert first.function_key and first.function_key == again.function_key and first.master_key == again.master_key
    assert first.function_key != first.master_key


def test_bad_settings_files_and_apps_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text("{nope")
    with pytest.raises(ConfigError, match=r"local\.settings\.json"):
        load_host_settings(tmp_path, tmp_path / "data")
    with pytest.raises(ConfigError, match="cannot import"):
        load_app("no_such_module_here:app", tmp_path)
    with pytest.raises(ConfigError, match="no FunctionApp"):
        load_app("json:app", tmp_path)


def test_the_index_reads_triggers_and_durable_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.services.devhost.apps.sample_app import build_app

    app, _ = build_app()
    specs = {s.name: s for s in index_functions(app)}
    assert specs["count_add"].durable_clients == ["client"] and specs["count_add"].is_async
    assert not specs["hello"].is_async and specs["counter"].trigger_type == "entityTrigger"
    assert specs["beat"].describe() == "timer %SAMPLE_SCHEDULE%"
    # The SDK indexes once (a second get_functions() raises); the index is kept on the app and reused.
    assert [s.name for s in index_functions(app)] == list(specs)


def test_generated_keys_include_the_system_key_and_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    for name in ("FUNCTION", "MASTER", "SYSTEM"):
        monkeypatch.delenv(f"AOS_DEVHOST__{name}_KEY", raising=False)
    settings = load_host_settings(tmp_path, tmp_path / "data")
    path = tmp_path / "data" / "host_keys.json"
    assert json.loads(path.read_text())["system"] == settings.system_key == settings.durable_key
    assert len({settings.function_key, settings.master_key, settings.system_key}) == 3
    assert path.stat().st_mode & 0o777 == 0o600 and not settings.open_webhooks


def test_limits_and_the_open_webhooks_switch_come_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.setenv("AOS_DEVHOST__OPEN_WEBHOOKS", "true")
    monkeypatch.setenv("AOS_DEVHOST__MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("AOS_DEVHOST__HEADER_TIMEOUT", "2.5")
    settings = load_host_settings(tmp_path, tmp_path / "data")
    assert (settings.open_webhooks, settings.max_body_bytes, settings.header_timeout) == (True, 1000, 2.5)
    monkeypatch.setenv("AOS_DEVHOST__OPEN_WEBHOOKS", "maybe")
    with pytest.raises(ConfigError, match="OPEN_WEBHOOKS"):
        load_host_settings(tmp_path, tmp_path / "data")
    monkeypatch.setenv("AOS_DEVHOST__OPEN_WEBHOOKS", "0")
    monkeypatch.setenv("AOS_DEVHOST__BODY_TIMEOUT", "-1")
    with pytest.raises(ConfigError, match="BODY_TIMEOUT"):
        load_host_settings(tmp_path, tmp_path / "data")
