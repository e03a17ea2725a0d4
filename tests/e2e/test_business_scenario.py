"""The "launch product X" scenario end to end: `aos serve` with the shipped examples/config as a subprocess,
the example script posting the scenario over HTTP, and the API showing what the agents did.

The CEO, CFO and CTO run as Durable entities behind the local host and talk only through its Service Bus
topics, exactly as on Azure Functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.scenario import check_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_launch_product_x_over_the_local_host(make_host: Any) -> None:
    config = json.loads((ROOT / "examples" / "config" / "aos.json").read_text())
    host = make_host({}, config)
    host.start()
    key = host.env["AOS_DEVHOST__FUNCTION_KEY"]
    with httpx.Client(base_url=host.base, headers={"x-functions-key": key}, timeout=30) as http:
        check_scenario(host.base, key, http)
