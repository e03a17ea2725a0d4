"""Property-based run over the OpenAPI document (schemathesis), against function_app on the local host in-process.

Every operation gets generated requests (valid and invalid); no answer may be a 5xx, and every answer must
match the document's schema for its status. The host runs on uvicorn in this process, so entity signals
go through the real Durable client to the host's own webhooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

import function_app  # noqa: F401  (registers the service-area operations described in the document)
from aos_core import runtime
from aos_core.api_models import openapi_document
from services.devhost.server import DevHost
from services.devhost.settings import HostSettings
from tests.services.devhost.conftest import FUNCTION_KEY, MASTER_KEY, ServerThread, free_port
from tests.support.function_calls import indexed_function_app

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    env = {"AOS_DATA_DIR": str(folder / "data"), "AOS_CONFIG_DIR": str(folder), "AOS_EVENTS_TOPIC": "agent.events",
           "AOS_EVENTS_SUBSCRIPTION": "aos-runtime", "AOS_MESSAGES_TOPIC": "agent.messages",
           "AOS_MESSAGES_SUBSCRIPTION": "aos-runtime", "AOS_TICK_SCHEDULE": "0 0 0 1 1 *"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        runtime.reset_aos()
        settings_ = HostSettings(app_dir=Path.cwd(), data_dir=folder / "data", port=free_port(),
                                 function_key=FUNCTION_KEY, master_key=MASTER_KEY)
        host = DevHost(indexed_function_app(), settings_)
        with ServerThread(host):
            yield host.settings.base_url
        runtime.reset_aos()


@SCHEMA.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_5xx_or_an_answer_outside_the_schema(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers={"x-functions-key": FUNCTION_KEY}, checks=CHECKS)
