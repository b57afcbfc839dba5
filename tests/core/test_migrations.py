"""The schema comes from Alembic migrations: upgrade from empty, one step down and up again."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gisapproval import migrate
from gisapproval.db import make_engine
from gisapproval.models import SRID, Base

TABLES = {
    "departments", "users", "user_roles", "layers", "layer_versions", "layer_features", "parcels", "projects",
    "project_parcels", "buildings", "stage_instances", "review_tasks", "check_runs", "check_results",
    "correction_notices", "clock_events", "events", "api_tokens",
}
GEOMETRY_COLUMNS = {
    ("parcels", "geom"), ("layers", "coverage"), ("layer_features", "geom"), ("buildings", "geom"),
    ("check_results", "evidence"),
}


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"spatial_ref_sys"}


def _has_trigger(engine) -> bool:
    with engine.connect() as c:
        return bool(c.execute(sa.text(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal")).scalar())


@pytest.fixture(scope="module")
def mig_engine(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def test_upgrade_from_empty_creates_every_table(empty_db_url, mig_engine):
    assert _tables(mig_engine) == set()
    migrate.upgrade(empty_db_url)
    assert TABLES <= _tables(mig_engine)
    assert migrate.current_heads(empty_db_url) == {_script().get_current_head()}


def test_geometries_are_in_the_jurisdiction_srid_with_gist_indexes(empty_db_url, mig_engine):
    migrate.upgrade(empty_db_url)
    with mig_engine.connect() as c:
        rows = c.execute(sa.text("SELECT f_table_name, f_geometry_column, srid FROM geometry_columns")).all()
        got = {(t, col): srid for t, col, srid in rows}
        assert set(got) == GEOMETRY_COLUMNS
        assert set(got.values()) == {SRID} == {4547}
        for table, column in GEOMETRY_COLUMNS:
            gist = c.execute(sa.text(
                "SELECT count(*) FROM pg_indexes WHERE tablename = :t AND indexdef ILIKE :d"),
                {"t": table, "d": f"%USING gist ({column})%"}).scalar()
            assert gist == 1, f"{table}.{column} lacks a GiST index"


def test_models_and_migrations_agree(empty_db_url, mig_engine):
    migrate.upgrade(empty_db_url)
    with mig_engine.connect() as c:
        ctx = MigrationContext.configure(c, opts={"include_object": _ours})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def _ours(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name == "spatial_ref_sys")


def _columns(engine, table) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrate.alembic_config("postgresql://unused"))


def test_one_step_down_and_up_again(empty_db_url, mig_engine):
    script = _script()
    head = script.get_current_head()
    migrate.upgrade(empty_db_url)
    assert migrate.current_heads(empty_db_url) == {head}
    migrate.downgrade(empty_db_url, "-1")
    assert migrate.current_heads(empty_db_url) == {script.get_revision(head).down_revision}
    migrate.upgrade(empty_db_url)
    assert migrate.current_heads(empty_db_url) == {head}
    with mig_engine.connect() as c:
        assert compare_metadata(MigrationContext.configure(c, opts={"include_object": _ours}), Base.metadata) == []


def test_retired_parcels_come_and_go_with_their_migration(empty_db_url, mig_engine):
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "0002")
    assert "is_retired" not in _columns(mig_engine, "parcels")
    migrate.upgrade(empty_db_url)
    assert "is_retired" in _columns(mig_engine, "parcels")


def test_the_audit_guard_comes_and_goes_with_its_migration(empty_db_url, mig_engine):
    migrate.upgrade(empty_db_url)
    assert _has_trigger(mig_engine)
    migrate.downgrade(empty_db_url, "0001")
    assert migrate.current_heads(empty_db_url) == {"0001"}
    assert not _has_trigger(mig_engine)
    migrate.upgrade(empty_db_url)
    assert _has_trigger(mig_engine)


def test_downgrade_to_base_leaves_nothing(empty_db_url, mig_engine):
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "base")
    assert _tables(mig_engine) == {"alembic_version"}
    migrate.upgrade(empty_db_url)
    assert TABLES <= _tables(mig_engine)
