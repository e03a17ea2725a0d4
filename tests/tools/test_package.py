"""`make package`: the files a deployment holds, by the rules `func azure functionapp publish` applies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools.package import ALWAYS, SKIPPED_FILES, FuncIgnore, build, package_files

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("line", "path", "admitted"), [
    ("tests", "tests/test_x.py", False),
    ("tests", "tests_extra.py", False),  # Core Tools matches prefixes, not whole names
    ("tests", "services/tests/x.py", True),  # ... from the app root only
    ("__pycache__", "services/__pycache__/a.pyc", True),
    ("**/__pycache__", "services/__pycache__/a.pyc", False),
    ("*.egg-info", "aos.egg-info/PKG-INFO", False),
    ("*.egg-info", "lib/aos.egg-info/PKG-INFO", True),  # `*` is one path segment
    ("/infra", "infra/main.bicep", False),
    ("# infra", "infra/main.bicep", True),
])
def test_funcignore_lines_match_like_core_tools(line: str, path: str, admitted: bool) -> None:
    assert FuncIgnore(line).admits(path) is admitted


def test_a_negated_line_admits_again() -> None:
    rules = FuncIgnore("docs\n!docs/keep.md\n")
    assert not rules.admits("docs/drop.md") and rules.admits("docs/keep.md")


def test_the_package_follows_funcignore_and_always_has_requirements(tmp_path: Path) -> None:
    app = tmp_path / "app"
    for relative in ("function_app.py", "requirements.txt", "local.settings.json", "pkg/mod.py",
                     "pkg/__pycache__/mod.pyc", "notes/a.md", ".git/HEAD", "sub/.gitignore"):
        (app / relative).parent.mkdir(parents=True, exist_ok=True)
        (app / relative).write_text(relative)
    (app / ".funcignore").write_text("notes\nrequirements.txt\n**/__pycache__\n")
    assert package_files(app) == ["function_app.py", "pkg/mod.py", "requirements.txt"]
    out, count = build(app, tmp_path / "dist" / "app.zip")
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["function_app.py", "pkg/mod.py", "requirements.txt"]
        assert archive.read("pkg/mod.py") == b"pkg/mod.py"
    assert count == 3
    first = out.read_bytes()
    build(app, out)
    assert out.read_bytes() == first  # the same tree gives the same package


def test_a_folder_without_requirements_is_not_a_deployment(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text("")
    with pytest.raises(FileNotFoundError, match=r"requirements\.txt"):
        package_files(tmp_path)


def test_make_package_prints_size_and_file_count(tmp_path: Path) -> None:
    out = tmp_path / "functionapp.zip"
    run = subprocess.run([sys.executable, "-m", "tools.package", "--out", str(out)], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)
    report = json.loads(run.stdout)
    assert report == {"package": str(out), "files": len(zipfile.ZipFile(out).namelist()), "bytes": out.stat().st_size}
    assert f"{report['files']} files" in run.stderr
    assert {name.split("/")[0] for name in zipfile.ZipFile(out).namelist()} == {
        "function_app.py", "host.json", "requirements.txt", "aos_core", "agents", "services", "config"}


def test_git_reading_of_funcignore_gives_the_same_package() -> None:
    # azd reads .funcignore with git's rules, Core Tools with its own prefix rules: for this repository's file
    # both must give the same package, whichever tool deploys it.
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")

    def git_files(*args: str) -> set[str]:
        out = subprocess.run(["git", "ls-files", "-z", *args], cwd=REPO, capture_output=True, check=True).stdout
        return {path for path in out.decode().split("\0") if path}

    tracked = git_files("--cached")
    ignored = git_files("--cached", "--ignored", "--exclude-from=.funcignore")
    by_git = {path for path in tracked - ignored if Path(path).name.lower() not in SKIPPED_FILES} | {ALWAYS}
    assert set(package_files(REPO)) & tracked == by_git
