"""The entry point behind `aos serve`: load the app, index it once, serve it on uvicorn."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from aos_core.errors import ConfigError


def serve(*, host: str = "127.0.0.1", port: int = 7071, data: Path | None = None, app: str = "function_app:app",
          app_dir: Path = Path("."), settings_file: Path | None = None, log_level: str = "info",
          instances: int = 1) -> int:
    """Load the app, index it once, print its URLs and serve it until interrupted; 2 for a bad setting.

    `instances` above 1 runs that many of these hosts as worker processes over one data folder, behind a
    front door on `port` (services/devhost/instances.py).
    """
    import uvicorn

    from services.devhost.folder_lock import own_data_folder
    from services.devhost.index import index_functions, load_app
    from services.devhost.instances import serve_instances, watch_supervisor
    from services.devhost.limits import guarded_protocol
    from services.devhost.server import DevHost, banner
    from services.devhost.settings import load_host_settings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    use_fast_event_loops()  # before any loop exists: the front door's, the server's and the kernel's
    app_dir = app_dir.resolve()
    # The folder has one owner: this host, or the supervisor of the instances this one is a worker of.
    worker = bool(os.environ.get("AOS_DEVHOST__SUPERVISOR_PID"))
    owner = f"the local host on http://{host}:{port}"
    with ExitStack() as held:
        try:
            settings = load_host_settings(
                app_dir, data.resolve() if data else None, host=host, port=port, settings_file=settings_file,
                claim=None if worker else lambda folder: held.enter_context(own_data_folder(folder, owner)))
            if instances > 1:  # the keys are in the data folder now, so every worker uses the same ones
                return serve_instances(instances, settings, app=app, log_level=log_level,
                                       guarded=guarded_protocol(settings))
            watch_supervisor()
            functions = index_functions(load_app(app, app_dir))
            dev_host = DevHost(functions, settings)
        except ConfigError as exc:
            print(f"aos: {exc}", file=sys.stderr)
            return 2
        print(banner(dev_host, settings.sources), flush=True)
        config = uvicorn.Config(dev_host.app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="on", timeout_graceful_shutdown=10, http=guarded_protocol(settings))
        uvicorn.Server(config).run()  # on the loop uvicorn picks (uvloop when installed)
    return 0


def use_fast_event_loops() -> None:
    """Make every event loop this process creates from now on a uvloop one, when uvloop is installed.

    uvicorn runs the server's loop on uvloop by itself; the kernel's loops (aos_core.runtime) and the front door
    of `--instances` come from the policy, and a request crosses from the server's loop to the kernel's and back,
    which uvloop makes cheaper. Without uvloop (a development dependency, not one a deployment installs)
    asyncio's own loops serve the same way.
    """
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
