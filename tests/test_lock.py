"""The locks are what deploys and what is tested: every range of requirements*.in pinned, with hashes.

A package added to `requirements.in` without `make lock`, or a hand-edited lock, fails here before a
deployment could install something no test ran.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(lock: str) -> dict[str, str]:
    """`name -> version` of a lock; each entry must carry hashes."""
    found: dict[str, str] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", (REPO / lock).read_text())
    for entry in entries:
        match = _PIN.match(entry)
        if match is None:
            assert entry.startswith("#"), f"{lock}: not a pinned requirement: {entry.splitlines()[0]!r}"
            continue
        assert "--hash=sha256:" in entry, f"{lock}: {match.group(1)} has no hash"
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def ranges(source: str) -> list[Requirement]:
    lines = [line.split("#")[0].strip() for line in (REPO / source).read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


@pytest.mark.parametrize(("source", "lock"), [("requirements.in", "requirements.txt"),
                                              ("requirements-dev.in", "requirements-dev.txt")])
def test_every_range_is_pinned_by_its_lock(source: str, lock: str) -> None:
    pinned = pins(lock)
    for requirement in ranges(source):
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} of {source} is not in {lock}: run `make lock`"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {requirement.name}=={version}, outside {source}'s {requirement.specifier}: run `make lock`")


def test_tests_run_the_versions_that_deploy() -> None:
    deployed, tested = pins("requirements.txt"), pins("requirements-dev.txt")
    assert {name: tested.get(name) for name in deployed} == deployed
