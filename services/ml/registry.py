"""The LoRA adapter registry: versions of each agent role's adapter, their stage, promotion and rollback.

Stored on the StateStore, so it works on SQLite locally and on Blob Storage in Azure:

    ml/adapters/{name}/versions/{version}   one AdapterVersion (semantic version, base model, metrics, data ref)
    ml/adapters/{name}/production           {"version": ..., "history": [earlier production versions]}

The production pointer is a separate document written with an ETag precondition, so two operators
promoting at once cannot both win, and rollback is "pop the history" rather than a guess. A version's stored
stage is `staging` or `archived`; `production` is read from the pointer, so the two can never disagree.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from aos_core.clock import SystemClock
from aos_core.errors import AOSError, ConflictError, NotFoundError
from aos_core.etag import retry_on_conflict, update_document
from aos_core.ports import Clock, StateStore

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# ASCII digits only: in a str pattern \d also matches other scripts' digits, which int() reads ("1\u0663" is 13)
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$", re.ASCII)
_ROOT = "ml/adapters"
_MAX_HISTORY = 50


class InvalidAdapterError(AOSError, ValueError):
    """An adapter name, version or field is not valid; nothing was stored."""


class Stage(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


def check_adapter_name(name: object) -> str:
    """`name` if it is a valid adapter name (lowercase letters, digits, `-`, `_`; 1-63 characters)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidAdapterError(f"invalid adapter name {name!r}: use 1-63 lowercase letters, digits, '-' or '_'")
    return name


def semver_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
    """Sort key of a semantic version by SemVer 2.0.0 precedence: a pre-release sorts before its release
    (1.0.0-rc.1 < 1.0.0), and its dot-separated parts compare numerically when numeric (beta.2 < beta.11),
    numbers before words, and a shorter list first when all else is equal (alpha < alpha.1)."""
    match = _SEMVER.match(version)
    if match is None:
        raise InvalidAdapterError(f"invalid version {version!r}: use a semantic version such as 1.2.0")
    major, minor, patch, pre = match.groups()
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return int(major), int(minor), int(patch), 0 if pre else 1, parts


