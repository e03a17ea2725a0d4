"""checkov in its own virtual environment under the user cache folder, built once, then used offline.

checkov pins packaging<24 and python-dateutil<2.10, which would downgrade what the runtime and the other test
tools need, so it never goes into .venv. The environment is keyed by a hash of `checkov-requirements.txt`, so
changing the pin builds a new one. `CHECKOV_EXECUTABLE` points at an existing checkov instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aos"


def environment_dir() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    return cache_root() / f"checkov-{digest}"


def checkov_executable() -> Path:
    """The checkov to run: `CHECKOV_EXECUTABLE`, else the cached environment, built now if missing.

    Building needs the package index once; RuntimeError (with pip's output) if it cannot be built.
    """
    explicit = os.environ.get("CHECKOV_EXECUTABLE")
    if explicit:
        return Path(explicit)
    target = environment_dir()
    exe = target / "bin" / "checkov"
    marker = target / ".installed"
    if marker.exists() and exe.exists():
        return exe
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    python = target / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "-r", str(REQUIREMENTS)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not install checkov into {target}:\n{done.stdout}\n{done.stderr}")
    marker.write_text(REQUIREMENTS.read_text(encoding="utf-8"), encoding="utf-8")
    return exe


if __name__ == "__main__":  # `python tests/infra/checkov_env.py`: build the environment ahead of the tests
    sys.stdout.write(f"{checkov_executable()}\n")
