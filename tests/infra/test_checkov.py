"""checkov over infra/: no failed check except the ones accepted, with the reason, in infra/checkov-accepted.json.

checkov runs from its own environment (tests/infra/checkov_env.py) and offline: no Prisma Cloud download
(`--skip-download`, `BC_SKIP_MAPPING`), no PyPI version check (`CKV_SKIP_PACKAGE_UPDATE_CHECK`), and every HTTP(S)
request it might still make goes to a proxy port that refuses connections.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.bicep import INFRA, ROOT
from tests.infra.checkov_env import checkov_executable

ACCEPTED = INFRA / "checkov-accepted.json"


@pytest.fixture(scope="module")
def refusing_proxy() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused at once
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def checkov_report(refusing_proxy: str) -> dict[str, Any]:
    executable = checkov_executable()
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env |= {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "true", "HTTP_PROXY": refusing_proxy,
            "HTTPS_PROXY": refusing_proxy, "http_proxy": refusing_proxy, "https_proxy": refusing_proxy,
            "NO_PROXY": "", "no_proxy": ""}
    done = subprocess.run(
        [str(executable), "--directory", str(INFRA), "--framework", "bicep", "--skip-download", "--output", "json",
         "--compact"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False,
    )
    # Exit code 1 means "some checks failed", which the tests below judge; anything else is a crash.
    assert done.returncode in (0, 1), f"checkov exited {done.returncode}:\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    assert len(bicep) == 1, f"no bicep report: {done.stdout[:500]}"
    return bicep[0]


def accepted() -> dict[tuple[str, str], str]:
    data = json.loads(ACCEPTED.read_text(encoding="utf-8"))
    return {(entry["check_id"], entry["resource"]): entry["reason"] for entry in data["accepted"]}


def failures(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(check["check_id"], check["resource"]) for check in report["results"]["failed_checks"]}


def test_checkov_read_every_file(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0 and summary["resource_count"] > 0
    scanned = {check["file_path"] for kind in ("passed_checks", "failed_checks")
               for check in checkov_report["results"][kind]}
    assert {"/app/api.bicep", "/core/storage.bicep", "/core/keyvault.bicep"} <= scanned


def test_no_failed_check_that_is_not_accepted(checkov_report: dict[str, Any]) -> None:
    unexpected = sorted(failures(checkov_report) - set(accepted()))
    details = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
               for c in checkov_report["results"]["failed_checks"] if (c["check_id"], c["resource"]) in unexpected]
    assert not unexpected, "fix these or accept them with a reason in infra/checkov-accepted.json:\n" + "\n".join(
        details)


def test_every_accepted_finding_still_fails_and_has_a_reason(checkov_report: dict[str, Any]) -> None:
    stale = sorted(set(accepted()) - failures(checkov_report))
    assert not stale, f"these pass now; drop them from infra/checkov-accepted.json: {stale}"
    for key, reason in accepted().items():
        assert len(reason) > 40, f"{key}: give the reason"


def test_the_deployment_docs_explain_every_accepted_finding() -> None:
    page = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    missing = sorted({check_id for check_id, _ in accepted()} - set(re.findall(r"CKV2?_AZURE_\d+", page)))
    assert not missing, f"docs/deploying.md does not explain: {missing}"
