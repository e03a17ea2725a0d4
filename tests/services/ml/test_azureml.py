"""The Azure ML entities, built offline with the real SDK; the dumped YAML has what the job and deployment need."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
import yaml

from aos_core.errors import ConfigError
from services.ml import azureml
from services.ml.registry import AdapterVersion, InvalidAdapterError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ADAPTER = AdapterVersion(name="ceo", version="1.3.0", base_model="azureml:llama-3-8b-instruct:2",
                         metrics={"win_rate": 0.62}, training_data="azureml:ceo-dpo:4",
                         artifact_uri="azureml://datastores/workspaceblobstore/paths/adapters/ceo/1.3.0",
                         created_at=NOW, updated_at=NOW)


def test_model_asset_for_an_adapter() -> None:
    doc = azureml.to_dict(azureml.adapter_model(ADAPTER))
    assert doc["$schema"].endswith("/model.schema.json")
    assert doc["name"] == "aos-adapter-ceo" and doc["version"] == "1.3.0"
    assert doc["type"] == "custom_model"
    assert doc["path"] == ADAPTER.artifact_uri
    assert doc["tags"]["aos.base_model"] == "azureml:llama-3-8b-instruct:2"
    assert doc["properties"]["metric.win_rate"] == "0.62"
    with pytest.raises(ConfigError, match="artifact_uri"):
        azureml.adapter_model(ADAPTER.model_copy(update={"artifact_uri": None}))


def test_lora_finetune_job_yaml() -> None:
    job = azureml.lora_finetune_job("ceo", "1.4.0", base_model="llama-3-8b-instruct:2", train_data="ceo-sft:1",
                                    compute="gpu-cluster", environment="azureml:aos-lora-training@latest")
    doc = yaml.safe_load(azureml.to_yaml(job))
    assert doc["$schema"].endswith("/commandJob.schema.json")
    assert doc["type"] == "command" and doc["name"] == "aos-lora-ceo-1-4-0"
    assert doc["compute"] == "azureml:gpu-cluster"
    assert doc["environment"] == "azureml:aos-lora-training@latest"
    assert doc["code"] == "training"
    assert doc["inputs"]["base_model"] == {"type": "custom_model", "path": "azureml:llama-3-8b-instruct:2"}
    assert doc["inputs"]["train_data"] == {"type": "uri_folder", "path": "azureml:ceo-sft:1"}
    assert doc["outputs"]["adapter"] == {"type": "custom_model", "name": "aos-adapter-ceo", "version": "1.4.0"}
    for name in ("base_model", "train_data", "epochs", "learning_rate", "lora_rank"):
        assert f"${{{{inputs.{name}}}}}" in doc["command"]
    assert "${{outputs.adapter}}" in doc["command"]
    assert doc["resources"]["instance_count"] == 1


def test_dpo_job_yaml_takes_preference_data_base_model_and_adapter() -> None:
    job = azureml.dpo_job("ceo", "1.4.0", base_model="azureml:llama-3-8b-instruct:2",
                          preference_data="azureml:aos-dpo-ceo:7", parent_adapter="azureml:aos-adapter-ceo:1.3.0",
                          compute="gpu-cluster", environment="azureml:aos-lora-training@latest", beta=0.2)
    doc = azureml.to_dict(job)
    assert doc["name"] == "aos-dpo-ceo-1-4-0" and doc["experiment_name"] == "aos-dpo"
    assert doc["inputs"]["preference_data"] == {"type": "uri_folder", "path": "azureml:aos-dpo-ceo:7"}
    assert doc["inputs"]["adapter"] == {"type": "custom_model", "path": "azureml:aos-adapter-ceo:1.3.0"}
    assert doc["inputs"]["beta"] == 0.2
    assert doc["outputs"]["adapter"]["name"] == "aos-adapter-ceo"
    assert "--adapter ${{inputs.adapter}}" in doc["command"]
    assert doc["tags"]["aos.kind"] == "dpo"
    without_parent = azureml.to_dict(azureml.dpo_job("ceo", "1.0.0", base_model="b:1", preference_data="d:1",
                                                     compute="c", environment="e:1"))
    assert "adapter" not in without_parent["inputs"]


def test_online_endpoint_and_deployment_yaml() -> None:
    endpoint = azureml.to_dict(azureml.online_endpoint("ceo"))
    assert endpoint["$schema"].endswith("/managedOnlineEndpoint.schema.json")
    assert endpoint["name"] == "aos-ceo" and endpoint["auth_mode"] == "key"
    deployment = azureml.to_dict(azureml.online_deployment(ADAPTER, environment="azureml:aos-lora-serving@latest",
                                                           instance_type="Standard_NC6s_v3"))
    assert deployment["$schema"].endswith("/managedOnlineDeployment.schema.json")
    assert deployment["name"] == "v1-3-0" and deployment["endpoint_name"] == "aos-ceo"
    assert deployment["model"] == "azureml:aos-adapter-ceo:1.3.0"
    assert deployment["instance_type"] == "Standard_NC6s_v3" and deployment["instance_count"] == 1
    assert deployment["environment"] == "azureml:aos-lora-serving@latest"
    assert deployment["code_configuration"] == {"code": "serving", "scoring_script": "score.py"}
    assert deployment["environment_variables"]["AOS_BASE_MODEL"] == ADAPTER.base_model
    assert deployment["request_settings"]["request_timeout_ms"] == 90000


def test_bad_names_fail_before_the_sdk_is_asked() -> None:
    with pytest.raises(InvalidAdapterError):
        azureml.dpo_job("CEO!", "1.0.0", base_model="b", preference_data="d", compute="c", environment="e")
    with pytest.raises(InvalidAdapterError):
        azureml.lora_finetune_job("ceo", "one", base_model="b", train_data="d", compute="c", environment="e")


def test_ml_client_needs_a_workspace() -> None:
    with pytest.raises(ConfigError, match=r"ml.subscription_id, ml.workspace"):
        azureml.ml_client(None, "rg", None)


def test_importing_services_ml_does_not_load_the_sdk() -> None:
    code = ("import sys, services.ml, services.ml.azureml, services.ml.endpoints; "
            "print(any(m.startswith('azure.ai.ml') for m in sys.modules), 'httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

