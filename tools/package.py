"""`make package`: the zip a Functions deployment uploads, built by the rules Azure Functions Core Tools uses.

`func azure functionapp publish` walks the app folder, skips `.git` and `.vscode` folders and every
`.funcignore`, `.gitignore`, `local.settings.json` and `project.lock.json`, and drops each file whose path
(relative, `/`-separated) a `.funcignore` line matches by Core Tools' own gitignore reading: a line matches
path *prefixes*, `*` is one path segment, `**` anything, `!` re-admits. So `__pycache__` alone drops only the
top-level folder, which is why `.funcignore` says `**/__pycache__` too. `requirements.txt` (the hashed lock)
is always in the package: the remote build installs it.

    python -m tools.package [--app .] [--out dist/functionapp.zip]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from pathlib import Path

SKIPPED_DIRS = {".git", ".vscode"}
SKIPPED_FILES = {".funcignore", ".gitignore", "local.settings.json", "project.lock.json"}
ALWAYS = "requirements.txt"
DEFAULT_OUT = Path("dist") / "functionapp.zip"
_SPECIAL = re.compile(r"[\-\[\]/{}()+?.\\^$|]")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed times: the same tree always gives the same bytes


def _pattern(line: str) -> str:
    escaped = _SPECIAL.sub(lambda m: "\\" + m.group(0), line)
    return escaped.replace("**", "(.+)").replace("*", "([^/]+)")


class FuncIgnore:
    """The lines of a `.funcignore` as Core Tools reads them (`GitIgnoreParser`)."""

    def __init__(self, text: str) -> None:
        positive: list[str] = []
        negative: list[str] = []
        for raw in text.split("\n"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            target = negative if line.startswith("!") else positive
            line = line.removeprefix("!").removeprefix("/")
            target.append(_pattern(line))
        self._positive = self._compile(positive)
        self._negative = self._compile(negative)

    @staticmethod
    def _compile(patterns: list[str]) -> re.Pattern[str] | None:
        return re.compile("^((" + ")|(".join(sorted(patterns)) + "))") if patterns else None

    def admits(self, path: str) -> bool:
        if self._negative is not None and self._negative.match(path):
            return True
        return self._positive is None or not self._positive.match(path)


def package_files(app_dir: Path) -> list[str]:
    """The relative paths a deployment of `app_dir` contains, sorted."""
    ignore_file = app_dir / ".funcignore"
    rules = FuncIgnore(ignore_file.read_text(encoding="utf-8") if ignore_file.is_file() else "")
    found: list[str] = []
    for folder, dirs, files in os.walk(app_dir):
        dirs[:] = sorted(d for d in dirs if d.lower() not in SKIPPED_DIRS)
        for name in files:
            if name.lower() in SKIPPED_FILES:
                continue
            relative = (Path(folder) / name).relative_to(app_dir).as_posix()
            if rules.admits(relative) or relative == ALWAYS:
                found.append(relative)
    if ALWAYS not in found:
        raise FileNotFoundError(f"{app_dir / ALWAYS} is missing: a deployment installs it (run `make lock`)")
    return sorted(found)


def build(app_dir: Path, out: Path) -> tuple[Path, int]:
    """Write the package of `app_dir` to `out`; return its path and file count."""
    files = package_files(app_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            source = app_dir / relative
            info = zipfile.ZipInfo(relative, date_time=_EPOCH)
            info.external_attr = (source.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    partial.replace(out)
    return out, len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.package", description=__doc__.split("\n")[0])
    parser.add_argument("--app", type=Path, default=Path("."), help="the app folder (default: .)")
    parser.add_argument("--out", type=Path, default=None, help=f"the zip (default: APP/{DEFAULT_OUT})")
    args = parser.parse_args(argv)
    app_dir = args.app.resolve()
    try:
        out, count = build(app_dir, args.out or app_dir / DEFAULT_OUT)
    except (OSError, FileNotFoundError) as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    size = out.stat().st_size
    print(json.dumps({"package": str(out), "files": count, "bytes": size}))
    print(f"{out}: {count} files, {size / 1_000_000:.2f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
