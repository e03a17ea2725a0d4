"""`aos ml ...` through the real `aos` entry point: the registry on the local StateStore, YAML on --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from services.cli.main import main


def test_cli_train_and_deploy_dry_run_write_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "yaml"
    assert main(["ml", "adapters", "register", "ceo", "1.3.0", "--base-model", "azureml:llama-3-8b-instruct:2",
                 "--artifact-uri", "azureml://datastores/workspaceblobstore/paths/adapters/ceo/1.3.0",
                 "--metric", "win_rate=0.6"]) == 0
    assert main(["ml", "adapters", "promote", "ceo", "1.3.0"]) == 0
    capsys.readouterr()

    assert main(["ml", "train", "--adapter", "ceo", "--version", "1.4.0", "--data", "azureml:aos-dpo-ceo:7",
                 "--dry-run", "--out", str(out), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    job = yaml.safe_load(Path(files[0]).read_text(encoding="utf-8"))
    assert job["inputs"]["adapter"]["path"] == "azureml:aos-adapter-ceo:1.3.0"  # starts from production
    assert job["inputs"]["preference_data"]["path"] == "azureml:aos-dpo-ceo:7"
    assert job["compute"] == "azureml:gpu-cluster"

    assert main(["ml", "deploy", "--adapter", "ceo", "--dry-run", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["adapter"] == "ceo@1.3.0"
    names = sorted(p.rsplit("/", 1)[-1] for p in result["files"])
    assert names == ["deployment.yaml", "endpoint.yaml", "model.yaml"]
    deployment = yaml.safe_load((out / "deployment.yaml").read_text(encoding="utf-8"))
    assert deployment["model"] == "azureml:aos-adapter-ceo:1.3.0"


def test_cli_errors_are_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ml", "deploy", "--adapter", "ceo", "--dry-run"]) == 2
    assert "no production version" in capsys.readouterr().err
    assert main(["ml", "train", "--adapter", "ceo", "--version", "1.0.0", "--data", "d:1"]) == 2
    assert "ml.subscription_id" in capsys.readouterr().err  # no workspace configured, no --dry-run


def test_people_get_a_table_and_fields_scripts_get_one_line_of_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ml", "adapters", "list"]) == 0
    assert capsys.readouterr().out == "no adapters registered\n"
    assert main(["ml", "adapters", "register", "cfo", "1.0.0", "--base-model", "azureml:base:1",
                 "--metric", "win_rate=0.6"]) == 0
    shown = capsys.readouterr().out
    assert "stage:" in shown and "staging" in shown and "{" not in shown.splitlines()[0]
    assert main(["ml", "adapters", "register", "cfo", "1.1.0", "--base-model", "azureml:base:1"]) == 0
    assert main(["ml", "adapters", "promote", "cfo", "1.1.0"]) == 0
    capsys.readouterr()
    assert main(["ml", "adapters", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ADAPTER", "VERSION", "STAGE", "BASE", "MODEL", "METRICS", "UPDATED"]
    assert [line.split()[:4] for line in lines[1:]] == [["cfo", "1.0.0", "staging", "azureml:base:1"],
                                                        ["cfo", "1.1.0", "production", "azureml:base:1"]]
    assert "win_rate=0.6" in lines[1]
    assert main(["ml", "adapters", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert [v["stage"] for v in json.loads(out)["cfo"]] == ["staging", "production"]
