"""Alembic environment: runs on a connection handed in by ``bot.store.migrate``."""

from __future__ import annotations

from alembic import context

from bot.store.migrate import include_object
from bot.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `supportbot db upgrade`, not the alembic CLI")


context.configure(
    connection=connection,
    include_object=include_object,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
