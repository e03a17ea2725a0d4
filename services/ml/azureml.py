"""Azure ML: the real azure-ai-ml entities for adapters, LoRA and DPO training jobs, and online serving.

azure-ai-ml is heavy (about a second to import) and emits deprecation warnings from its marshmallow
schemas, so it is imported here only, inside `_sdk()`, with those warnings silenced. Building entities
needs no workspace: `to_yaml(entity)` gives the YAML `az ml job create` / `az ml online-deployment create`
would take; `submit_job` and `deploy` need an `MLClient` (`ml_client(...)`, DefaultAzureCredential).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import yaml

from aos_core.errors import ConfigError
from services.ml.registry import AdapterVersion, check_adapter_name, semver_key

SCHEMAS = {
    "commandJob": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
    "model": "https://azuremlschemas.azureedge.net/latest/model.schema.json",
    "managedOnlineEndpoint": "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json",
    "managedOnlineDeployment": "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json",
}


@contextmanager
def _quiet() -> Iterator[None]:
    # The SDK's own deprecation noise (marshmallow 3 -> 4) is not ours to fix; keep it out of callers' logs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _sdk() -> SimpleNamespace:
    with _quiet():
        from azure.ai.ml import Input, Output, command
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import (
            CodeConfiguration,
            ManagedOnlineDeployment,
            ManagedOnlineEndpoint,
            Model,
            OnlineRequestSettings,
        )
    return SimpleNamespace(Input=Input, Output=Output, command=command, AssetTypes=AssetTypes, Model=Model,
                           CodeConfiguration=CodeConfiguration, ManagedOnlineDeployment=ManagedOnlineDeployment,
                           ManagedOnlineEndpoint=ManagedOnlineEndpoint, OnlineRequestSettings=OnlineRequestSettings)


def model_name(adapter: str) -> str:
    """The Azure ML model asset name of an adapter: `aos-adapter-<name>`."""
    return f"aos-adapter-{check_adapter_name(adapter)}"


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower())[:limit].strip("-")


def endpoint_name(adapter: str) -> str:
    """An online endpoint name (3-32 characters, a letter first): `aos-<name>`."""
    return _slug(f"aos-{check_adapter_name(adapter)}", 32)


def deployment_name(version: str) -> str:
    """A deployment name for a version (a letter first): `v1-2-0`."""
    semver_key(version)
    return _slug(f"v{version}", 32)


def _asset_path(ref: str) -> str:
    """`azureml:name:version` or `azureml:name@latest` for an asset, or an azureml:// / https:// URI unchanged."""
    return ref if ref.startswith(("azureml:", "azureml://", "https://", "abfss://")) else f"azureml:{ref}"


# --- assets ------------------------------------------------------------------------------------------


def adapter_model(adapter: AdapterVersion) -> Any:
    """The `Model` asset (custom_model) for a registered adapter version; its weights are `artifact_uri`."""
    if not adapter.artifact_uri:
        raise ConfigError(f"adapter {adapter.ref} has no artifact_uri to register as a model")
    sdk = _sdk()
    with _quiet():
        return sdk.Model(name=model_name(adapter.name), version=adapter.version, path=adapter.artifact_uri,
                         type=sdk.AssetTypes.CUSTOM_MODEL,
                         description=adapter.description or f"LoRA adapter {adapter.ref}",
                         tags={"aos.adapter": adapter.name, "aos.base_model": adapter.base_model,
                               "aos.stage": str(adapter.stage)},
                         properties={"aos.training_data": adapter.training_data or "",
                                     **{f"metric.{k}": str(v) for k, v in adapter.metrics.items()}})


# --- training jobs -----------------------------------------------------------------------------------


