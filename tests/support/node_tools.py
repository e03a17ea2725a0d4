"""Node.js tools the tests start from the repo's package.json (Azurite, the local Cosmos DB server)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def node_with(package_file: Path, what: str) -> str:
    """The `node` executable, after `npm install` when `package_file` is missing; skips the test without Node.js."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"Node.js is not installed: {what} (npm package) is needed to run these tests")
    if not package_file.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"npm is not installed: cannot install {what} from package.json")
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=REPO, check=True)
    return node


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate `process`, killing it if it has not exited 10 s later."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
