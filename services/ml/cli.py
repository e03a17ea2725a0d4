"""`aos ml ...`: adapters, training and deployment on Azure ML, and the local scoring server.

    aos ml adapters list [--name ceo]                   versions and stages, from the registry on the StateStore
    aos ml adapters register ceo 1.4.0 --base-model ... record a trained adapter (staging)
    aos ml adapters promote ceo 1.4.0 | rollback ceo    move the production pointer
    aos ml train --adapter ceo --version 1.4.0 --data azureml:aos-dpo-ceo:7 [--kind dpo|lora] --dry-run
    aos ml deploy --adapter ceo [--version 1.4.0] --dry-run
    aos ml serve-local [--port 8790]                    RuleBasedReasoner over HTTP (/score, /v1/chat/completions)

`--dry-run` writes the YAML `az ml` takes into `--out` (default `<data_dir>/ml`) and calls nothing; without it
the job or deployment is submitted through MLClient with DefaultAzureCredential and its status printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `aos ml` on the `aos` command's subparsers; `args.handler(args)` runs the chosen command."""
    ml = subparsers.add_parser("ml", help="LoRA adapters, Azure ML training and deployment, local scoring")
    commands = ml.add_subparsers(dest="ml_command", required=True)

    adapters = commands.add_parser("adapters", help="the adapter registry")
    actions = adapters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="adapter versions and stages")
    listing.add_argument("--name", default=None)
    register = actions.add_parser("register", help="record a trained adapter version (staging)")
    register.add_argument("name")
    register.add_argument("version")
    register.add_argument("--base-model", required=True)
    register.add_argument("--artifact-uri", default=None)
    register.add_argument("--training-data", default=None)
    register.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE")
    for action in ("promote", "archive"):
        cmd = actions.add_parser(action, help=f"{action} a version")
        cmd.add_argument("name")
        cmd.add_argument("version")
    rollback = actions.add_parser("rollback", help="put the previous production version back")
    rollback.add_argument("name")

    train = commands.add_parser("train", help="a LoRA fine-tune or DPO job on Azure ML")
    train.add_argument("--adapter", required=True)
    train.add_argument("--version", required=True, help="the semantic version the job will produce")
    train.add_argument("--kind", choices=["dpo", "lora"], default="dpo")
    train.add_argument("--data", required=True, help="data asset: preference JSONL folder (dpo) or SFT data (lora)")
    train.add_argument("--parent", default=None, help="adapter model asset to start from (dpo; default production)")
    _common(train)

    deploy = commands.add_parser("deploy", help="serve an adapter version on a managed online endpoint")
    deploy.add_argument("--adapter", required=True)
    deploy.add_argument("--version", default=None, help="default: the production version")
    deploy.add_argument("--traffic", type=int, default=100)
    _common(deploy)

    serve = commands.add_parser("serve-local", help="the rule-based reasoner over HTTP on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8790)
    serve.add_argument("--key-secret", default=None, help="SecretStore name of the key callers must send")
    ml.set_defaults(handler=run)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="write the YAML only; call no workspace")
    parser.add_argument("--out", type=Path, default=None, help="folder for the YAML (default <data_dir>/ml)")
    parser.add_argument("--config", type=Path, default=None, help="config folder (default AOS_CONFIG_DIR or config/)")