def lora_finetune_job(adapter: str, version: str, *, base_model: str, train_data: str, compute: str,
                      environment: str, code: str = "training", epochs: int = 1, learning_rate: float = 2e-4,
                      lora_rank: int = 16, lora_alpha: int = 32, experiment: str = "aos-lora") -> Any:
    """A `command` job that fine-tunes a LoRA adapter on `train_data` and outputs it as model `version`."""
    sdk = _sdk()
    inputs = {"base_model": sdk.Input(type=sdk.AssetTypes.CUSTOM_MODEL, path=_asset_path(base_model)),
              "train_data": sdk.Input(type=sdk.AssetTypes.URI_FOLDER, path=_asset_path(train_data)),
              "epochs": epochs, "learning_rate": learning_rate, "lora_rank": lora_rank, "lora_alpha": lora_alpha}
    cmd = ("python train_lora.py --base_model ${{inputs.base_model}} --train_data ${{inputs.train_data}} "
           "--epochs ${{inputs.epochs}} --learning_rate ${{inputs.learning_rate}} "
           "--lora_rank ${{inputs.lora_rank}} --lora_alpha ${{inputs.lora_alpha}} --output ${{outputs.adapter}}")
    return _job(sdk, f"aos-lora-{adapter}-{version}", adapter, version, cmd, inputs, compute, environment, code,
                experiment, "lora-finetune")


def dpo_job(adapter: str, version: str, *, base_model: str, preference_data: str, compute: str, environment: str,
            parent_adapter: str | None = None, code: str = "training", beta: float = 0.1, epochs: int = 1,
            learning_rate: float = 5e-6, experiment: str = "aos-dpo") -> Any:
    """A `command` job that trains adapter `version` with DPO on a preference data asset (train/validation JSONL),
    starting from `parent_adapter` (the production version's model asset) when given."""
    sdk = _sdk()
    inputs: dict[str, Any] = {
        "base_model": sdk.Input(type=sdk.AssetTypes.CUSTOM_MODEL, path=_asset_path(base_model)),
        "preference_data": sdk.Input(type=sdk.AssetTypes.URI_FOLDER, path=_asset_path(preference_data)),
        "beta": beta, "epochs": epochs, "learning_rate": learning_rate}
    cmd = ("python train_dpo.py --base_model ${{inputs.base_model}} --preference_data ${{inputs.preference_data}} "
           "--beta ${{inputs.beta}} --epochs ${{inputs.epochs}} --learning_rate ${{inputs.learning_rate}} ")
    if parent_adapter:
        inputs["adapter"] = sdk.Input(type=sdk.AssetTypes.CUSTOM_MODEL, path=_asset_path(parent_adapter))
        cmd += "--adapter ${{inputs.adapter}} "
    cmd += "--output ${{outputs.adapter}}"
    return _job(sdk, f"aos-dpo-{adapter}-{version}", adapter, version, cmd, inputs, compute, environment, code,
                experiment, "dpo")


def _job(sdk: SimpleNamespace, name: str, adapter: str, version: str, cmd: str, inputs: dict[str, Any],
         compute: str, environment: str, code: str, experiment: str, kind: str) -> Any:
    check_adapter_name(adapter)
    semver_key(version)
    with _quiet():
        return sdk.command(
            name=_slug(name.replace(".", "-"), 255), display_name=f"{kind} {adapter}@{version}",
            experiment_name=experiment, command=cmd, code=code, inputs=inputs,
            outputs={"adapter": sdk.Output(type=sdk.AssetTypes.CUSTOM_MODEL, name=model_name(adapter),
                                           version=version)},
            environment=environment, compute=compute, instance_count=1,
            tags={"aos.adapter": adapter, "aos.version": version, "aos.kind": kind},
        )


# --- serving -----------------------------------------------------------------------------------------


def online_endpoint(adapter: str, *, auth_mode: str = "key") -> Any:
    """The `ManagedOnlineEndpoint` that serves one adapter (key auth: the key goes to the SecretStore)."""
    sdk = _sdk()
    with _quiet():
        return sdk.ManagedOnlineEndpoint(name=endpoint_name(adapter), auth_mode=auth_mode,
                                         description=f"AOS reasoning with LoRA adapter {adapter}",
                                         tags={"aos.adapter": adapter})


