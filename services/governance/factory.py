"""Build the configured AuditLog (the composition root calls this; so does `aos audit verify`)."""

from __future__ import annotations

import os
from typing import Any

from aos_core.config import AOSConfig
from aos_core.errors import ConfigError
from aos_core.ports import AuditLog, Clock, SecretStore


async def audit_key(config: AOSConfig, secrets: SecretStore | None = None) -> bytes | None:
    """The HMAC key named by `governance.audit_hmac_secret`, from the SecretStore (or the environment)."""
    name = config.governance.audit_hmac_secret
    if not name:
        return None
    value = await secrets.get_secret(name) if secrets is not None else os.environ.get(name)
    if not value:
        # Never fall back to unkeyed hashes silently: entries would stop being forgery-proof.
        raise ConfigError(f"governance.audit_hmac_secret: secret {name!r} is not set")
    return value.encode("utf-8")


async def open_audit_log(config: AOSConfig, *, secrets: SecretStore | None = None, clock: Clock | None = None,
                         **backend_options: Any) -> AuditLog:
    """The AuditLog `config.governance` selects: SQLite at `audit_path` (default data_dir/audit.db) or Table Storage.

    The Table Storage backend (`services.governance.table_audit.TableAuditLog`, on the storage connection named
    by `storage.connection`) is imported only when selected.
    """
    settings = config.governance
    key = await audit_key(config, secrets)
    if settings.audit_backend == "sqlite":
        from services.governance.audit import SqliteAuditLog

        return SqliteAuditLog(settings.audit_path or config.data_dir / "audit.db", clock=clock, hmac_key=key)
    from services.governance.table_audit import TableAuditLog
    from services.storage.connections import resolve_storage_connection

    # The storage connection is resolved now, so a missing setting fails at start and names itself.
    connection = resolve_storage_connection(config.storage.connection)
    return TableAuditLog(connection, table=settings.audit_table, clock=clock, hmac_key=key, **backend_options)
