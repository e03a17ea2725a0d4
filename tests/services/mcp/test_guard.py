"""`services.mcp.guard`: which origins may call /api/mcp, and which bodies are not one JSON-RPC message."""

from __future__ import annotations

import pytest

from services.mcp.guard import OriginPolicy, envelope_error


def test_the_apps_own_host_name_on_azure_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_HOSTNAME", "aos-prod.azurewebsites.net")
    policy = OriginPolicy(["https://aos.example.com"])
    assert policy.allows("https://aos-prod.azurewebsites.net") and policy.allows("https://aos.example.com/")
    assert not policy.allows("https://aos-prod.azurewebsites.net.evil.io")
    assert not policy.allows("https://aos-prod.azurewebsites.net:8443")  # another port is another origin
    assert not policy.allows("https://evil.example.com") and not policy.allows("file://")
    assert not policy.allows("http://localhost:notaport") and not policy.allows("http://localhost/path")
    assert policy.allows(None)  # no Origin: not a browser


@pytest.mark.parametrize("body, code", [
    (b"{not json", -32700), (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', -32600),
    (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', -32600),
    (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', -32600), (b'"ping"', -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', -32600), (b'{"jsonrpc": "2.0", "id": 1}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}', -32600),
])
def test_what_is_not_one_json_rpc_message_is_refused_with_the_right_code(body: bytes, code: int) -> None:
    refused = envelope_error(body)
    assert refused is not None and refused[0] == 400 and refused[1]["error"]["code"] == code


@pytest.mark.parametrize("body", [
    b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}', b'{"jsonrpc": "2.0", "id": "a", "method": "x"}',
    b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', b'{"jsonrpc": "2.0", "id": 1, "result": {}}',
])
def test_one_request_notification_or_response_passes(body: bytes) -> None:
    assert envelope_error(body) is None
