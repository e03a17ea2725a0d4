"""End-to-end tests: `aos serve` as a subprocess on a free port, used over real HTTP like a user would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.host_process import KEY, ROOT, HostProcess, free_port  # `make_host` is a plugin fixture

__all__ = ["KEY", "ROOT", "HostProcess", "free_port"]


@pytest.fixture(scope="module")
def in_process_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """function_app on the local host inside the test process (uvicorn on a free port); its base URL.

    Entity signals go through the real Durable client to the host's own webhooks; the function key is
    `tests.services.devhost.conftest.FUNCTION_KEY`.
    """
    from aos_core import runtime
    from services.devhost.server import DevHost
    from services.devhost.settings import HostSettings
    from tests.services.devhost.conftest import FUNCTION_KEY, MASTER_KEY, ServerThread
    from tests.support.function_calls import indexed_function_app

    folder = tmp_path_factory.mktemp("host")
    env = {"AOS_DATA_DIR": str(folder / "data"), "AOS_CONFIG_DIR": str(folder), "AOS_EVENTS_TOPIC": "agent.events",
           "AOS_EVENTS_SUBSCRIPTION": "aos-runtime", "AOS_MESSAGES_TOPIC": "agent.messages",
           "AOS_MESSAGES_SUBSCRIPTION": "aos-runtime", "AOS_TICK_SCHEDULE": "0 0 0 1 1 *"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        runtime.reset_aos()
        settings = HostSettings(app_dir=Path.cwd(), data_dir=folder / "data", port=free_port(),
                                function_key=FUNCTION_KEY, master_key=MASTER_KEY)
        host = DevHost(indexed_function_app(), settings)
        with ServerThread(host.app, host.settings.port, host.settings.host):
            yield host.settings.base_url
        runtime.reset_aos()
