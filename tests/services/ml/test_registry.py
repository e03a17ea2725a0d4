"""The adapter registry over both embedded stores: versions, stages, promotion, rollback, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aos_core.errors import ConflictError, NotFoundError
from aos_core.testing import ManualClock
from services.ml.registry import AdapterRegistry, InvalidAdapterError, Stage, semver_key
from services.storage import InMemoryStateStore, SqliteStateStore


@pytest.fixture(params=["sqlite", "memory"])
async def registry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AdapterRegistry]:
    store = SqliteStateStore(tmp_path / "state.db") if request.param == "sqlite" else InMemoryStateStore()
    yield AdapterRegistry(store, clock=ManualClock())
    await store.close()


async def test_register_and_list_in_semver_order(registry: AdapterRegistry) -> None:
    for version in ("1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.3"):
        await registry.register("ceo", version, base_model="azureml:llama-3-8b:1", metrics={"win_rate": 0.5},
                                training_data="azureml:ceo-dpo:3")
    versions = await registry.versions("ceo")
    assert [v.version for v in versions] == ["0.9.3", "1.2.0-rc.1", "1.2.0", "1.10.0"]
    assert all(v.stage == Stage.STAGING for v in versions)
    got = await registry.get("ceo", "1.2.0")
    assert got.base_model == "azureml:llama-3-8b:1" and got.training_data == "azureml:ceo-dpo:3"
    assert got.ref == "ceo@1.2.0"
    assert await registry.names() == ["ceo"]


async def test_duplicate_version_is_a_conflict_and_keeps_the_first(registry: AdapterRegistry) -> None:
    await registry.register("cfo", "1.0.0", base_model="base-a")
    with pytest.raises(ConflictError, match="already registered"):
        await registry.register("cfo", "1.0.0", base_model="base-b")
    assert (await registry.get("cfo", "1.0.0")).base_model == "base-a"


@pytest.mark.parametrize(("name", "version", "base"), [
    ("CEO", "1.0.0", "b"), ("ceo/x", "1.0.0", "b"), ("", "1.0.0", "b"),
    ("ceo", "1.0", "b"), ("ceo", "v1.0.0", "b"), ("ceo", "01.0.0", "b"), ("ceo", "1.0.0", ""),
])
async def test_bad_input_is_rejected_and_nothing_is_stored(registry: AdapterRegistry, name: str, version: str,
                                                           base: str) -> None:
    with pytest.raises(InvalidAdapterError):
        await registry.register(name, version, base_model=base)
    assert await registry.names() == []


async def test_promote_then_rollback(registry: AdapterRegistry) -> None:
    assert await registry.production("ceo") is None
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        await registry.register("ceo", version, base_model="base")
    await registry.promote("ceo", "1.0.0")
    await registry.promote("ceo", "1.1.0")
    promoted = await registry.promote("ceo", "2.0.0")
    assert promoted.stage == Stage.PRODUCTION
    assert (await registry.production("ceo")).version == "2.0.0"
    assert (await registry.get("ceo", "1.1.0")).stage == Stage.STAGING  # demoted, kept for rollback

    back = await registry.rollback("ceo")
    assert back.version == "1.1.0" and back.stage == Stage.PRODUCTION
    assert (await registry.get("ceo", "2.0.0")).stage == Stage.STAGING
    # An archived version is skipped on the way back.
    await registry.archive("ceo", "2.0.0")
    assert (await registry.rollback("ceo")).version == "1.0.0"
    with pytest.raises(ConflictError, match="no earlier version"):
        await registry.rollback("ceo")
    assert (await registry.production("ceo")).version == "1.0.0"


async def test_rollback_skips_archived_versions(registry: AdapterRegistry) -> None:
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        await registry.register("cto", version, base_model="base")
        await registry.promote("cto", version)
    await registry.archive("cto", "1.1.0")
    assert (await registry.rollback("cto")).version == "1.0.0"


async def test_archive_rules(registry: AdapterRegistry) -> None:
    await registry.register("ceo", "1.0.0", base_model="base")
    await registry.promote("ceo", "1.0.0")
    with pytest.raises(ConflictError, match="in production"):
        await registry.archive("ceo", "1.0.0")
    await registry.register("ceo", "1.1.0", base_model="base")
    assert (await registry.archive("ceo", "1.1.0")).stage == Stage.ARCHIVED
    with pytest.raises(ConflictError, match="archived"):
        await registry.promote("ceo", "1.1.0")
    assert [v.version for v in await registry.versions("ceo", stage="archived")] == ["1.1.0"]


async def test_missing_things_are_not_found(registry: AdapterRegistry) -> None:
    with pytest.raises(NotFoundError):
        await registry.get("ceo", "9.9.9")
    with pytest.raises(NotFoundError):
        await registry.promote("ceo", "9.9.9")
    with pytest.raises(NotFoundError, match="no production version"):
        await registry.rollback("ceo")


async def test_metrics_merge(registry: AdapterRegistry) -> None:
    await registry.register("ceo", "1.0.0", base_model="base", metrics={"loss": 0.4})
    updated = await registry.set_metrics("ceo", "1.0.0", {"win_rate": 0.61})
    assert updated.metrics == {"loss": 0.4, "win_rate": 0.61}
    assert (await registry.get("ceo", "1.0.0")).metrics == {"loss": 0.4, "win_rate": 0.61}


async def test_concurrent_promotions_leave_one_consistent_pointer(registry: AdapterRegistry) -> None:
    import asyncio

    for version in ("1.0.0", "1.1.0", "1.2.0"):
        await registry.register("ceo", version, base_model="base")
    await asyncio.gather(*(registry.promote("ceo", v) for v in ("1.0.0", "1.1.0", "1.2.0")))
    production = await registry.production("ceo")
    in_production = await registry.versions("ceo", stage=Stage.PRODUCTION)
    assert production is not None
    assert [v.version for v in in_production] == [production.version]


def test_semver_key_orders_prereleases_first() -> None:
    assert semver_key("1.0.0-alpha") < semver_key("1.0.0") < semver_key("1.0.1") < semver_key("1.10.0")


@pytest.mark.parametrize("version", ["1\u0663.0.0", "1.1\u0660.0", "1.0.1\uff11"])  # Arabic-Indic, fullwidth digits
def test_a_version_is_ascii_digits_only(version: str) -> None:
    with pytest.raises(InvalidAdapterError, match="invalid version"):
        semver_key(version)


def test_semver_key_follows_semver_precedence_within_prereleases() -> None:
    # The example list of SemVer 2.0.0, section 11, in ascending order.
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0"]
    assert sorted(reversed(ordered), key=semver_key) == ordered
