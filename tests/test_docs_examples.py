"""Every example in README.md and docs/ runs as written: shell blocks against a real local host, Python blocks
as the complete programs they are, JSON blocks as valid config.

The host is `aos serve` with the sample config (`examples/config`) plus the custom agent's type, which is what
`make run` serves after the agent tutorial's steps. Two things differ from a reader's terminal, so that the suite
can run beside `make run` and in parallel: the host listens on a free port (the blocks' `127.0.0.1:7071` and
`localhost:7071` are pointed there, and `AOS_URL` is set for the `aos` command and the MCP example), and the
blocks run in a scratch folder that links to the repository's files, so what they write (`dist/`,
`my-config/`, `ml-yaml/`) stays out of the checkout.

A fence may say why a block is not run: `sh azure` needs an Azure subscription; `sh server` starts something
that runs until Ctrl-C (`make run`), or is this suite (`make test`). Those are the only exceptions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aos_core.config import AOSConfig
from tests.support.host_process import KEY, ROOT, HostProcess

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([a-z]*)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
LANGUAGES = {"sh", "python", "json", "text"}
NOT_RUN = {"azure": "needs an Azure subscription", "server": "runs until stopped (or is the test suite)"}
SCRATCH_EXCLUDE = {".git", ".aos", "dist", "my-config", "ml-yaml", ".aos-run", "test-artifacts"}


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    language: str
    tags: tuple[str, ...]
    code: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def _examples() -> list[Example]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            found.append(Example(str(page.relative_to(ROOT)), text.count("\n", 0, match.start()) + 1,
                                 match.group(1), tuple(match.group(2).split()), match.group(3)))
    return found


EXAMPLES = _examples()
RUNNABLE = [e for e in EXAMPLES if e.language in ("sh", "python") and not set(e.tags) & set(NOT_RUN)]


def test_every_fence_says_what_it_is_and_only_known_reasons_skip_one() -> None:
    for example in EXAMPLES:
        assert example.language in LANGUAGES, f"{example}: fence language {example.language!r}"
        assert set(example.tags) <= set(NOT_RUN), f"{example}: unknown fence tags {example.tags}"
        if example.language == "sh" and not example.tags:  # long-running or cloud commands must say so
            assert not re.search(r"^\s*(make (run|test)\b|azd |az )", example.code, re.M), \
                f"{example}: tag it `sh server` or `sh azure`"
    assert len(RUNNABLE) >= 15


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.language == "json"], ids=str)
def test_json_examples_are_valid_config(example: Example) -> None:
    value = json.loads(example.code)
    if isinstance(value, dict) and set(value) <= set(AOSConfig.model_fields):
        AOSConfig.model_validate(value)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    config = json.loads((ROOT / "examples/config/aos.json").read_text())
    custom = json.loads((ROOT / "examples/custom_agent/config.json").read_text())
    config.setdefault("agents", {}).setdefault("types", {}).update(custom["agents"]["types"])
    served = HostProcess(tmp_path_factory.mktemp("docs-host"), {}, config)
    served.start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs-scratch")
    for entry in ROOT.iterdir():
        if entry.name not in SCRATCH_EXCLUDE:
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.parametrize("example", RUNNABLE, ids=str)
def test_the_example_runs_as_written(example: Example, host: HostProcess, scratch: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    env.update(AOS_URL=host.base, AOS_KEY=KEY, AOS_DEVHOST__FUNCTION_KEY=KEY, AOS_DATA_DIR=str(host.data),
               PYTHONPATH=str(ROOT))
    code = example.code.replace("127.0.0.1:7071", f"127.0.0.1:{host.port}").replace(
        "localhost:7071", f"127.0.0.1:{host.port}")
    if example.language == "python":
        program = scratch / f"example_{example.line}.py"
        program.write_text(code)
        command = [sys.executable, str(program)]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{example} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
