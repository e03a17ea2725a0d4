"""aos_core must load no cloud SDK, mcp or OpenTelemetry module, so cold start stays cheap."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("azure", "mcp", "opentelemetry", "services", "agents")


def test_importing_the_kernel_loads_no_sdk() -> None:
    code = (
        "import sys, aos_core, aos_core.kernel, aos_core.runtime, aos_core.config, aos_core.scheduler\n"
        "import aos_core.api, aos_core.auth, aos_core.event_records\n"
        "from aos_core import AgentOperatingSystem, AOSConfig\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"aos_core imported: {out.stdout.strip()}"