class AdapterVersion(BaseModel):
    """One trained LoRA adapter: what it was trained from, how it scored, and where it is in its lifecycle."""

    name: str
    version: str
    base_model: str = Field(min_length=1)
    stage: Stage = Stage.STAGING
    metrics: dict[str, float] = Field(default_factory=dict)
    training_data: str | None = None  # a data asset reference, e.g. azureml:ceo-dpo:3
    artifact_uri: str | None = None  # where the adapter weights are, e.g. azureml://.../paths/adapters/ceo/1.2.0
    description: str = ""
    created_at: datetime
    updated_at: datetime

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_adapter_name(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        semver_key(value)
        return value

    @property
    def ref(self) -> str:
        """`name@version`, the id the cache and decision records use."""
        return f"{self.name}@{self.version}"


class AdapterRegistry:
    """Register, list, promote, archive and roll back adapter versions (one registry per StateStore)."""

    def __init__(self, store: StateStore, *, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()

    # --- versions -----------------------------------------------------------------------------------

    async def register(self, name: str, version: str, *, base_model: str, metrics: dict[str, float] | None = None,
                       training_data: str | None = None, artifact_uri: str | None = None,
                       description: str = "") -> AdapterVersion:
        """Record a new version in `staging`. ConflictError if that version exists; InvalidAdapterError if bad."""
        now = self.clock.now()
        try:
            adapter = AdapterVersion(name=name, version=version, base_model=base_model, metrics=metrics or {},
                                     training_data=training_data, artifact_uri=artifact_uri,
                                     description=description, created_at=now, updated_at=now)
        except ValidationError as exc:
            raise InvalidAdapterError(_explain(exc)) from None
        try:
            await self.store.put(self._key(name, version), adapter.model_dump(mode="json"), if_none_match=True)
        except ConflictError:
            raise ConflictError(self._key(name, version), f"adapter {name}@{version} is already registered") from None
        return adapter

    async def get(self, name: str, version: str) -> AdapterVersion:
        """One version; NotFoundError if it is not registered."""
        doc = await self.store.get(self._key(check_adapter_name(name), version))
        if doc is None:
            raise NotFoundError(f"adapter {name}@{version} is not registered")
        return self._overlay(AdapterVersion.model_validate(doc.value), await self._production_version(name))

    async def versions(self, name: str, *, stage: Stage | str | None = None) -> list[AdapterVersion]:
        """Every version of `name` (optionally of one stage), oldest semantic version first."""
        prefix = f"{_ROOT}/{check_adapter_name(name)}/versions/"
        found: list[AdapterVersion] = []
        after: str | None = None
        while True:
            page = await self.store.list(prefix, start_after=after, limit=1000)
            found += [AdapterVersion.model_validate(doc.value) for doc in page]
            if len(page) < 1000:
                break
            after = page[-1].key
        current = await self._production_version(name)
        found = [self._overlay(a, current) for a in found]
        if stage is not None:
            found = [a for a in found if a.stage == Stage(stage)]
        return sorted(found, key=lambda a: semver_key(a.version))

    async def names(self) -> list[str]:
        """Every adapter name that has at least one version."""
        names: set[str] = set()
        after: str | None = None
        while True:
            page = await self.store.list(f"{_ROOT}/", start_after=after, limit=1000)
            names.update(doc.key.split("/")[2] for doc in page)
            if len(page) < 1000:
                return sorted(names)
            after = page[-1].key

    # --- the production pointer ---------------------------------------------------------------------

    async def production(self, name: str) -> AdapterVersion | None:
        """The version in production now, or None (agents call this at each reasoning call, never cache it)."""
        doc = await self.store.get(self._pointer(check_adapter_name(name)))
        if doc is None or doc.value.get("version") is None:
            return None
        return await self.get(name, doc.value["version"])

    async def promote(self, name: str, version: str) -> AdapterVersion:
        """Make `version` production; the previous production version goes back to staging and into history."""
        target = await self.get(name, version)
        if target.stage == Stage.ARCHIVED:
            raise ConflictError(self._key(name, version),
                                f"adapter {name}@{version} is archived; register a new version")
        def point_here(pointer: Any) -> tuple[dict[str, Any] | None, bool]:  # (new pointer, whether it moved)
            pointer = pointer or {"version": None, "history": []}
            current = pointer.get("version")
            if current == version:
                return None, False
            history = [*pointer.get("history", []), current] if current else list(pointer.get("history", []))
            return {"version": version, "history": history[-_MAX_HISTORY:],
                    "changed_at": self.clock.now().isoformat()}, True

        if not await update_document(self.store, self._pointer(name), point_here, what=f"promotion of {name}"):
            return target  # already in production
        return target.model_copy(update={"stage": Stage.PRODUCTION})

    async def rollback(self, name: str) -> AdapterVersion:
        """Put the previous production version back (skipping archived ones); the current one goes to staging."""
        pointer = self._pointer(check_adapter_name(name))

        async def attempt() -> AdapterVersion | None:  # None: no earlier version to go back to
            doc = await self.store.get(pointer)
            if doc is None or not doc.value.get("version"):
                raise NotFoundError(f"adapter {name} has no production version to roll back")
            history = list(doc.value.get("history", []))
            previous: AdapterVersion | None = None
            while history and previous is None:
                candidate = await self.get(name, history.pop())
                previous = None if candidate.stage == Stage.ARCHIVED else candidate
            if previous is not None:
                new = {"version": previous.version, "history": history, "changed_at": self.clock.now().isoformat()}
                await self.store.put(pointer, new, if_match=doc.etag)
            return previous

        previous = await retry_on_conflict(attempt, key=pointer, what=f"rollback of {name}")
        if previous is None:
            raise ConflictError(pointer, f"adapter {name} has no earlier version to roll back to")
        return previous.model_copy(update={"stage": Stage.PRODUCTION})

    async def archive(self, name: str, version: str) -> AdapterVersion:
        """Retire a version. The production version cannot be archived: promote or roll back first."""
        doc = await self.store.get(self._pointer(check_adapter_name(name)))
        if doc is not None and doc.value.get("version") == version:
            raise ConflictError(self._key(name, version), f"adapter {name}@{version} is in production")
        return await self._set_stage(name, version, Stage.ARCHIVED)

    async def set_metrics(self, name: str, version: str, metrics: dict[str, float]) -> AdapterVersion:
        """Merge evaluation metrics into a version (e.g. after an offline evaluation run)."""
        async def attempt() -> AdapterVersion:
            doc = await self._doc(name, version)
            try:
                adapter = AdapterVersion.model_validate({**doc.value, "metrics": {**doc.value["metrics"], **metrics},
                                                         "updated_at": self.clock.now()})
                if any(isinstance(v, bool) for v in metrics.values()):
                    raise InvalidAdapterError("metrics must be numbers")
            except ValidationError as exc:
                raise InvalidAdapterError(_explain(exc)) from None
            await self.store.put(doc.key, adapter.model_dump(mode="json"), if_match=doc.etag)
            return adapter

        adapter = await retry_on_conflict(attempt, key=self._key(name, version), what="metrics update")
        return self._overlay(adapter, await self._production_version(name))

    # --- internals ----------------------------------------------------------------------------------

    async def _production_version(self, name: str) -> str | None:
        doc = await self.store.get(self._pointer(name))
        return None if doc is None else doc.value.get("version")

    @staticmethod
    def _overlay(adapter: AdapterVersion, production: str | None) -> AdapterVersion:
        if adapter.version == production:
            return adapter.model_copy(update={"stage": Stage.PRODUCTION})
        return adapter

    async def _set_stage(self, name: str, version: str, stage: Stage) -> AdapterVersion:
        async def attempt() -> AdapterVersion:
            doc = await self._doc(name, version)
            adapter = AdapterVersion.model_validate({**doc.value, "stage": stage, "updated_at": self.clock.now()})
            await self.store.put(doc.key, adapter.model_dump(mode="json"), if_match=doc.etag)
            return adapter

        return await retry_on_conflict(attempt, key=self._key(name, version), what="stage change")

    async def _doc(self, name: str, version: str) -> Any:
        doc = await self.store.get(self._key(check_adapter_name(name), version))
        if doc is None:
            raise NotFoundError(f"adapter {name}@{version} is not registered")
        return doc

    @staticmethod
    def _key(name: str, version: str) -> str:
        semver_key(version)
        return f"{_ROOT}/{name}/versions/{version}"

    @staticmethod
    def _pointer(name: str) -> str:
        return f"{_ROOT}/{name}/production"


def _explain(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'adapter'}: {e['msg']}" for e in exc.errors())
