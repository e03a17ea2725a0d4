"""The app's function index: load `module:attr` like the Functions worker and read every function's bindings.

`FunctionApp.get_functions()` indexes once (a second call raises on duplicate names), so the host calls it
exactly once and keeps the result here.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aos_core.errors import ConfigError
from services.devhost.settings import resolve

SUPPORTED = ("httpTrigger", "timerTrigger", "serviceBusTrigger", "entityTrigger", "orchestrationTrigger",
             "activityTrigger")


@dataclass
class FunctionSpec:
    """One indexed function: its trigger binding, its other bindings and the callable to invoke."""

    name: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    func: Callable[..., Any]
    is_async: bool
    durable_clients: list[str] = field(default_factory=list)
    wants_context: bool = False

    @property
    def trigger_type(self) -> str:
        return str(self.trigger.get("type", ""))

    @property
    def supported(self) -> bool:
        return self.trigger_type in SUPPORTED

    def describe(self) -> str:
        """The trigger in one line, with `%SETTING%` names replaced by their values as the host uses them."""
        t = {k: _resolved(v) for k, v in self.trigger.items()}
        if self.trigger_type == "httpTrigger":
            methods = ",".join(t.get("methods") or ["*"])
            return f"HTTP {methods} /{t.get('route') or self.name} (auth {str(t.get('authLevel', 'FUNCTION')).lower()})"
        if self.trigger_type == "timerTrigger":
            return f"timer {t.get('schedule')}" + (" run_on_startup" if t.get("runOnStartup") else "")
        if self.trigger_type == "serviceBusTrigger":
            where = t.get("queueName") or f"{t.get('topicName')}/{t.get('subscriptionName')}"
            return f"Service Bus {where}"
        if self.trigger_type == "entityTrigger":
            return f"entity {t.get('entityName') or self.name}"
        if self.trigger_type == "orchestrationTrigger":
            return f"orchestrator {t.get('orchestration') or self.name}"
        if self.trigger_type == "activityTrigger":
            return f"activity {t.get('activity') or self.name}"
        return f"{self.trigger_type} (not supported by the local host)"


def load_app(target: str, app_dir: Path) -> Any:
    """Import `module:attr` (default attr `app`) from `app_dir`, as the worker imports function_app.py."""
    module_name, _, attr = target.partition(":")
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import the function app {module_name!r} from {app_dir}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if app is None or not hasattr(app, "get_functions"):
        raise ConfigError(f"{target}: no FunctionApp named {attr or 'app'!r} in module {module_name!r}")
    return app


def app_functions(app: Any) -> list[Any]:
    """`app.get_functions()`, called once per app object (a second call would raise) and kept on the app."""
    functions = getattr(app, "_aos_indexed_functions", None)
    if functions is None:
        functions = app.get_functions()
        app._aos_indexed_functions = functions
    return list(functions)


def index_functions(app: Any) -> list[FunctionSpec]:
    """Every function of `app` with its trigger."""
    specs: list[FunctionSpec] = []
    for function in app_functions(app):
        raw = json.loads(function.get_function_json())
        bindings = raw.get("bindings", [])
        triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1:
            raise ConfigError(f"function {function.get_function_name()}: expected one trigger, found {len(triggers)}")
        func = function.get_user_function()
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        specs.append(FunctionSpec(
            name=function.get_function_name(), trigger=triggers[0], bindings=bindings, func=func,
            is_async=inspect.iscoroutinefunction(func),
            durable_clients=[b["name"] for b in bindings if b.get("type") == "durableClient"],
            wants_context="context" in params and triggers[0].get("name") != "context"))
    return specs


def _resolved(value: Any) -> Any:
    # A setting that is not set stays as written: describing a function never fails.
    try:
        return resolve(value, "binding")
    except ConfigError:
        return value
