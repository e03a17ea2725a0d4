"""The warm kernel of a Functions worker: built once, on one long-lived loop thread, reachable from anywhere."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from aos_core import runtime


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    runtime.reset_aos()


def test_sync_callers_on_many_threads_share_one_kernel_and_one_loop() -> None:
    seen: list[tuple[int, int]] = []

    async def identify(aos: object) -> tuple[int, int]:
        return id(aos), id(asyncio.get_running_loop())

    threads = [threading.Thread(target=lambda: seen.append(runtime.run_with_aos(identify))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len(set(seen)) == 1
    assert seen[0] == (id(runtime.get_aos()), id(runtime.kernel_loop().loop))


async def test_async_callers_reach_the_kernel_loop_from_their_own_loop() -> None:
    async def where(aos: object) -> threading.Thread:
        return threading.current_thread()

    thread = await runtime.with_aos(where)
    assert thread is not threading.current_thread() and thread.name == "aos-kernel"
    # Twice from this loop: the same warm kernel, not a rebuilt one.
    first = await runtime.with_aos(lambda aos: asyncio.sleep(0, aos))
    assert await runtime.with_aos(lambda aos: asyncio.sleep(0, aos)) is first


def test_the_kernel_is_hosted_and_reset_builds_a_new_one_on_the_same_loop() -> None:
    aos = runtime.get_aos()
    assert aos.hosted
    loop = runtime.kernel_loop().loop
    runtime.reset_aos()
    again = runtime.get_aos()
    assert again is not aos and runtime.kernel_loop().loop is loop


def test_a_bad_setting_fails_the_build_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_API__MAX_WAIT", "-1")
    with pytest.raises(Exception, match="AOS_API__MAX_WAIT"):
        runtime.get_aos()
