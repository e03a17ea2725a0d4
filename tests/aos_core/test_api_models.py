"""The OpenAPI document generated from the API's pydantic models."""

from __future__ import annotations

from openapi_spec_validator import validate

from aos_core.openapi import openapi_document
from function_app import API


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document(API)
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_the_app_serves_is_described() -> None:
    paths = openapi_document(API)["paths"]
    expected = {("/api/health", "get"), ("/api/openapi.json", "get"), ("/api/events", "post"),
                ("/api/events/{id}", "get"), ("/api/agents", "get"), ("/api/agents", "post"),
                ("/api/agents/{agent_id}", "get"), ("/api/agents/{agent_id}", "delete"),
                ("/api/agents/{agent_id}/messages", "post"), ("/api/agents/{agent_id}/context", "get")}
    described = {(path, method) for path, item in paths.items() for method in item if method != "parameters"}
    assert expected <= described
    for path, item in paths.items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert any(code.startswith("2") for code in operation["responses"]), (path, method)