def online_deployment(adapter: AdapterVersion, *, environment: str, instance_type: str, instance_count: int = 1,
                      code: str = "serving", scoring_script: str = "score.py", timeout_ms: int = 90_000) -> Any:
    """A `ManagedOnlineDeployment` of the adapter's model asset (base model loaded by the scoring script)."""
    sdk = _sdk()
    with _quiet():
        return sdk.ManagedOnlineDeployment(
            name=deployment_name(adapter.version), endpoint_name=endpoint_name(adapter.name),
            model=f"azureml:{model_name(adapter.name)}:{adapter.version}", environment=environment,
            code_configuration=sdk.CodeConfiguration(code=code, scoring_script=scoring_script),
            instance_type=instance_type, instance_count=instance_count,
            request_settings=sdk.OnlineRequestSettings(request_timeout_ms=timeout_ms,
                                                       max_concurrent_requests_per_instance=1),
            environment_variables={"AOS_ADAPTER": adapter.name, "AOS_ADAPTER_VERSION": adapter.version,
                                   "AOS_BASE_MODEL": adapter.base_model},
            tags={"aos.adapter": adapter.name, "aos.version": adapter.version},
        )


# --- YAML and submission -----------------------------------------------------------------------------


def to_dict(entity: Any) -> dict[str, Any]:
    """The entity as the YAML document the `az ml` CLI takes, `$schema` first."""
    with _quiet():
        kind = type(entity).__name__
        if kind == "Command":  # the builder `command()` returns; its job form is what `az ml job create` takes
            data, schema = entity._to_job()._to_dict(), "commandJob"
            if isinstance(entity.code, str) and not entity.code.startswith("azureml:"):
                data["code"] = entity.code  # the SDK marks local folders as assets; the CLI wants the path
        else:
            data = entity._to_dict()
            schema = {"Model": "model", "ManagedOnlineEndpoint": "managedOnlineEndpoint",
                      "ManagedOnlineDeployment": "managedOnlineDeployment"}[kind]
    plain = json.loads(json.dumps(data, default=str))  # OrderedDicts and enums to plain YAML types
    return {"$schema": SCHEMAS[schema], **{k: v for k, v in plain.items() if v not in ({}, None)}}


def to_yaml(entity: Any) -> str:
    return yaml.safe_dump(to_dict(entity), sort_keys=False, default_flow_style=False)


def ml_client(subscription_id: str | None, resource_group: str | None, workspace: str | None) -> Any:
    """An `MLClient` for the workspace with DefaultAzureCredential (managed identity on Azure, az login locally)."""
    missing = [n for n, v in (("ml.subscription_id", subscription_id), ("ml.resource_group", resource_group),
                              ("ml.workspace", workspace)) if not v]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: needed to reach the Azure ML workspace (or use --dry-run)")
    with _quiet():
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential

        return MLClient(DefaultAzureCredential(), subscription_id, resource_group, workspace)


def submit_job(client: Any, job: Any) -> dict[str, Any]:
    """Submit a training job; its name, status and studio link."""
    with _quiet():
        created = client.jobs.create_or_update(job)
    return {"name": created.name, "status": created.status, "studio_url": getattr(created, "studio_url", None)}


def deploy(client: Any, endpoint: Any, deployment: Any, *, traffic: int = 100) -> dict[str, Any]:
    """Create or update the endpoint and deployment (long-running), then route `traffic` percent to it."""
    with _quiet():
        client.online_endpoints.begin_create_or_update(endpoint).result()
        client.online_deployments.begin_create_or_update(deployment).result()
        endpoint.traffic = {deployment.name: traffic}
        result = client.online_endpoints.begin_create_or_update(endpoint).result()
    return {"endpoint": result.name, "scoring_uri": getattr(result, "scoring_uri", None),
            "provisioning_state": getattr(result, "provisioning_state", None), "traffic": dict(result.traffic or {})}
