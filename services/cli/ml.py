"""`aos ml ...`: adapters, training and deployment on Azure ML, and the local scoring server.

    aos ml adapters list [--name ceo]                   versions and stages, from the registry on the StateStore
    aos ml adapters register ceo 1.4.0 --base-model ... record a trained adapter (staging)
    aos ml adapters promote ceo 1.4.0 | rollback ceo    move the production pointer
    aos ml train --adapter ceo --version 1.4.0 --data azureml:aos-dpo-ceo:7 [--kind dpo|lora] --dry-run
    aos ml deploy --adapter ceo [--version 1.4.0] --dry-run
    aos ml serve-local [--port 8790]                    RuleBasedReasoner over HTTP (/score, /v1/chat/completions)

These work on the local registry and the Azure ML workspace of the config, not through a host. `--dry-run`
writes the YAML `az ml` takes into `--out` (default `<data_dir>/ml`) and calls nothing; without it the job or
deployment is submitted through MLClient with DefaultAzureCredential and its status printed. Results are a
table or `name: value` lines (`--json`: one line of JSON); bad input or config is exit 2, an Azure failure exit 1.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from services.cli.output import CliError, Progress, echo_json, fields, local_errors, table

T = TypeVar("T")
_json_flag = click.option("--json", "as_json", is_flag=True, help="print the result as one line of JSON")


@click.group()
def ml() -> None:
    """LoRA adapters, Azure ML training and deployment, local scoring."""


@ml.group()
def adapters() -> None:
    """The adapter registry."""


_ADAPTER_FIELDS = ["name", "version", "stage", "base_model", "metrics", "training_data", "artifact_uri",
                   "updated_at"]


def _registry_call(action: Callable[[Any], Awaitable[Any]], as_json: bool,
                   human: Callable[[Any], None] | None = None) -> None:
    """Run `action(registry)` on the registry of the configured StateStore and print its result."""
    result, _config = _with_registry(None, lambda registry, _config: action(registry))
    _print(result, as_json, human or (lambda adapter: fields(adapter, _ADAPTER_FIELDS)))


def _print(result: Any, as_json: bool, human: Callable[[Any], None] = fields) -> None:
    """One line of JSON for scripts, else what `human` makes of it (`name: value` lines by default)."""
    if as_json:
        echo_json(result)
    else:
        human(result)


def _adapter_table(by_name: dict[str, list[dict[str, Any]]]) -> None:
    rows = [[v["name"], v["version"], v["stage"], v["base_model"],
             " ".join(f"{k}={m:g}" for k, m in v["metrics"].items()) or "-", v["updated_at"][:19]]
            for versions in by_name.values() for v in versions]
    if not rows:
        click.echo("no adapters registered")
        return
    table(["ADAPTER", "VERSION", "STAGE", "BASE MODEL", "METRICS", "UPDATED"], rows)


@adapters.command("list")
@click.option("--name", default=None, help="one adapter [default: all]")
@_json_flag
def list_adapters(name: str | None, as_json: bool) -> None:
    """Adapter versions and stages."""

    async def action(registry: Any) -> Any:
        names = [name] if name else await registry.names()
        return {n: [v.model_dump(mode="json") for v in await registry.versions(n)] for n in names}

    _registry_call(action, as_json, _adapter_table)


@adapters.command("register")
@click.argument("name")
@click.argument("version")
@click.option("--base-model", required=True)
@click.option("--artifact-uri", default=None)
@click.option("--training-data", default=None)
@click.option("--metric", "metric_items", multiple=True, metavar="NAME=VALUE", help="a metric; repeatable")
@_json_flag
def register_adapter(name: str, version: str, base_model: str, artifact_uri: str | None, training_data: str | None,
                     metric_items: Sequence[str], as_json: bool) -> None:
    """Record a trained adapter version (staging)."""
    metrics: dict[str, float] = {}
    for item in metric_items:
        key, sep, value = item.partition("=")
        try:
            if not (key and sep):
                raise ValueError(item)
            metrics[key] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: use NAME=VALUE with a number", param_hint="--metric") from None

    async def action(registry: Any) -> Any:
        adapter = await registry.register(name, version, base_model=base_model, metrics=metrics,
                                          artifact_uri=artifact_uri, training_data=training_data)
        return adapter.model_dump(mode="json")

    _registry_call(action, as_json)


def _stage_command(verb: str, help_text: str) -> None:
    @adapters.command(verb, help=help_text)
    @click.argument("name")
    @click.argument("version")
    @_json_flag
    def command(name: str, version: str, as_json: bool) -> None:
        async def action(registry: Any) -> Any:
            return (await getattr(registry, verb)(name, version)).model_dump(mode="json")

        _registry_call(action, as_json)


_stage_command("promote", "Make a version the production one.")
_stage_command("archive", "Archive a version.")


@adapters.command("rollback")
@click.argument("name")
@_json_flag
def rollback(name: str, as_json: bool) -> None:
    """Put the previous production version back."""

    async def action(registry: Any) -> Any:
        return (await registry.rollback(name)).model_dump(mode="json")

    _registry_call(action, as_json)


def _workspace_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--dry-run", is_flag=True, help="write the YAML only; call no workspace")(func)
    func = click.option("--out", type=click.Path(path_type=Path), default=None,
                        help="folder for the YAML [default: <data_dir>/ml]")(func)
    func = click.option("--config", "config_dir", type=click.Path(path_type=Path), default=None,
                        help="config folder [default: AOS_CONFIG_DIR or config/]")(func)
    return _json_flag(func)


@ml.command()
@click.option("--adapter", required=True)
@click.option("--version", required=True, help="the semantic version the job will produce")
@click.option("--kind", type=click.Choice(["dpo", "lora"]), default="dpo", show_default=True)
@click.option("--data", required=True, help="data asset: preference JSONL folder (dpo) or SFT data (lora)")
@click.option("--parent", default=None, help="adapter model asset to start from (dpo) [default: production]")
@_workspace_options
def train(adapter: str, version: str, kind: str, data: str, parent: str | None, dry_run: bool, out: Path | None,
          config_dir: Path | None, as_json: bool) -> None:
    """A LoRA fine-tune or DPO job on Azure ML."""
    from services.ml import azureml

    async def build(registry: Any, config: Any) -> Any:
        ml_config, learning = config.ml, config.learning
        if kind == "lora":
            return azureml.lora_finetune_job(adapter, version, base_model=ml_config.base_model, train_data=data,
                                             compute=ml_config.compute, environment=ml_config.training_environment)
        start = parent
        if start is None and (current := await registry.production(adapter)) is not None:
            start = f"azureml:{azureml.model_name(current.name)}:{current.version}"
        return azureml.dpo_job(adapter, version, base_model=ml_config.base_model, preference_data=data,
                               parent_adapter=start, compute=ml_config.compute,
                               environment=ml_config.training_environment, beta=learning.beta,
                               epochs=learning.epochs, learning_rate=learning.learning_rate)

    job, config = _with_registry(config_dir, build)
    if dry_run:
        _print({"dry_run": True, "files": _write(out, config, {f"{job.name}.yaml": job})}, as_json)
        return
    with _azure_errors(), Progress(f"submitting training job {job.name}"):
        client = azureml.ml_client(config.ml.subscription_id, config.ml.resource_group, config.ml.workspace)
        submitted = azureml.submit_job(client, job)
    _print({"dry_run": False, "job": submitted}, as_json)


@ml.command()
@click.option("--adapter", required=True)
@click.option("--version", default=None, help="[default: the production version]")
@click.option("--traffic", type=click.IntRange(0, 100), default=100, show_default=True)
@_workspace_options
def deploy(adapter: str, version: str | None, traffic: int, dry_run: bool, out: Path | None, config_dir: Path | None,
           as_json: bool) -> None:
    """Serve an adapter version on a managed online endpoint."""
    from services.ml import azureml

    async def find(registry: Any, config: Any) -> Any:
        from aos_core.errors import NotFoundError

        found = await (registry.get(adapter, version) if version else registry.production(adapter))
        if found is None:
            raise NotFoundError(f"adapter {adapter} has no production version; pass --version")
        return found

    chosen, config = _with_registry(config_dir, find)
    ml_config = config.ml
    endpoint = azureml.online_endpoint(chosen.name)
    deployment = azureml.online_deployment(chosen, environment=ml_config.serving_environment,
                                           instance_type=ml_config.instance_type)
    entities: dict[str, Any] = {"endpoint.yaml": endpoint, "deployment.yaml": deployment}
    if chosen.artifact_uri:
        entities["model.yaml"] = azureml.adapter_model(chosen)
    if dry_run:
        _print({"dry_run": True, "adapter": chosen.ref, "files": _write(out, config, entities)}, as_json)
        return
    with _azure_errors(), Progress(f"deploying {chosen.ref} to endpoint {endpoint.name}"):
        client = azureml.ml_client(ml_config.subscription_id, ml_config.resource_group, ml_config.workspace)
        if "model.yaml" in entities:
            client.models.create_or_update(entities["model.yaml"])
        result = azureml.deploy(client, endpoint, deployment, traffic=traffic)
    _print({"dry_run": False, "adapter": chosen.ref, **result}, as_json)


def _with_registry(config_dir: Path | None, work: Callable[[Any, Any], Awaitable[T]]) -> tuple[T, Any]:
    """`work(registry, config)` on the configured StateStore; config errors and bad input exit 2."""
    from aos_core.config import AOSConfig
    from aos_core.runtime import build_state_store
    from services.ml.registry import AdapterRegistry

    if config_dir:
        os.environ["AOS_CONFIG_DIR"] = str(config_dir)

    async def run() -> tuple[T, Any]:
        config = AOSConfig()
        store = await build_state_store(config)
        try:
            return await work(AdapterRegistry(store), config), config
        finally:
            await store.close()

    with local_errors():
        return asyncio.run(run())


@contextmanager
def _azure_errors() -> Iterator[None]:
    """A missing workspace setting is bad config (2); the workspace refusing or failing is exit 1."""
    from aos_core.errors import AOSError

    try:
        yield
    except (AOSError, ValueError) as exc:
        raise CliError(str(exc), 2) from None
    except Exception as exc:
        from azure.core.exceptions import AzureError

        if isinstance(exc, AzureError):
            raise CliError(f"Azure ML: {exc}", 1) from None
        raise


def _write(out: Path | None, config: Any, entities: dict[str, Any]) -> list[str]:
    from services.ml import azureml

    folder = out or Path(config.data_dir) / "ml"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entity in entities.items():
        path = folder / name
        path.write_text(azureml.to_yaml(entity), encoding="utf-8")
        written.append(str(path))
    return written


@ml.command("serve-local")
@click.option("--port", type=click.IntRange(0, 65535), default=8790, show_default=True)
@click.option("--key-secret", default=None, help="SecretStore name of the key callers must send")
def serve_local(port: int, key_secret: str | None) -> None:
    """The rule-based reasoner over HTTP on 127.0.0.1, until Ctrl-C."""
    from aos_core.config import AOSConfig
    from aos_core.runtime import build_secret_store
    from services.ml.local_server import LocalScoringServer

    key = None
    if key_secret:
        with local_errors():
            key = asyncio.run(build_secret_store(AOSConfig()).get_secret(key_secret))
        if not key:
            raise CliError(f"secret {key_secret!r} is not set", 2)
    server = LocalScoringServer(port=port, api_key=key).start()
    click.echo(json.dumps({"scoring_uri": f"{server.url}/score", "chat_url": f"{server.url}/v1/chat/completions"}))
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
