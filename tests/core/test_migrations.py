"""The schema comes from Alembic migrations: upgrade from empty, one step down and up again."""

import re

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gisapproval import migrate
from gisapproval.db import make_engine
from gisapproval.models import SRID, Base

TABLES = {
    "departments", "users", "user_roles", "layers", "layer_versions", "layer_features", "projects",
    "project_parcels", "buildings", "stage_instances", "review_tasks", "check_runs", "check_results",
    "correction_notices", "clock_events", "events", "api_tokens",
}
GEOMETRY_COLUMNS = {
    ("parcels", "geom"), ("layers", "coverage"), ("layer_features", "geom"), ("buildings", "geom"),
    ("check_results", "evidence"),
}
VIEWS = {"parcels"}  # the cadastre layer's parcels (migration 0009): indexed through layer_features
# web-mercator centres the importer computes for small-scale tiles (migration 0010): found through geom's index
WEB_CENTRES = {("layer_features", "centre_web"), ("parcels", "centre_web")}


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
    assert VIEWS <= set(sa.inspect(mig_engine).get_view_names())
    assert migrate.current_heads(empty_db_url) == {_script().get_current_head()}


def test_geometries_are_in_the_jurisdiction_srid_with_gist_indexes(empty_db_url, mig_engine):
    migrate.upgrade(empty_db_url)
    with mig_engine.connect() as c:
        rows = c.execute(sa.text("SELECT f_table_name, f_geometry_column, srid FROM geometry_columns")).all()
        got = {(t, col): srid for t, col, srid in rows}
        assert set(got) == GEOMETRY_COLUMNS | WEB_CENTRES
        assert {got[c] for c in GEOMETRY_COLUMNS} == {SRID} == {4547}
        assert {got[c] for c in WEB_CENTRES} == {3857}
        for table, column in GEOMETRY_COLUMNS - {(v, "geom") for v in VIEWS}:
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
    """As migrations/env.py: PostGIS's table and the layers' partitions are not compared."""
    return not (type_ == "table" and (name == "spatial_ref_sys" or re.fullmatch(r"layer_features_p\d+", name)))


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


def test_layer_partitions_are_vacuumed_promptly_from_their_migration(empty_db_url, mig_engine):
    """Migration 0013 gives every existing partition of layer_features autovacuum thresholds of
    1%, and takes them back on downgrade."""
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "0012")

    def options() -> dict[str, list[str] | None]:
        with mig_engine.connect() as c:
            return dict(c.execute(sa.text(
                "SELECT c.relname, c.reloptions FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
                "WHERE h.inhparent = 'layer_features'::regclass")).all())

    with mig_engine.begin() as c:
        for n in (901, 902):
            c.execute(sa.text(f"CREATE TABLE layer_features_p{n} PARTITION OF layer_features FOR VALUES IN ({n})"))
    try:
        assert options() == {"layer_features_p901": None, "layer_features_p902": None}
        migrate.upgrade(empty_db_url)
        prompt = ["autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_insert_scale_factor=0.01"]
        assert options() == {"layer_features_p901": prompt, "layer_features_p902": prompt}
        migrate.downgrade(empty_db_url, "0012")
        assert set(options().values()) == {None}
    finally:
        with mig_engine.begin() as c:
            c.execute(sa.text("DROP TABLE layer_features_p901, layer_features_p902"))
        migrate.upgrade(empty_db_url)


def test_feature_keys_compare_by_bytes_from_their_migration(empty_db_url, mig_engine):
    """Migration 0015 gives layer_features' key column, every partition's, their key indexes
    and the parcels view's code the collation "C", keeps the view as it was, and takes the
    collation back on downgrade."""
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "0014")

    def collations() -> tuple[dict[str, str], set[str]]:
        with mig_engine.connect() as c:
            columns = dict(c.execute(sa.text(
                "SELECT c.relname, co.collname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_collation co ON co.oid = a.attcollation "
                "WHERE a.attname IN ('feature_key', 'parcel_code') AND c.relname IN "
                "('layer_features', 'layer_features_p901', 'layer_features_p902', 'parcels')")).all())
            indexes = set(c.execute(sa.text(
                "SELECT DISTINCT co.collname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "CROSS JOIN unnest(i.indcollation) u(coll) JOIN pg_collation co ON co.oid = u.coll "
                "WHERE c.relname LIKE 'layer_features%'")).scalars())
        return columns, indexes

    def view() -> str:
        with mig_engine.connect() as c:
            return c.execute(sa.text("SELECT pg_get_viewdef('parcels'::regclass)")).scalar()

    with mig_engine.begin() as c:
        for n in (901, 902):
            c.execute(sa.text(f"CREATE TABLE layer_features_p{n} PARTITION OF layer_features FOR VALUES IN ({n})"))
    tables = ("layer_features", "layer_features_p901", "layer_features_p902", "parcels")
    try:
        before = view()
        assert collations() == (dict.fromkeys(tables, "default"), {"default"})
        migrate.upgrade(empty_db_url)
        assert collations() == (dict.fromkeys(tables, "C"), {"C"})
        assert view() == before
        migrate.downgrade(empty_db_url, "0014")
        assert collations() == (dict.fromkeys(tables, "default"), {"default"})
        assert view() == before
    finally:
        with mig_engine.begin() as c:
            c.execute(sa.text("DROP TABLE layer_features_p901, layer_features_p902"))
        migrate.upgrade(empty_db_url)


