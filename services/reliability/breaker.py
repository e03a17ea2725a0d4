"""One circuit breaker per dependency: closed -> open after N failures -> half-open after a timeout -> closed.

Every adapter that calls something that can be down (Service Bus, Blob Storage, Key Vault, an MCP server)
wraps the call in the breaker named after that dependency, taken from its kernel's registry
(`aos.breakers.get("servicebus")`), so all callers share one view of its health and the health route can
show it (`aos.breakers.states()`). Time comes from an aos_core Clock, so tests drive it with ManualClock.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from aos_core.clock import SystemClock
from aos_core.errors import AgentUnavailableError
from aos_core.ports import Clock

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitOpenError(AgentUnavailableError):
    """The dependency's breaker is open: the call was not attempted. Try again after `retry_after` seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry after {retry_after:.1f} s")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    """Counts consecutive failures of `expected_exception`; opens at `failure_threshold`.

    While open, calls fail fast with CircuitOpenError. After `timeout` seconds the breaker is half-open and
    lets `half_open_max_calls` trial calls through at once: when that many succeed it closes, when one fails
    it opens again for another `timeout`. An exception that is not an `expected_exception` means the
    dependency answered (bad input, not found), so it counts as a success. Thread-safe: the runtime's loop
    thread and the Functions worker threads may share a breaker.
    """

    def __init__(
        self,
        name: str = "default",
        failure_threshold: int = 5,
        timeout: float = 60.0,
        expected_exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        half_open_max_calls: int = 1,
        clock: Clock | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold!r}")
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        if half_open_max_calls < 1:
            raise ValueError(f"half_open_max_calls must be >= 1, got {half_open_max_calls!r}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.timeout = float(timeout)
        self.expected_exception = expected_exception
        self.half_open_max_calls = half_open_max_calls
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0  # consecutive, while closed
        self._opened_at = 0.0  # clock.monotonic() when it last opened
        self._trials = 0  # half-open calls in flight
        self._trial_successes = 0
        self._last_error: str | None = None
        self.counts = {"successes": 0, "failures": 0, "rejected": 0, "opened": 0}

    # --- state --------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """"closed", "open" or "half_open" (open turns half-open by itself once `timeout` has passed)."""
        with self._lock:
            return self._current()

    def _current(self) -> str:
        if self._state == OPEN and self.clock.monotonic() - self._opened_at >= self.timeout:
            self._state, self._trials, self._trial_successes = HALF_OPEN, 0, 0
        return self._state

    def _retry_after(self) -> float:
        return max(0.0, self.timeout - (self.clock.monotonic() - self._opened_at))

    def _open(self) -> None:
        self._state, self._opened_at, self._trials, self._failures = OPEN, self.clock.monotonic(), 0, 0
        self.counts["opened"] += 1

    def reset(self) -> None:
        """Close the breaker and forget failures (an operator's manual override)."""
        with self._lock:
            self._state, self._failures, self._trials, self._trial_successes = CLOSED, 0, 0, 0

    def snapshot(self) -> dict[str, Any]:
        """The breaker's state for the health route and the breaker-state gauge."""
        with self._lock:
            state = self._current()
            return {
                "name": self.name,
                "state": state,
                "consecutive_failures": self._failures,
                "failure_threshold": self.failure_threshold,
                "timeout": self.timeout,
                "retry_after": round(self._retry_after(), 3) if state == OPEN else 0.0,
                "last_error": self._last_error,
                **self.counts,
            }

    # --- calls --------------------------------------------------------------------------------------

    def before_call(self) -> None:
        """Admit one call or raise CircuitOpenError; pair it with `on_success` or `on_failure`."""
        with self._lock:
            state = self._current()
            if state == OPEN or (state == HALF_OPEN and self._trials >= self.half_open_max_calls):
                self.counts["rejected"] += 1
                raise CircuitOpenError(self.name, self._retry_after() if state == OPEN else 0.0)
            if state == HALF_OPEN:
                self._trials += 1

    def on_success(self) -> None:
        with self._lock:
            self.counts["successes"] += 1
            if self._state == HALF_OPEN:
                self._trials = max(0, self._trials - 1)
                self._trial_successes += 1
                if self._trial_successes >= self.half_open_max_calls:
                    self._state, self._failures = CLOSED, 0
            elif self._state == CLOSED:
                self._failures = 0

    def on_failure(self, exc: BaseException | None = None) -> None:
        with self._lock:
            self.counts["failures"] += 1
            if exc is not None:
                # The type only: exception messages can carry URLs with SAS tokens.
                self._last_error = type(exc).__name__
            if self._state == HALF_OPEN:
                self._open()
            elif self._state == CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._open()

    def _release(self) -> None:
        # A cancelled call tells nothing about the dependency: give back its half-open slot.
        with self._lock:
            if self._state == HALF_OPEN:
                self._trials = max(0, self._trials - 1)

    def _settle(self, exc: BaseException | None) -> None:
        if exc is None:
            self.on_success()
        elif isinstance(exc, CircuitOpenError):
            self._release()  # a nested breaker refused: not this dependency's failure
        elif isinstance(exc, self.expected_exception):
            self.on_failure(exc)
        elif isinstance(exc, Exception):
            self.on_success()  # the dependency answered; the error is about the request
        else:
            self._release()  # CancelledError, KeyboardInterrupt

    async def __aenter__(self) -> CircuitBreaker:
        self.before_call()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._settle(exc)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`await fn(*args, **kwargs)` through the breaker."""
        self.before_call()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(exc)
            raise
        self._settle(None)
        return result

    def call_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` through the breaker, for synchronous SDK clients."""
        self.before_call()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(exc)
            raise
        self._settle(None)
        return result

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state!r})"


# --- the breakers of one kernel ---------------------------------------------------------------------


class BreakerRegistry:
    """One breaker per dependency name, shared by everything one kernel runs (its agents, reasoner, MCP
    clients); the health route and the breaker-state gauge read them. The kernel owns one (`aos.breakers`)."""

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, name: str, **kwargs: Any) -> CircuitBreaker:
        """The breaker for dependency `name`, created with `kwargs` on first use (later kwargs are ignored)."""
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = self._breakers[name] = CircuitBreaker(name=name, **kwargs)
            return breaker

    def states(self) -> dict[str, dict[str, Any]]:
        """`{name: snapshot}` of every breaker, for the health route and the breaker-state gauge."""
        with self._lock:
            breakers = list(self._breakers.values())
        return {b.name: b.snapshot() for b in breakers}
