"""Failures a script can rely on: one line on stderr, no traceback, exit 1 (host said no), 2 (usage), 3 (no host);
and where the key comes from when no --key or AOS_KEY is given."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Aos, cli_env, run_aos
from tests.support.host_process import KEY, ROOT, free_port


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_wrong_key_is_exit_1_naming_401_and_never_echoes_the_key(aos: Aos) -> None:
    result = aos("agents", "list", key="not-the-key-42")
    assert result.returncode == 1
    line = _one_line(result)
    assert line.startswith("aos: 401 Unauthorized: ") and "not-the-key-42" not in line


def test_unknown_agent_is_exit_1_naming_404(aos: Aos) -> None:
    for args in (["agents", "show", "nobody"], ["context", "show", "nobody"], ["agents", "terminate", "nobody", "-y"]):
        result = aos(*args)
        assert result.returncode == 1
        assert _one_line(result) == "aos: 404 Not found: agent 'nobody' is not registered"
    result = aos("events", "show", "never-sent")
    assert (result.returncode, _one_line(result)) == (1, "aos: 404 Not found: no event 'never-sent' was accepted")


def test_the_host_refusing_input_is_exit_1_with_its_problem_detail(aos: Aos) -> None:
    result = aos("agents", "register", "no-such-type", "x1")
    assert result.returncode == 1
    assert _one_line(result).startswith("aos: 400 Invalid request: unknown agent type 'no-such-type'")


def test_bad_input_is_exit_2_before_anything_is_sent(aos: Aos, tmp_path: Path) -> None:
    bad_file = tmp_path / "bad.json"
    bad_file.write_text("[{")
    cases = [
        (["send", "count.x", "--data", "{not json"], "aos: --data: not JSON"),
        (["send", "--file", str(bad_file)], "aos: --file: not JSON"),
        (["send"], "aos: give the event TYPE, or --file with CloudEvents"),
        (["send", "count.x", "--to", "counter", "--subject", "s"], "aos: --subject does not go with --to"),
        (["agents", "register", "tally", "x2", "--config", "[1]"], "aos: Invalid value for --config: must be a JSON"),
        (["agents", "show"], "aos: Missing argument 'ID'."),
        (["send", "count.x", "--wait", "-1"], "aos: Invalid value for '--wait'"),
        (["agents", "list", "--url", "ftp://example"], "aos: Invalid value for '--url'"),
        (["audit", "verify", "--data", str(tmp_path)], "aos: --config and --data go with --local"),
    ]
    accepted = ["audit", "list", "--action", "event.accepted", "--limit", "1000", "--json"]
    before = json.loads(aos(*accepted).stdout)["entries"]
    for args, start in cases:
        result = aos(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert _one_line(result).startswith(start), (args, result.stderr)
    assert json.loads(aos(*accepted).stdout)["entries"] == before  # nothing reached the host


def test_no_host_is_exit_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["agents", "list"], ["send", "count.x", "--wait", "5"], ["audit", "verify"]):
        result = run_aos(*args, "--url", url)
        assert result.returncode == 3
        assert _one_line(result) == f"aos: no AOS host at {url} (start one with aos serve)"


def test_the_key_comes_from_local_settings_json_in_the_current_folder(aos: Aos, tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"AOS_DEVHOST__FUNCTION_KEY": KEY}}))
    result = run_aos("agents", "list", "--json", env=cli_env(AOS_URL=aos.host.base), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "counter" in {a["id"] for a in json.loads(result.stdout)["agents"]}


def test_the_key_comes_from_the_environment_setting(aos: Aos, tmp_path: Path) -> None:
    env = cli_env(AOS_URL=aos.host.base, AOS_DEVHOST__FUNCTION_KEY=KEY)
    assert run_aos("agents", "list", env=env, cwd=tmp_path).returncode == 0


def test_the_key_comes_from_the_keys_a_local_host_generated(aos: Aos, tmp_path: Path) -> None:
    # What `aos serve` keeps in its data folder when no key is configured (.aos unless AOS_DATA_DIR says).
    (tmp_path / ".aos").mkdir()
    (tmp_path / ".aos" / "host_keys.json").write_text(json.dumps({"function": KEY, "master": "m"}))
    assert run_aos("agents", "list", env=cli_env(AOS_URL=aos.host.base), cwd=tmp_path).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keys").mkdir(parents=True)
    (elsewhere / "keys" / "host_keys.json").write_text(json.dumps({"function": KEY}))
    (elsewhere / "local.settings.json").write_text(json.dumps({"Values": {"AOS_DATA_DIR": "keys"}}))
    assert run_aos("agents", "list", env=cli_env(AOS_URL=aos.host.base), cwd=elsewhere).returncode == 0


def test_without_any_key_the_401_says_where_to_put_one(aos: Aos, tmp_path: Path) -> None:
    result = run_aos("agents", "list", env=cli_env(AOS_URL=aos.host.base), cwd=tmp_path)
    assert result.returncode == 1
    assert _one_line(result).endswith("(no key found: pass --key or set AOS_KEY)")


def test_importing_the_command_loads_no_http_server_kernel_or_sdk() -> None:
    code = ("import sys, services.cli.main; heavy = ('httpx', 'uvicorn', 'starlette', 'pydantic', 'aos_core.kernel', "
            "'azure', 'services.devhost.server'); print(sorted(m for m in sys.modules if m.split('.')[0] in heavy "
            "or m in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
