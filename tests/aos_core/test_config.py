from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aos_core.config import AOSConfig
from aos_core.errors import ConfigError

layer = st.none() | st.integers(min_value=1, max_value=10_000)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(file_value=layer, env_value=layer, override=layer)
def test_the_highest_layer_that_sets_a_key_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                file_value: int | None, env_value: int | None,
                                                override: int | None) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    monkeypatch.setenv("AOS_CONFIG_DIR", str(folder))
    monkeypatch.delenv("AOS_DISPATCH__MAX_LIVE_AGENTS", raising=False)
    if file_value is not None:
        (folder / "app.json").write_text(json.dumps({"dispatch": {"max_live_agents": file_value}}))
    if env_value is not None:
        monkeypatch.setenv("AOS_DISPATCH__MAX_LIVE_AGENTS", str(env_value))
    kwargs = {"dispatch": {"max_live_agents": override}} if override is not None else {}
    expected = next((v for v in (override, env_value, file_value) if v is not None), 10_000)
    config = AOSConfig(**kwargs)
    assert config.dispatch.max_live_agents == expected
    assert config.dispatch.durability == "commit"  # a partial override keeps the rest of the section


def test_files_merge_in_name_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    (tmp_path / "10-base.json").write_text(json.dumps({"dispatch": {"idle_timeout": 10, "dedupe_window": 5}}))
    (tmp_path / "20-site.json").write_text(json.dumps({"dispatch": {"idle_timeout": 20}}))
    config = AOSConfig()
    assert (config.dispatch.idle_timeout, config.dispatch.dedupe_window) == (20, 5)


@pytest.mark.parametrize(("where", "expected"), [
    ("env", "environment AOS_DISPATCH__MAX_LIVE_AGENTS"), ("file", "app.json"), ("override", "runtime override")])
def test_a_bad_value_names_key_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str,
                                          expected: str) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    kwargs = {}
    if where == "env":
        monkeypatch.setenv("AOS_DISPATCH__MAX_LIVE_AGENTS", "lots")
    elif where == "file":
        (tmp_path / "app.json").write_text(json.dumps({"dispatch": {"max_live_agents": "lots"}}))
    else:
        kwargs = {"dispatch": {"max_live_agents": "lots"}}
    with pytest.raises(ConfigError, match=r"dispatch\.max_live_agents") as error:
        AOSConfig(**kwargs)
    assert expected in str(error.value)


def test_unknown_keys_and_broken_files_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(tmp_path))
    (tmp_path / "app.json").write_text(json.dumps({"dispatch": {"max_live_agent": 5}}))
    with pytest.raises(ConfigError, match="max_live_agent"):
        AOSConfig()
    (tmp_path / "app.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"app\.json"):
        AOSConfig()