def run(args: argparse.Namespace) -> int:
    """Run the parsed `aos ml` command; prints JSON, returns the exit status (2 for bad input)."""
    from aos_core.errors import AOSError

    if getattr(args, "config", None):
        import os

        os.environ["AOS_CONFIG_DIR"] = str(args.config)
    try:
        if args.ml_command == "serve-local":
            return _serve_local(args)
        result = asyncio.run(_run(args))
    except (AOSError, ValueError) as exc:
        print(f"aos ml: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


async def _run(args: argparse.Namespace) -> Any:
    from aos_core.config import AOSConfig
    from aos_core.runtime import build_state_store
    from services.ml.registry import AdapterRegistry

    config = AOSConfig()
    store = await build_state_store(config)
    try:
        registry = AdapterRegistry(store)
        if args.ml_command == "adapters":
            return await _adapters(registry, args)
        if args.ml_command == "train":
            return await _train(registry, config, args)
        return await _deploy(registry, config, args)
    finally:
        await store.close()


async def _adapters(registry: Any, args: argparse.Namespace) -> Any:
    if args.action == "list":
        names = [args.name] if args.name else await registry.names()
        return {name: [v.model_dump(mode="json") for v in await registry.versions(name)] for name in names}
    if args.action == "register":
        metrics = {}
        for item in args.metric:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--metric {item!r}: use NAME=VALUE")
            metrics[key] = float(value)
        adapter = await registry.register(args.name, args.version, base_model=args.base_model, metrics=metrics,
                                          artifact_uri=args.artifact_uri, training_data=args.training_data)
    elif args.action == "promote":
        adapter = await registry.promote(args.name, args.version)
    elif args.action == "archive":
        adapter = await registry.archive(args.name, args.version)
    else:
        adapter = await registry.rollback(args.name)
    return adapter.model_dump(mode="json")


async def _train(registry: Any, config: Any, args: argparse.Namespace) -> Any:
    from services.ml import azureml

    ml = config.ml
    if args.kind == "dpo":
        parent = args.parent
        if parent is None and (current := await registry.production(args.adapter)) is not None:
            parent = f"azureml:{azureml.model_name(current.name)}:{current.version}"
        job = azureml.dpo_job(args.adapter, args.version, base_model=ml.base_model, preference_data=args.data,
                              parent_adapter=parent, compute=ml.compute, environment=ml.training_environment,
                              beta=config.learning.beta, epochs=config.learning.epochs,
                              learning_rate=config.learning.learning_rate)
    else:
        job = azureml.lora_finetune_job(args.adapter, args.version, base_model=ml.base_model, train_data=args.data,
                                        compute=ml.compute, environment=ml.training_environment)
    if args.dry_run:
        return {"dry_run": True, "files": _write(args, config, {f"{job.name}.yaml": job})}
    client = azureml.ml_client(ml.subscription_id, ml.resource_group, ml.workspace)
    return {"dry_run": False, "job": azureml.submit_job(client, job)}


async def _deploy(registry: Any, config: Any, args: argparse.Namespace) -> Any:
    from aos_core.errors import NotFoundError
    from services.ml import azureml

    ml = config.ml
    adapter = await (registry.get(args.adapter, args.version) if args.version else registry.production(args.adapter))
    if adapter is None:
        raise NotFoundError(f"adapter {args.adapter} has no production version; pass --version")
    endpoint = azureml.online_endpoint(adapter.name)
    deployment = azureml.online_deployment(adapter, environment=ml.serving_environment,
                                           instance_type=ml.instance_type)
    entities: dict[str, Any] = {"endpoint.yaml": endpoint, "deployment.yaml": deployment}
    if adapter.artifact_uri:
        entities["model.yaml"] = azureml.adapter_model(adapter)
    if args.dry_run:
        return {"dry_run": True, "adapter": adapter.ref, "files": _write(args, config, entities)}
    client = azureml.ml_client(ml.subscription_id, ml.resource_group, ml.workspace)
    if "model.yaml" in entities:
        client.models.create_or_update(entities["model.yaml"])
    return {"dry_run": False, "adapter": adapter.ref, **azureml.deploy(client, endpoint, deployment,
                                                                        traffic=args.traffic)}


def _write(args: argparse.Namespace, config: Any, entities: dict[str, Any]) -> list[str]:
    from services.ml import azureml

    out = args.out or Path(config.data_dir) / "ml"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entity in entities.items():
        path = out / name
        path.write_text(azureml.to_yaml(entity), encoding="utf-8")
        written.append(str(path))
    return written


def _serve_local(args: argparse.Namespace) -> int:
    from aos_core.config import AOSConfig
    from aos_core.runtime import build_secret_store
    from services.ml.local_server import LocalScoringServer

    key = None
    if args.key_secret:
        key = asyncio.run(build_secret_store(AOSConfig()).get_secret(args.key_secret))
        if not key:
            print(f"aos ml: secret {args.key_secret!r} is not set", file=sys.stderr)
            return 2
    server = LocalScoringServer(port=args.port, api_key=key).start()
    print(json.dumps({"scoring_uri": f"{server.url}/score", "chat_url": f"{server.url}/v1/chat/completions"}))
    try:
        server.wait()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
