"""Property-based run over the OpenAPI document (schemathesis), against function_app on the local host in-process.

Every operation gets generated requests (valid and invalid); no answer may be a 5xx, and every answer must
match the document's schema for its status. The host runs on uvicorn in this process, so entity signals
go through the real Durable client to the host's own webhooks.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

import function_app  # noqa: F401  (registers the service-area operations described in the document)
from aos_core.api_models import openapi_document
from tests.services.devhost.conftest import FUNCTION_KEY

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@SCHEMA.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_5xx_or_an_answer_outside_the_schema(case: Any, in_process_host: str) -> None:
    case.call_and_validate(base_url=in_process_host, headers={"x-functions-key": FUNCTION_KEY}, checks=CHECKS)
