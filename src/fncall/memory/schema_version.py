"""The memory database's schema version, checked every time a store opens it.

A fresh database gets the current tables and version. An older one is brought up to date by the steps in
`MIGRATIONS`, one version at a time, inside the same transaction. A newer one (written by a later fncall)
is refused untouched, because this code cannot know what its columns mean.

To change the schema: edit models.py, add `MIGRATIONS[n] = step` that turns version n into n + 1 with
portable DDL, and raise `CURRENT_SCHEMA_VERSION` to n + 1.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, func, insert, inspect, select, update

from fncall.memory.errors import SchemaVersionError
from fncall.memory.models import Base, SchemaVersionRow, utc_now

CURRENT_SCHEMA_VERSION = 1

Migration = Callable[[Connection], None]
MIGRATIONS: dict[int, Migration] = {}
"""`MIGRATIONS[n]` upgrades a database at version n to version n + 1."""

_VERSION_ROW_ID = 1
_SCHEMA_LOCK_KEY = 0x666E6361_6C6C  # "fncall" in ASCII: the PostgreSQL advisory lock of schema set-up


def read_schema_version(connection: Connection) -> int | None:
    """The database's schema version, or None when it has never held a memory store."""
    if not inspect(connection).has_table(SchemaVersionRow.__tablename__):
        return None
    version = connection.execute(
        select(SchemaVersionRow.version).where(SchemaVersionRow.id == _VERSION_ROW_ID)
    ).scalar_one_or_none()
    return version


def ensure_schema(connection: Connection, *, database: str = "the database") -> int:
    """Create or upgrade the schema on `connection` (inside its transaction) and return the version it has.

    Raises SchemaVersionError, changing nothing, when the database is newer than this code.
    """
    lock_schema_setup(connection)
    version = read_schema_version(connection)
    if version is None:
        Base.metadata.create_all(connection)
        connection.execute(
            insert(SchemaVersionRow).values(
                id=_VERSION_ROW_ID, version=CURRENT_SCHEMA_VERSION, updated_at=utc_now()
            )
        )
        return CURRENT_SCHEMA_VERSION
    if version > CURRENT_SCHEMA_VERSION:
        raise SchemaVersionError(
            f"The memory database {database} has schema version {version}, but this fncall only knows "
            f"versions up to {CURRENT_SCHEMA_VERSION}. It was left untouched: upgrade fncall, or open "
            "another database (set FNCALL_DATA_DIR or pass a different url)."
        )
    if version == CURRENT_SCHEMA_VERSION:
        return version
    while version < CURRENT_SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise SchemaVersionError(
                f"The memory database {database} has schema version {version} and this fncall has no "
                f"migration from it to version {version + 1}. Open it with the fncall release that wrote it."
            )
        step(connection)
        version += 1
    connection.execute(
        update(SchemaVersionRow)
        .where(SchemaVersionRow.id == _VERSION_ROW_ID)
        .values(version=version, updated_at=utc_now())
    )
    return version


def lock_schema_setup(connection: Connection) -> None:
    """Make processes that open one PostgreSQL database at once (replicas starting together) set up its
    schema one at a time; otherwise each sees no tables, all create them and all but one fail. The lock is
    released when the transaction ends; call it first in any transaction that creates tables. SQLite needs
    none: its `BEGIN IMMEDIATE` already serialises this."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
