"""The package `make package` builds, run the way Azure Functions runs it: nothing from the dev install.

The zip is unpacked into an empty folder and given a fresh environment made from its own `requirements.txt`
only (the hashed lock, as the remote build installs it): no editable install, no egg-info, no entry points of
this repository, the repo not on the path. The local host runs from that folder with a deployment's settings:
the `config/` that ships, state in Blob Storage and the audit log in Table Storage (an Azurite of its own),
keys from settings. Not exercised here: Service Bus (the local host's topics stand in for it) and the real
Functions host and Python worker (the local host indexes and invokes the same functions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.azurite import running_azurite
from tests.support.host_process import KEY, HostProcess
from tests.support.scenario import check_scenario
from tools.package import build

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {"function_app.py", "host.json", "requirements.txt", "aos_core", "agents", "services", "config"}
AUDIT_TABLE = "deployedaudit"

# Run inside an install of the app: its function index and what it knows of packaging metadata.
PROBE = """
import importlib.metadata as md, json, sys
import function_app
try:
    md.distribution("aos"); installed = True
except md.PackageNotFoundError:
    installed = False
print(json.dumps({
    "functions": {f.get_function_name(): json.loads(f.get_function_json()) for f in function_app.app.get_functions()},
    "app_file": function_app.__file__, "path": sys.path, "aos_distribution": installed,
    "aos_entry_points": [e.name for e in md.entry_points(group="aos.agents")],
}))
"""


@dataclass
class Deployment:
    root: Path
    package: Path
    app: Path
    python: Path
    files: int
    host: HostProcess
    storage: str  # the connection string of its storage account

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.host.base, headers={"x-functions-key": KEY}, timeout=30)


# Nothing of the developer's environment may leak in: no virtualenv, no extra path, no AOS_ settings.
_LEAKS = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _LEAKS and not k.startswith("AOS_")}


def _probe(python: Path | str, cwd: Path) -> dict[str, Any]:
    run = subprocess.run([str(python), "-c", PROBE], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deployment")
    package, files = build(REPO, root / "functionapp.zip")
    app = root / "app"
    app.mkdir()
    with zipfile.ZipFile(package) as archive:
        archive.extractall(app)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env(), timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-compile", "--require-hashes",
         "-r", str(app / "requirements.txt")],
        cwd=root, env=_clean_env(), capture_output=True, text=True, timeout=1800, check=False)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    with running_azurite() as storage:
        settings = {
            "AzureWebJobsStorage": storage.connection_string,
            "AOS_STORAGE__BACKEND": "azure",
            "AOS_GOVERNANCE__AUDIT_BACKEND": "table",
            "AOS_GOVERNANCE__AUDIT_TABLE": AUDIT_TABLE,
            "AOS_DEVHOST__MASTER_KEY": "deployed-master-key",
        }
        host = HostProcess(root, settings, None, python=python, app_dir=app)
        for name in _LEAKS:
            host.env.pop(name, None)
        host.start()
        try:
            yield Deployment(root, package, app, python, files, host, storage.connection_string)
        finally:
            host.stop()


def test_the_package_holds_the_app_and_its_lock_only(deployment: Deployment) -> None:
    # Read from the zip: the running host may write bytecode into the unpacked folder, as on Azure.
    with zipfile.ZipFile(deployment.package) as archive:
        names = archive.namelist()
        assert archive.read("requirements.txt") == (REPO / "requirements.txt").read_bytes()
    assert len(names) == deployment.files
    assert {name.split("/")[0] for name in names} == SHIPPED
    assert not [name for name in names if "__pycache__" in name or ".egg-info" in name or name.endswith(".pyc")]
    assert {name for name in names if name.startswith("config/")} == {
        f"config/{p.name}" for p in (REPO / "config").iterdir()}


def test_the_app_runs_from_its_folder_without_the_dev_install(deployment: Deployment) -> None:
    deployed = _probe(deployment.python, deployment.app)
    assert deployed["app_file"] == str(deployment.app / "function_app.py")
    assert not deployed["aos_distribution"] and deployed["aos_entry_points"] == []
    assert not any(entry.startswith(str(REPO)) for entry in deployed["path"] if entry)
    # The function index the Functions host gets from the deployed app is the repository's.
    repo = _probe(sys.executable, REPO)
    assert deployed["functions"] == repo["functions"]
    assert len(deployed["functions"]) >= 20


def test_health_is_ready_and_the_builtin_types_are_known(deployment: Deployment) -> None:
    with deployment.http() as http:
        health = http.get("/api/health", params={"ready": "1"})
        assert health.status_code == 200, health.text
        assert health.json()["checks"]["storage"] == "ok"
        unknown = http.post("/api/agents", json={"type": "no-such-type", "id": "nobody"})
        assert unknown.status_code == 400
        assert "registered types: ceo, cfo, cto, tally" in unknown.json()["detail"]
        assert {a["id"] for a in http.get("/api/agents").json()["agents"]} >= {"ceo", "cfo", "cto"}
        created = http.post("/api/agents", json={"type": "tally", "id": "deployed-tally", "subscribe": ["deploy.*"]})
        assert created.status_code == 201, created.text
        answer = http.post("/api/events", params={"wait": 20},
                           json={"specversion": "1.0", "id": "deploy-1", "source": "test", "type": "deploy.check"})
        assert answer.status_code == 200, answer.text
        assert [r["result"] for r in answer.json()["results"] if r["agent_id"] == "deployed-tally"] == [{"total": 1}]


def test_the_business_scenario_runs_on_the_deployed_app(deployment: Deployment) -> None:
    with deployment.http() as http:
        check_scenario(deployment.host.base, KEY, http)
    # State and audit went to the storage account, as on Azure.
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(deployment.storage) as blobs:
        names = [b.name for b in blobs.get_container_client("aos-state").list_blobs()]
    assert any("cfo" in name for name in names) and len(names) > 10
    with TableServiceClient.from_connection_string(deployment.storage) as tables:
        entries = list(tables.get_table_client(AUDIT_TABLE).list_entities())
    assert len(entries) > 20
