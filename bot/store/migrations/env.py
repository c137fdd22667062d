"""Alembic environment: runs on a connection handed in by ``bot.store.migrate``."""

from __future__ import annotations

from alembic import context

from bot.store.schema import is_search_index_object, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `supportbot db upgrade`, not the alembic CLI")


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave the dialect-specific full-text index (migration 0002) out of schema diffs."""
    return not (reflected and compare_to is None and is_search_index_object(name, type_))


context.configure(
    connection=connection,
    include_object=include_object,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
