"""The dashboard page (`page.html`) and the headers it is served with, read once on first use.

The page is plain HTML with one inline style and one inline script; the Content-Security-Policy allows exactly
those two by hash and lets the page talk only to its own origin, so the page works on a closed network.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from aos_core.api import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from aos_core.auth import Caller
    from aos_core.kernel import AgentOperatingSystem

_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@cache
def dashboard_page() -> tuple[bytes, dict[str, str]]:
    """The page's bytes and its response headers (no-cache, a self-only CSP, no sniffing, no referrer)."""
    text = (resources.files("services.dashboard") / "page.html").read_text(encoding="utf-8")
    blocks: dict[str, list[str]] = {"script": [], "style": []}
    for tag, body in _BLOCK.findall(text):
        blocks[tag].append(_hash(body))
    if len(blocks["script"]) != 1 or len(blocks["style"]) != 1:
        raise RuntimeError("page.html must hold exactly one plain <script> and one plain <style> block")
    csp = (f"default-src 'none'; script-src {blocks['script'][0]}; style-src {blocks['style'][0]}; "
           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer"}
    return text.encode("utf-8"), headers


async def serve(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    """`GET /api/dashboard` (services.dashboard.operations)."""
    body, headers = dashboard_page()
    return ApiResponse(200, body, dict(headers), "text/html")
