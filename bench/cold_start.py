"""Cold start: what `import function_app` costs a new Functions worker. Prints JSON lines; not a test.

  import_function_app_ms        median wall time of `python -c "import function_app"`
  import_functions_sdk_ms       median of `python -c "import azure.functions, azure.durable_functions"`, the floor
                                every Durable Python app pays
  cold_start_ratio              the first over the second (target <= 1.25)
  heavy_modules_loaded          Azure SDKs / mcp / OpenTelemetry modules that `import function_app` loaded (target 0)

Both imports run in fresh interpreters, interleaved, so machine load affects them alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (The OpenTelemetry API is not listed: azure.durable_functions itself imports it.)
HEAVY = ("azure.servicebus", "azure.storage", "azure.data.tables", "azure.identity", "azure.keyvault",
         "azure.monitor", "azure.ai.ml", "mcp")
APP = "import function_app"
SDK = "import azure.functions, azure.durable_functions"


def emit(metric: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return (time.perf_counter() - start) * 1000


def heavy_modules() -> list[str]:
    probe = (f"{APP}; import sys, json; print(json.dumps(sorted(m for m in sys.modules "
             f"if m.startswith({HEAVY!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True, text=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--small", action="store_true", help="a quick smoke run (5 repeats)")
    args = parser.parse_args()
    repeats = 5 if args.small else args.repeats
    timed(APP), timed(SDK)  # warm the OS file cache and __pycache__ once
    app, sdk = [], []
    for _ in range(repeats):
        app.append(timed(APP))
        sdk.append(timed(SDK))
    app_ms, sdk_ms = statistics.median(app), statistics.median(sdk)
    emit("import_function_app_ms", app_ms, "ms", repeats=repeats)
    emit("import_functions_sdk_ms", sdk_ms, "ms", repeats=repeats)
    emit("cold_start_ratio", app_ms / sdk_ms, "ratio", target=1.25)
    loaded = heavy_modules()
    emit("heavy_modules_loaded", len(loaded), "modules", names=loaded)


if __name__ == "__main__":
    main()
