"""Alembic environment: runs on the connection the inbox hands it (see inbox.store.db.migrate)."""

from alembic import context
from sqlmodel import SQLModel

import inbox.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `inbox.store.db.migrate`, which supplies the connection")

# render_as_batch: SQLite cannot ALTER most things, so Alembic rebuilds tables there.
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