def test_the_key_collations_migration_keeps_the_views_grants_and_comment_and_the_keys_statistics(own_sample_db):
    """Down from and up to 0015 on the sample district: the parcels view keeps the privileges
    granted on it and its comment, and the key column has statistics again each way (changing
    its collation drops them)."""

    def state(c):
        return (c.execute(sa.text("SELECT has_table_privilege('public', 'parcels', 'SELECT')")).scalar(),
                c.execute(sa.text("SELECT obj_description('parcels'::regclass, 'pg_class')")).scalar(),
                c.execute(sa.text("SELECT count(*) FROM pg_stats WHERE tablename LIKE 'layer_features_p%' "
                                  "AND attname = 'feature_key'")).scalar())

    with own_sample_db("migrate_collation") as url:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as c:
                c.execute(sa.text("GRANT SELECT ON parcels TO PUBLIC"))
                c.execute(sa.text("COMMENT ON VIEW parcels IS 'the cadastre''s parcels, for the reporting desk'"))
                c.execute(sa.text("ANALYZE layer_features"))
                partitions = c.execute(sa.text("SELECT count(*) FROM pg_class WHERE relname LIKE 'layer_features_p%' "
                                               "AND relkind = 'r'")).scalar()
            assert partitions > 1
            expected = (True, "the cadastre's parcels, for the reporting desk", partitions)
            with engine.connect() as c:
                assert state(c) == expected
            migrate.downgrade(url, "0014")
            with engine.connect() as c:
                assert state(c) == expected
            migrate.upgrade(url)
            with engine.connect() as c:
                assert state(c) == expected
        finally:
            engine.dispose()


def test_downgrade_to_base_leaves_nothing(empty_db_url, mig_engine):
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "base")
    assert _tables(mig_engine) == {"alembic_version"}
    migrate.upgrade(empty_db_url)
    assert TABLES <= _tables(mig_engine)


def test_partitioning_keeps_every_feature_parcel_and_project_parcel(settings, own_sample_db):
    """Down to 0008 (one layer_features table, a parcels table) and up again (migration 0009)
    with the sample district loaded: every feature, every parcel id and code and shape, every
    project's parcels stay as they were; each layer's features are in its own partition."""
    parcels_sql = ("SELECT id, parcel_code, is_retired, md5(ST_AsBinary(ST_Multi(geom))) FROM parcels "
                   "ORDER BY id")
    features_sql = ("SELECT layer_id, feature_key, valid_from, valid_to, attrs::text, md5(ST_AsEWKB(geom)) "
                    "FROM layer_features "
                    "ORDER BY layer_id, feature_key, valid_from")
    links_sql = "SELECT project_id, parcel_id FROM project_parcels ORDER BY 1, 2"
    with own_sample_db("migrate_data") as url:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as c:
                before = [c.execute(sa.text(q)).all() for q in (parcels_sql, features_sql, links_sql)]
                layer_ids = set(c.execute(sa.text("SELECT DISTINCT layer_id FROM layer_features")).scalars())
            assert len(before[0]) > 100 and len(before[2]) > 10
            migrate.downgrade(url, "0008")
            assert "parcels" in _tables(engine) and not _partitions(engine)
            with engine.connect() as c:
                assert [c.execute(sa.text(q)).all() for q in (parcels_sql, features_sql, links_sql)] == before
            migrate.upgrade(url)
            with engine.connect() as c:
                assert [c.execute(sa.text(q)).all() for q in (parcels_sql, features_sql, links_sql)] == before
                parts = dict(c.execute(sa.text(
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'layer_features'::regclass "
                    "AND c.relkind = 'r'")).all())
                assert parts == {f"layer_features_p{i}": f"FOR VALUES IN ({i})" for i in layer_ids}
                assert compare_metadata(MigrationContext.configure(c, opts={"include_object": _ours}),
                                        Base.metadata) == []
                with pytest.raises(sa.exc.IntegrityError, match="no parcel with id"):
                    c.execute(sa.text("INSERT INTO project_parcels (project_id, parcel_id) "
                                      "SELECT min(id), -1 FROM projects"))
        finally:
            engine.dispose()


def _partitions(engine) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(sa.text("SELECT relname FROM pg_class WHERE relname LIKE 'layer_features_p%' "
                                     "AND relkind = 'r'")).scalars())
