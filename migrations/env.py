"""Alembic environment. The URL comes from the caller's config (gisapproval.migrate) or,
for the plain `alembic` command, from DATABASE_URL / the app's own cluster."""

import re

from alembic import context
from sqlalchemy import pool

from gisapproval.db import make_engine
from gisapproval.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from gisapproval.config import database_url, load_settings

    return database_url(load_settings())


def include_object(obj, name, type_, reflected, compare_to):
    # PostGIS's own tables (spatial_ref_sys, topology) are not ours; each layer's partition of
    # layer_features (layer_features_p<id>) is made at run time by its first import (0009).
    if type_ == "table" and (name in {"spatial_ref_sys"} or re.fullmatch(r"layer_features_p\d+", name or "")):
        return False
    return True


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
