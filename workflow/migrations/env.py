"""Alembic environment: the models' metadata and the URL from the configuration or the environment."""

from alembic import context
from sqlmodel import SQLModel

from workflow import models  # noqa: F401  (registers the tables)
from workflow.config import from_environment
from workflow.db import make_engine
from workflow.name_search import is_index_object

config = context.config
target_metadata = SQLModel.metadata


def include_name(name, type_, parent_names) -> bool:
    """Autogenerate compares the models' tables only: the name index (FTS5 tables, triggers) is not one."""
    return not is_index_object(name)


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata, render_as_batch=True,
                          include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or from_environment()["DATABASE_URL"]
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
