"""A layer's first import builds its own partition of layer_features (migration 0009); the
parcels view follows the cadastre layer, a parcel keeping its id while it changes; a re-import
sends the database only the features whose content digest differs (migration 0010)."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gisapproval import migrate
from gisapproval.accounts import sync_departments
from gisapproval.catalogue import default_catalogue
from gisapproval.config import database_url
from gisapproval.db import drop_database, ensure_database, make_engine, session_scope
from gisapproval.errors import InputError
from gisapproval.layerimport import ImportOptions
from gisapproval.layerstore import register_layers
from gisapproval.layerversions import features_as_of, partition_name, publish_layer_version
from gisapproval.models import Layer, LayerFeature, LayerVersion, Parcel

X0, Y0 = 436000.0, 2542000.0  # inside the jurisdiction (EPSG:4547)


@pytest.fixture(scope="module")
def fresh_engine(settings):
    """A migrated database whose catalogue layers have never been imported."""
    url = database_url(settings, f"gisapproval_test_fresh_layers_{os.getpid()}_{secrets.token_hex(3)}")
    ensure_database(url)
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(sa.orm.sessionmaker(engine)) as s:
            sync_departments(s)
            register_layers(s, default_catalogue(), shapely.box(*settings.jurisdiction.extent),
                            settings.jurisdiction.srid)
        yield engine
    finally:
        engine.dispose()
        drop_database(url)


def pytest_generate_tests(metafunc):
    """Each test on the hazard layer runs twice: its re-imports take the live digests the import
    before kept on this machine, or ask the database for them, as on another machine."""
    if "hazard_layer" in metafunc.fixturenames and metafunc.definition.get_closest_marker("kept_digests") is None:
        metafunc.parametrize("live_digests_from", ["kept", "database"], indirect=True)


@pytest.fixture(autouse=True)
def live_digests_from(request, monkeypatch):
    """Where re-imports get the live digests: "kept" (gisapproval.digestcache) or "database"."""
    if getattr(request, "param", "kept") == "database":
        from gisapproval import digestcache

        monkeypatch.setattr(digestcache, "load", lambda token, count: None)
    return getattr(request, "param", "kept")


@pytest.fixture
def hazard_layer(fresh_engine):
    """A session on the fresh database, rolled back after the test, and its hazard_zones layer."""
    with Session(fresh_engine) as s:
        try:
            yield s, s.scalar(sa.select(Layer).where(Layer.name == "hazard_zones"))
        finally:
            s.rollback()


def hazards(codes, risk="medium"):
    return gpd.GeoDataFrame(
        {"zone_code": list(codes), "hazard_type": ["landslide"] * len(codes), "risk_level": [risk] * len(codes)},
        geometry=[shapely.box(X0 + i * 100, Y0, X0 + i * 100 + 80, Y0 + 80) for i in range(len(codes))],
        crs="EPSG:4547")


def _import(session, settings, frame, path, layer="hazard_zones"):
    frame.to_file(path)
    return publish_layer_version(session, settings, None, layer, path, options=ImportOptions(),
                                 check_permission=False)


def _imported_elsewhere(digest_files) -> None:
    """Forget the content digests kept by the imports so far (gisapproval.digestcache), as on
    another machine: the next re-import asks the database for them."""
    for path in digest_files.glob("*.arrow"):
        path.unlink()


def _partition_indexes(session, layer_id) -> dict[str, str]:
    return dict(session.execute(sa.text(
        "SELECT i.relname, pi.relname FROM pg_inherits h JOIN pg_class i ON i.oid = h.inhrelid "
        "JOIN pg_class pi ON pi.oid = h.inhparent JOIN pg_index x ON x.indexrelid = i.oid "
        "WHERE x.indrelid = to_regclass(:t)"), {"t": partition_name(layer_id)}).all())


def test_a_first_import_builds_and_attaches_the_layers_own_partition(hazard_layer, settings, tmp_path):
    s, layer = hazard_layer
    assert s.scalar(sa.text("SELECT to_regclass(:t)"), {"t": partition_name(layer.id)}) is None
    report = _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    assert (report.added, report.changed, report.removed, report.unchanged) == (3, 0, 0, 0)
    assert "index_attach" in report.timings
    # every index of the partitioned table is the partition's own, adopted by ATTACH
    assert set(_partition_indexes(s, layer.id).values()) == {
        "layer_features_pkey", "idx_layer_features_geom", "ix_layer_features_key",
        "ix_layer_features_live", "ix_layer_features_ident"}
    assert s.scalar(sa.text("SELECT count(*) FROM pg_index WHERE indrelid = to_regclass(:t)"),
                    {"t": partition_name(layer.id)}) == 5  # and none built again beside them
    assert s.scalar(sa.text("SELECT co.collname FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation "
                            "WHERE a.attrelid = to_regclass(:t) AND a.attname = 'feature_key'"),
                    {"t": partition_name(layer.id)}) == "C"  # keys compare by bytes (migration 0015)
    rows = s.execute(sa.select(LayerFeature.feature_key, LayerFeature.id, LayerFeature.ident,
                               LayerFeature.geom_web.is_not(None))
                     .where(features_as_of(layer.id, report.number)).order_by(LayerFeature.feature_key)).all()
    assert [r[0] for r in rows] == ["H1", "H2", "H3"] and len({r[2] for r in rows}) == 3
    assert all(r[3] for r in rows)  # the web-mercator copy is computed on the way in
    assert _centre_error_m(s, layer.id) < 0.01  # the importer's web-mercator centres
    assert _web_error_m(s, layer.id) < 0.001  # and shapes
    # the second import compares with the partition's live features
    again = _import(s, settings, hazards(["H1", "H2", "H4"], risk="high"), tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (1, 2, 1, 0)
    # each version records its file's checksum (the first's summed while the file was read)
    for r, name in ((report, "a.gpkg"), (again, "b.gpkg")):
        assert s.get(LayerVersion, r.version_id).checksum == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    idents = dict(s.execute(sa.select(LayerFeature.feature_key, LayerFeature.ident)
                            .where(features_as_of(layer.id, again.number))).all())
    assert idents["H1"] == rows[0][2] and idents["H2"] == rows[1][2]  # changed: same ident
    assert idents["H4"] not in {r[2] for r in rows}


def test_the_cadastres_first_import_points_the_parcels_view_at_its_partition(hazard_layer, settings, tmp_path):
    frame = gpd.GeoDataFrame(
        {"parcel_code": ["P1", "P2"], "holder": ["甲公司", "乙公司"], "land_use": ["R2", "B1"],
         "area_m2": [6400.0, 6400.0]},
        geometry=[shapely.MultiPolygon([shapely.box(X0 + i * 100, Y0, X0 + i * 100 + 80, Y0 + 80)]) for i in (0, 1)],
        crs="EPSG:4547")
    s, _ = hazard_layer
    cadastre = s.scalar(sa.select(Layer).where(Layer.name == "cadastre"))
    assert "FROM layer_features f" in s.scalar(sa.text("SELECT pg_get_viewdef('parcels')"))
    _import(s, settings, frame, tmp_path / "c.gpkg", layer="cadastre")
    assert f"FROM {partition_name(cadastre.id)} f" in s.scalar(sa.text("SELECT pg_get_viewdef('parcels')"))
    got = s.execute(sa.select(Parcel.parcel_code, Parcel.holder, Parcel.land_use, Parcel.area_m2,
                              Parcel.is_retired).order_by(Parcel.parcel_code)).all()
    assert got == [("P1", "甲公司", "R2", pytest.approx(6400.0), False),
                   ("P2", "乙公司", "B1", pytest.approx(6400.0), False)]


def test_attributes_are_stored_as_the_database_would_build_them(hazard_layer, settings, tmp_path):
    """Attributes travel as JSON text (binary COPY, into the layer's new partition and through
    the staging table of a later import): strings with quotes, backslashes, control characters
    and Chinese, and doubles of every form are stored as jsonb_build_object stores the typed
    values (so features compared by content agree with those written before)."""
    spec = default_catalogue()["zoning"]
    use = (spec.allowed.get("use_code") or ["R2"])[0]
    codes = ['Z"1', "Z\\2", "Z\t3", "中心区-4", "Z5"]
    floats = [0.1, 6400.0, 1e-05, 1e20, 1 / 3]
    frame = gpd.GeoDataFrame(
        {"zone_code": codes, "use_code": [use] * 5, "max_far": floats, "max_coverage": floats[::-1],
         "height_limit_m": [24.0] * 5, "min_green_ratio": [0.35] * 5},
        geometry=[shapely.MultiPolygon([shapely.box(X0 + i * 100, Y0, X0 + i * 100 + 80, Y0 + 80)]) for i in range(5)],
        crs="EPSG:4547")
    s, _ = hazard_layer
    layer = s.scalar(sa.select(Layer).where(Layer.name == "zoning"))
    for height, name in ((24.0, "z.gpkg"), (30.0, "z2.gpkg")):
        frame["height_limit_m"] = height
        report = _import(s, settings, frame, tmp_path / name, layer="zoning")
        assert report.added + report.changed == 5
        for code, far, cov in zip(codes, floats, floats[::-1]):
            same = s.scalar(sa.text(
                "SELECT attrs = jsonb_build_object('zone_code', CAST(:code AS text), "
                "'use_code', CAST(:use AS text), 'max_far', CAST(:far AS float8), "
                "'max_coverage', CAST(:cov AS float8), 'height_limit_m', CAST(:h AS float8), "
                "'min_green_ratio', 0.35::float8) "
                "FROM layer_features WHERE layer_id = :layer AND feature_key = :code AND valid_from = :v"),
                {"code": code, "use": use, "far": far, "cov": cov, "h": height, "layer": layer.id,
                 "v": report.number})
            assert same, (code, height)


@pytest.mark.parametrize("problem, match", [
    ("invalid", r"feature 'H2'.*invalid geometry: Self-intersection"),
    ("duplicate", r"feature 'H1'.*key 'zone_code' appears 2 times"),
    ("both", r"invalid geometry: Self-intersection.*appears 2 times"),
])
def test_a_refused_first_import_leaves_no_table_and_no_version(fresh_engine, settings, tmp_path, problem, match):
    frame = hazards(["H1", "H2", "H1" if problem != "invalid" else "H3"])
    if problem != "duplicate":
        frame.loc[1, "geometry"] = shapely.Polygon([(X0, Y0), (X0 + 50, Y0 + 50), (X0 + 50, Y0), (X0, Y0 + 50)])
    with Session(fresh_engine) as s:
        layer = s.scalar(sa.select(Layer).where(Layer.name == "hazard_zones"))
        with pytest.raises(InputError, match=match):
            _import(s, settings, frame, tmp_path / "bad.gpkg")
        s.rollback()
        assert s.scalar(sa.text("SELECT to_regclass(:t)"), {"t": partition_name(layer.id)}) is None
        assert s.scalar(sa.select(sa.func.count()).select_from(LayerVersion)
                        .where(LayerVersion.layer_id == layer.id)) == 0
        assert s.get(Layer, layer.id).current_version_id is None


def test_readers_of_other_layers_are_not_blocked_by_a_first_import(fresh_engine, settings, tmp_path):
    with Session(fresh_engine) as first, fresh_engine.connect() as reader:
        try:
            _import(first, settings, hazards(["Z1"]), tmp_path / "z.gpkg", layer="hazard_zones")
            first.flush()
            farm = gpd.GeoDataFrame({"farmland_code": ["F1"], "area_m2": [6400.0]},
                                    geometry=[shapely.box(X0, Y0, X0 + 80, Y0 + 80)], crs="EPSG:4547")
            _import(first, settings, farm, tmp_path / "f.gpkg", layer="basic_farmland")  # not committed
            reader.execute(sa.text("SET lock_timeout = '2s'"))
            # the parent table, the parcels view and other layers stay readable meanwhile
            assert reader.scalar(sa.select(sa.func.count()).select_from(LayerFeature)) == 0
            assert reader.scalar(sa.select(sa.func.count()).select_from(Parcel)) == 0
        finally:
            first.rollback()


def test_a_parcel_keeps_its_id_while_it_changes_and_when_it_is_retired(session, settings, tmp_path):
    cadastre = session.scalar(sa.select(Layer).where(Layer.name == "cadastre"))
    live = session.execute(sa.select(LayerFeature.feature_key, LayerFeature.attrs, LayerFeature.geom)
                           .where(features_as_of(cadastre.id, session.get(LayerVersion,
                                                                          cadastre.current_version_id).number))
                           .order_by(LayerFeature.feature_key)).all()
    ids = dict(session.execute(sa.select(Parcel.parcel_code, Parcel.id)).all())
    frame = gpd.GeoDataFrame([{**attrs, "parcel_code": key} for key, attrs, _ in live],
                             geometry=gpd.GeoSeries.from_wkb([bytes(g.data) for _, _, g in live]), crs="EPSG:4547")
    changed, removed = live[0][0], live[1][0]
    frame.loc[frame["parcel_code"] == changed, "holder"] = "新权利人有限公司"
    v2 = _import(session, settings, frame[frame["parcel_code"] != removed], tmp_path / "c2.gpkg", layer="cadastre")
    assert (v2.changed, v2.removed) == (1, 1)
    p = session.get(Parcel, ids[changed], populate_existing=True)
    assert (p.parcel_code, p.holder, p.is_retired) == (changed, "新权利人有限公司", False)
    gone = session.get(Parcel, ids[removed], populate_existing=True)
    assert (gone.parcel_code, gone.is_retired) == (removed, True)
    assert session.scalar(sa.select(sa.func.count()).select_from(Parcel)
                          .where(Parcel.parcel_code == removed)) == 1
    _import(session, settings, frame, tmp_path / "c3.gpkg", layer="cadastre")  # the parcel comes back
    back = session.get(Parcel, ids[removed], populate_existing=True)
    assert (back.parcel_code, back.is_retired) == (removed, False)
    assert dict(session.execute(sa.select(Parcel.parcel_code, Parcel.id)).all()) == ids


def _centre_error_m(session, layer_id) -> float:
    """How far (m, web mercator) the stored centres lie from the database's own reprojection of
    the centres of the shapes' bounding boxes."""
    g = LayerFeature.geom
    centre = sa.func.ST_SetSRID(sa.func.ST_MakePoint((sa.func.ST_XMin(g) + sa.func.ST_XMax(g)) / 2,
                                                     (sa.func.ST_YMin(g) + sa.func.ST_YMax(g)) / 2), sa.func.ST_SRID(g))
    return session.scalar(sa.select(sa.func.max(sa.func.ST_Distance(
        LayerFeature.centre_web, sa.func.ST_Transform(centre, 3857)))).where(LayerFeature.layer_id == layer_id))


def _web_error_m(session, layer_id) -> float:
    """How far (m, web mercator) the stored web-mercator shapes lie from the database's own
    reprojection of the stored shapes, at worst; and every one is in EPSG:3857."""
    web = sa.func.ST_GeomFromEWKB(LayerFeature.geom_web)
    worst, srids = session.execute(sa.select(
        sa.func.max(sa.func.ST_HausdorffDistance(web, sa.func.ST_Transform(LayerFeature.geom, 3857))),
        sa.func.array_agg(sa.distinct(sa.func.ST_SRID(web)))).where(LayerFeature.layer_id == layer_id)).one()
    assert srids == [3857]
    return worst


def test_web_mercator_copies_of_every_kind_of_shape(hazard_layer, settings, tmp_path):
    """One part and one ring (reprojected in place, in bulk), holes and several parts (through
    shapely): each copy agrees with PostGIS's own reprojection."""
    frame = hazards(["H1", "H2", "H3"])
    frame.loc[1, "geometry"] = shapely.box(X0 + 100, Y0, X0 + 180, Y0 + 80).difference(
        shapely.box(X0 + 120, Y0 + 20, X0 + 140, Y0 + 40))
    frame.loc[2, "geometry"] = shapely.MultiPolygon([shapely.box(X0 + 200, Y0, X0 + 220, Y0 + 20),
                                                     shapely.box(X0 + 240, Y0, X0 + 260, Y0 + 20)])
    s, layer = hazard_layer
    _import(s, settings, frame, tmp_path / "a.gpkg")
    assert _web_error_m(s, layer.id) < 0.001
    frame.loc[:, "risk_level"] = "high"  # through the staging table
    assert _import(s, settings, frame, tmp_path / "b.gpkg").changed == 3
    assert _web_error_m(s, layer.id) < 0.001


def _live(session, layer_id) -> dict[str, tuple[int, bytes | None]]:
    """Live features: key -> (row id, content digest)."""
    return {key: (fid, None if digest is None else digest.bytes) for key, fid, digest in session.execute(
        sa.select(LayerFeature.feature_key, LayerFeature.id, LayerFeature.content_digest)
        .where(LayerFeature.layer_id == layer_id, LayerFeature.valid_to.is_(None)))}


def test_a_reimport_writes_what_changed_and_nothing_else(hazard_layer, settings, tmp_path):
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    assert all(d is not None for _, d in first.values()) and len({d for _, d in first.values()}) == 3
    same = _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "b.gpkg")
    assert (same.added, same.changed, same.removed, same.unchanged) == (0, 0, 0, 3)
    assert _live(s, layer.id) == first  # the very same rows
    rows = s.scalar(sa.select(sa.func.count()).select_from(LayerFeature)
                    .where(LayerFeature.layer_id == layer.id))
    assert rows == 3
    frame = hazards(["H1", "H2", "H3"])
    frame.loc[0, "risk_level"] = "high"  # an attribute
    frame.loc[1, "geometry"] = shapely.box(X0 + 100, Y0, X0 + 180, Y0 + 80.5)  # the shape
    changed = _import(s, settings, frame, tmp_path / "c.gpkg")
    assert (changed.added, changed.changed, changed.removed, changed.unchanged) == (0, 2, 0, 1)
    now = _live(s, layer.id)
    assert now["H3"] == first["H3"]
    assert _centre_error_m(s, layer.id) < 0.01  # also for features written through the staging table
    assert _web_error_m(s, layer.id) < 0.001
    assert all(now[k][0] != first[k][0] and now[k][1] != first[k][1] for k in ("H1", "H2"))


def test_features_without_a_digest_are_compared_by_content_and_get_one(hazard_layer, settings, tmp_path,
                                                                       digest_files):
    """Rows written before migration 0010 have no digest: the next import compares them by
    content, finds them unchanged, and records their digest — also when the layer's other
    features have theirs."""
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    _imported_elsewhere(digest_files)  # (before migration 0010 no import kept any)
    first = _live(s, layer.id)
    s.execute(sa.update(LayerFeature).where(LayerFeature.layer_id == layer.id, LayerFeature.feature_key != "H3")
              .values(content_digest=None))
    frame = hazards(["H1", "H2", "H3"])
    frame.loc[1, "risk_level"] = "high"
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 1, 0, 2)
    now = _live(s, layer.id)
    assert now["H1"] == first["H1"] and now["H3"] == first["H3"]  # same rows, H1's digest recorded again
    assert now["H2"][0] != first["H2"][0] and now["H2"][1] is not None


@pytest.mark.parametrize("batch_size", [20_000, 1])  # all in one batch; each feature a batch of its own
@pytest.mark.parametrize("extra, key, times", [
    ([("H1", "medium")], "H1", 2),  # a live feature as it is, twice
    ([("H1", "high")], "H1", 2),  # as it is, and changed
    ([("H1", "medium"), ("H1", "high")], "H1", 3),
    ([("H9", "low"), ("H9", "high")], "H9", 2),  # a new key, twice
    ([("H1", "high"), ("H1", "low")], "H1", 3),  # changed twice
])
def test_a_repeated_key_is_refused_wherever_it_hides(hazard_layer, settings, tmp_path, monkeypatch, extra, key,
                                                     times, batch_size):
    """Duplicates are found in the whole source, also among features that go no further; the
    batches written before the second one was read are taken back."""
    import functools

    from gisapproval import layerimport, layerversions

    monkeypatch.setattr(layerversions, "VectorSource", functools.partial(layerimport.VectorSource,
                                                                         batch_size=batch_size))
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2"]), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    versions = s.scalar(sa.select(sa.func.count()).select_from(LayerVersion).where(LayerVersion.layer_id == layer.id))
    frame = hazards(["H1", "H2"])
    rows = [frame]
    for code, risk in extra:
        row = frame.iloc[[0]].copy()
        row["zone_code"], row["risk_level"] = code, risk
        rows.append(row)
    twice = gpd.GeoDataFrame(gpd.pd.concat(rows, ignore_index=True), crs=frame.crs)
    with pytest.raises(InputError, match=rf"feature '{key}'.*key 'zone_code' appears {times} times"):
        _import(s, settings, twice, tmp_path / "b.gpkg")
    assert _live(s, layer.id) == first
    assert s.scalar(sa.select(sa.func.count()).select_from(LayerVersion).where(
        LayerVersion.layer_id == layer.id)) == versions


def test_a_reprojected_source_is_found_unchanged_when_it_is(hazard_layer, settings, tmp_path):
    s, _ = hazard_layer
    frame = hazards(["H1", "H2"]).to_crs("EPSG:4326")
    first = _import(s, settings, frame, tmp_path / "a.gpkg")
    assert first.source_crs == "EPSG:4326" and first.added == 2
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 2)


def test_a_reimport_counts_what_was_added_changed_removed_and_kept(hazard_layer, settings, tmp_path):
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    frame = hazards(["H1", "H2", "H3", "H4"]).drop(index=1)  # H2 removed, H4 added
    frame.loc[0, "risk_level"] = "high"  # H1 changed
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (1, 1, 1, 1)
    now = _live(s, layer.id)
    assert set(now) == {"H1", "H3", "H4"} and now["H3"] == first["H3"] and now["H1"] != first["H1"]


def test_a_key_given_another_features_content_is_a_change(hazard_layer, settings, tmp_path):
    """A feature is found unchanged by its digest alone, which covers its key: two features
    trading their shapes are two changes, not two features the layer holds already."""
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    again = _import(s, settings, hazards(["H2", "H1", "H3"]), tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 2, 0, 1)
    assert _live(s, layer.id)["H3"] == first["H3"]


def test_digests_sharing_their_first_half_are_still_told_apart(hazard_layer, settings, tmp_path, monkeypatch):
    """Live digests are looked up by their first 64 bits. Were those the same for every
    feature, a re-import would send the features to the database, which still finds them
    unchanged, and the one change."""
    from gisapproval import layerimport

    digests = layerimport._digests

    def first_half_alike(*parts):
        out = digests(*parts)
        out[out.any(axis=1), 0] = 7
        return out

    s, layer = hazard_layer
    monkeypatch.setattr(layerimport, "_digests", first_half_alike)
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    assert len({d for _, d in first.values()}) == 3 and {d[:8] for _, d in first.values()} == {
        (7).to_bytes(8, "little")}
    frame = hazards(["H1", "H2", "H3"])
    frame.loc[2, "risk_level"] = "high"
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 1, 0, 2)
    now = _live(s, layer.id)
    assert now["H1"] == first["H1"] and now["H2"] == first["H2"] and now["H3"] != first["H3"]


def test_a_key_held_in_another_attribute_is_not_the_same_feature(hazard_layer, settings, tmp_path, monkeypatch):
    """A digest covers the key's value, not which attribute is the key: were the catalogue to
    name another attribute as the key, the same file re-imported gets the new keys."""
    import dataclasses

    from gisapproval import layerversions

    frame = hazards(["H1", "H2", "H3"])
    frame["hazard_type"] = ["landslide", "flood", "debris_flow"]
    s, layer = hazard_layer
    _import(s, settings, frame, tmp_path / "a.gpkg")
    catalogue = dict(default_catalogue())
    catalogue["hazard_zones"] = dataclasses.replace(catalogue["hazard_zones"], feature_key="hazard_type")
    monkeypatch.setattr(layerversions, "default_catalogue", lambda: catalogue)
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (3, 0, 3, 0)
    assert set(_live(s, layer.id)) == {"landslide", "flood", "debris_flow"}


def _slow_digests(monkeypatch, seconds=0.5, fail=False):
    """The live digests come late (or fail); records when they came."""
    import time

    from gisapproval import layerversions

    fetch, came = layerversions._live_digests, []

    def slow(conn, layer_id):
        time.sleep(seconds)
        try:
            if fail:
                raise RuntimeError("the database went away")
            return fetch(conn, layer_id)
        finally:
            came.append(time.perf_counter())

    monkeypatch.setattr(layerversions, "_live_digests", slow)
    return came


@pytest.mark.parametrize("one_row_up_to", [1_000_000, 2])
def test_the_live_digests_come_in_one_row_or_grouped(hazard_layer, settings, tmp_path, monkeypatch, one_row_up_to,
                                                     digest_files):
    """A layer of up to a million live features gets its digests from the database as one row,
    a larger one grouped by ids (here: more than 2); either way each key comes with its own
    digest, and a re-import finds what it holds."""
    from gisapproval import layerversions
    from gisapproval.layerimport import LiveDigests

    monkeypatch.setattr(layerversions, "ONE_ROW_OF_DIGESTS", one_row_up_to)
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    _imported_elsewhere(digest_files)
    conn = s.connection().connection.driver_connection
    counted, choose = [], layerversions._live_digests_sql
    monkeypatch.setattr(layerversions, "_live_digests_sql", lambda live: counted.append(live) or choose(live))
    known = layerversions._live_digests(conn, layer.id)
    assert counted == [3]  # the current version's live features
    live = _live(s, layer.id)
    assert {k: bytes(d.astype("<u8").tobytes()) for k, d in zip(known.keys.to_pylist(), known.digests, strict=True)} == {
        k: d for k, (_, d) in live.items()}
    grouped = layerversions.LIVE_DIGESTS_GROUPED
    assert (layerversions._live_digests_sql(3) is grouped) == (one_row_up_to < 3)
    assert layerversions._live_digests_sql(None) is grouped  # a layer whose live count is not known
    frame = hazards(["H1", "H2", "H3"])
    frame.loc[0, "risk_level"] = "high"
    del counted[:]
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 1, 0, 2)
    assert counted == [3]  # asked of the database
    assert len(LiveDigests.from_aggregates([(None, None, None)])) == 0  # one row over no feature: nulls


@pytest.mark.parametrize("first", ["bulk", "empty partition"])
def test_the_live_digests_are_read_from_the_live_index_alone(hazard_layer, settings, tmp_path, first):
    """The live index carries the digests (migration 0012), whether the partition was built by a
    first import or made empty (as a rollback to nothing does): a re-import reads them from that
    index alone, not from the partition's rows, which hold every version's geometries. Either
    way the partition is vacuumed after each 1% of changes (migration 0013)."""
    from gisapproval import layerversions

    s, layer = hazard_layer
    if first == "bulk":
        _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    else:
        layerversions.ensure_partition(s, layer)
    for setting in ("enable_seqscan", "enable_bitmapscan"):
        s.execute(sa.text(f"SET LOCAL {setting} = off"))
    plan = "\n".join(s.execute(sa.text("EXPLAIN " + layerversions.LIVE_DIGESTS.replace("%s", str(layer.id))))
                     .scalars())
    assert f"Index Only Scan using {partition_name(layer.id)}_layer_id_feature_key_content_digest_idx" in plan, plan
    # and autovacuum marks the pages a re-import unmarks again after each 1% of changes (migration 0013)
    assert s.scalar(sa.text("SELECT reloptions FROM pg_class WHERE oid = to_regclass(:t)"),
                    {"t": partition_name(layer.id)}) == [
        "autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_insert_scale_factor=0.01"]


def test_batches_are_read_ahead_while_the_live_digests_come(hazard_layer, settings, tmp_path, monkeypatch):
    import functools
    import time

    from gisapproval import layerimport, layerversions

    monkeypatch.setattr(layerversions, "VectorSource", functools.partial(layerimport.VectorSource, batch_size=2))
    read, read_batch = [], layerimport._read_batch
    monkeypatch.setattr(layerimport, "_read_batch", lambda *a: read.append(time.perf_counter()) or read_batch(*a))
    s, layer = hazard_layer
    codes = [f"H{i}" for i in range(1, 10)]
    _import(s, settings, hazards(codes), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    came, read[:] = _slow_digests(monkeypatch), []
    frame = hazards(codes + ["H10"]).drop(index=1)  # H2 removed, H10 added
    frame.loc[6, "risk_level"] = "high"  # H7 changed
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (1, 1, 1, 7)
    assert len([t for t in read if t < came[0]]) == 3  # three batches of two read while waiting
    now = _live(s, layer.id)
    assert set(now) == set(codes) - {"H2"} | {"H10"}
    assert all(now[k] == first[k] for k in codes if k not in ("H2", "H7"))


def test_problems_are_listed_in_the_sources_order_also_when_read_ahead(hazard_layer, settings, tmp_path,
                                                                        monkeypatch):
    import functools

    from gisapproval import layerimport, layerversions

    monkeypatch.setattr(layerversions, "VectorSource", functools.partial(layerimport.VectorSource, batch_size=2))
    s, _ = hazard_layer
    codes = [f"H{i}" for i in range(1, 8)]
    _import(s, settings, hazards(codes), tmp_path / "a.gpkg")
    _slow_digests(monkeypatch, 0.3)
    frame = hazards(codes)
    frame.loc[0, "geometry"] = shapely.box(0, 0, 10, 10)  # H1, first batch: outside
    frame.loc[5, "risk_level"] = "extreme"  # H6, third batch: read ahead
    with pytest.raises(layerimport.LayerImportError) as refused:
        _import(s, settings, frame, tmp_path / "b.gpkg")
    assert [p.feature for p in refused.value.problems] == ["H1", "H6"]


def test_a_reimport_writes_batch_by_batch_and_a_refusal_takes_it_all_back(hazard_layer, settings, tmp_path,
                                                                           monkeypatch):
    """A re-import writes each batch's changes while it reads the next; a problem found in a
    later batch takes back those written before it, in the caller's transaction too."""
    import functools
    import threading

    from gisapproval import layerimport, layerversions

    monkeypatch.setattr(layerversions, "VectorSource", functools.partial(layerimport.VectorSource, batch_size=2))
    written, write, finish = [], layerversions._write_differences, layerimport._finish_batch
    three_written = threading.Event()

    def counted(*a, **k):
        out = write(*a, **k)
        written.append(k)
        if len(written) == 3:
            three_written.set()
        return out

    def last_waits(read, *a):  # the last batch is checked once the three before it are written
        if read.start == 6:
            three_written.wait(10)
        return finish(read, *a)

    s, layer = hazard_layer
    codes = [f"H{i}" for i in range(1, 8)]
    _import(s, settings, hazards(codes), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    monkeypatch.setattr(layerversions, "_write_differences", counted)
    monkeypatch.setattr(layerimport, "_finish_batch", last_waits)
    frame = hazards(codes, risk="high")  # every feature changed, in four batches
    frame.loc[6, "geometry"] = shapely.box(0, 0, 10, 10)  # H7, the last batch: outside
    with pytest.raises(layerimport.LayerImportError, match="H7.*outside the jurisdiction"):
        _import(s, settings, frame, tmp_path / "b.gpkg")
    assert len(written) == 3  # the first three batches were written before H7 was checked
    assert _live(s, layer.id) == first
    assert [v.number for v in s.scalars(sa.select(LayerVersion).where(LayerVersion.layer_id == layer.id))] == [1]
    frame.loc[6, "geometry"] = hazards(codes).geometry[6]
    again = _import(s, settings, frame, tmp_path / "c.gpkg")
    assert (again.number, again.added, again.changed, again.removed, again.unchanged) == (2, 0, 7, 0, 0)


@pytest.mark.parametrize("in_the_database", [False, True])
def test_a_batch_that_fails_to_be_written_fails_the_import(hazard_layer, settings, tmp_path, monkeypatch,
                                                           in_the_database):
    """A batch that fails to be written (in the worker, or refused by the database) fails the
    import; nothing of it stays and the session goes on."""
    import functools

    from gisapproval import layerimport, layerversions

    monkeypatch.setattr(layerversions, "VectorSource", functools.partial(layerimport.VectorSource, batch_size=2))
    s, layer = hazard_layer
    codes = [f"H{i}" for i in range(1, 8)]
    _import(s, settings, hazards(codes), tmp_path / "a.gpkg")
    first, calls, write = _live(s, layer.id), [], layerversions._write_differences

    def fails_second(conn, *a, **k):
        calls.append(k)
        if len(calls) == 2:
            if in_the_database:
                conn.execute(sa.text("SELECT 1 / 0"))
            raise RuntimeError("the disk is full")
        return write(conn, *a, **k)

    monkeypatch.setattr(layerversions, "_write_differences", fails_second)
    with pytest.raises(sa.exc.DataError if in_the_database else RuntimeError,
                       match="division by zero" if in_the_database else "disk is full"):
        _import(s, settings, hazards(codes, risk="high"), tmp_path / "b.gpkg")
    assert _live(s, layer.id) == first
    monkeypatch.setattr(layerversions, "_write_differences", write)
    again = _import(s, settings, hazards(codes, risk="high"), tmp_path / "c.gpkg")
    assert (again.number, again.changed, again.unchanged) == (2, 7, 0)


def test_an_interrupt_while_the_last_batches_are_written_waits_for_them(hazard_layer, settings, tmp_path,
                                                                          monkeypatch):
    """Ctrl-C while a re-import waits for its last batches to be written: the batch under way is
    finished (the connection is the session's), the rest given up, the import taken back."""
    import functools
    import threading
    import time

    from gisapproval import layerimport, layerversions

    monkeypatch.setattr(layerversions, "VectorSource", functools.partial(layerimport.VectorSource, batch_size=1))
    s, layer = hazard_layer
    codes = [f"H{i}" for i in range(1, 9)]
    _import(s, settings, hazards(codes), tmp_path / "a.gpkg")
    first, write, written = _live(s, layer.id), layerversions._write_differences, []

    def slow(*a, **k):
        time.sleep(0.1)
        written.append(write(*a, **k))
        return written[-1]

    class InterruptedOnce:  # the worker's thread, as the main thread waits for it: Ctrl-C comes once
        def __init__(self, thread):
            self.thread, self.interrupted = thread, False

        def is_alive(self):
            return self.thread.is_alive()

        def join(self):
            if not self.interrupted:
                self.interrupted = True
                raise KeyboardInterrupt
            self.thread.join()

    workers, init = [], layerversions._Worker.__init__

    def interrupted_init(self, work, name, depth=2):
        init(self, work, name, depth)
        if name == "gisapproval-differences":
            self._thread = InterruptedOnce(self._thread)
            workers.append(self)

    monkeypatch.setattr(layerversions, "_write_differences", slow)
    monkeypatch.setattr(layerversions._Worker, "__init__", interrupted_init)
    with pytest.raises(KeyboardInterrupt):
        _import(s, settings, hazards(codes, risk="high"), tmp_path / "b.gpkg")
    assert not workers[0]._thread.thread.is_alive()  # ended before the interrupt went on
    assert 0 < len(written) < len(codes)  # the batch under way was finished, the rest given up
    assert not [t for t in threading.enumerate() if t.name == "gisapproval-differences"]
    assert _live(s, layer.id) == first
    monkeypatch.setattr(layerversions, "_write_differences", write)
    monkeypatch.setattr(layerversions._Worker, "__init__", init)
    again = _import(s, settings, hazards(codes, risk="high"), tmp_path / "c.gpkg")
    assert (again.number, again.changed, again.unchanged) == (2, 8, 0)


@pytest.mark.parametrize("failure", [RuntimeError("the network went away"), KeyboardInterrupt()])
def test_a_first_import_whose_copy_fails_leaves_nothing(fresh_engine, settings, tmp_path, monkeypatch, failure):
    """Sending a first import's rows fails (or Ctrl-C comes) half-way: the COPY ends, failed, no
    table or version stays, and the session goes on."""
    import functools

    from psycopg.copy import LibpqWriter

    from gisapproval import layerimport, layerversions

    monkeypatch.setattr(layerversions, "VectorSource", functools.partial(layerimport.VectorSource, batch_size=2))
    sent, send = [], LibpqWriter.write

    def fails_third(self, data):
        sent.append(len(data))
        if len(sent) == 3:  # the header, a batch, then this
            raise failure
        send(self, data)

    with Session(fresh_engine) as s:
        layer = s.scalar(sa.select(Layer).where(Layer.name == "hazard_zones"))
        monkeypatch.setattr(LibpqWriter, "write", fails_third)
        with pytest.raises(type(failure)):
            _import(s, settings, hazards([f"H{i}" for i in range(1, 8)]), tmp_path / "a.gpkg")
        monkeypatch.setattr(LibpqWriter, "write", send)
        assert s.scalar(sa.text("SELECT to_regclass(:t)"), {"t": partition_name(layer.id)}) is None
        assert s.scalar(sa.select(sa.func.count()).select_from(LayerVersion).where(
            LayerVersion.layer_id == layer.id)) == 0
        report = _import(s, settings, hazards(["H1", "H2"]), tmp_path / "b.gpkg")
        assert (report.number, report.added) == (1, 2)
        s.rollback()


def test_live_digests_that_fail_to_come_fail_the_import(hazard_layer, settings, tmp_path, monkeypatch):
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2"]), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    _slow_digests(monkeypatch, 0.2, fail=True)
    with pytest.raises(RuntimeError, match="went away"):
        _import(s, settings, hazards(["H1", "H3"]), tmp_path / "b.gpkg")
    assert _live(s, layer.id) == first  # the session is usable, and nothing changed


def test_a_file_refused_on_opening_waits_for_the_live_digests(hazard_layer, settings, tmp_path, monkeypatch):
    """The session's connection is the digests' until they have come: a refusal raised while
    they are coming is raised once they have."""
    import time

    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2"]), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    came = _slow_digests(monkeypatch, 0.3)
    with pytest.raises(InputError, match="missing attribute field"):
        _import(s, settings, hazards(["H1", "H2"]).drop(columns=["risk_level"]), tmp_path / "b.gpkg")
    assert came and came[0] <= time.perf_counter()
    assert _live(s, layer.id) == first


def test_a_refused_import_stops_summing_its_file(hazard_layer, settings, tmp_path, monkeypatch):
    from gisapproval import layerversions
    from gisapproval.layerstore import file_sha256

    stops = []
    monkeypatch.setattr(layerversions, "file_sha256", lambda path, stop=None: stops.append(stop) or file_sha256(
        path, stop))
    s, _ = hazard_layer
    with pytest.raises(InputError, match="outside the jurisdiction"):
        _import(s, settings, hazards(["H1"]).set_geometry([shapely.box(0, 0, 10, 10)], crs="EPSG:4547"),
                tmp_path / "a.gpkg")
    assert len(stops) == 1 and stops[0].is_set()
    assert file_sha256(tmp_path / "a.gpkg", stops[0]) is None
    assert len(file_sha256(tmp_path / "a.gpkg")) == 64


def test_an_empty_reimport_is_refused(hazard_layer, settings, tmp_path):
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2"]), tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    with pytest.raises(InputError, match="holds no features"):
        _import(s, settings, hazards(["H1"]).iloc[0:0], tmp_path / "b.gpkg")
    assert _live(s, layer.id) == first


def test_a_key_repeated_in_a_reprojected_source_is_refused(hazard_layer, settings, tmp_path):
    """A reprojected source's features are found among the live ones after their shapes are
    checked; one found twice is a repeated key."""
    s, layer = hazard_layer
    frame = hazards(["H1", "H2"]).to_crs("EPSG:4326")
    _import(s, settings, frame, tmp_path / "a.gpkg")
    first = _live(s, layer.id)
    twice = gpd.GeoDataFrame(gpd.pd.concat([frame, frame.iloc[[0]]], ignore_index=True), crs=frame.crs)
    with pytest.raises(InputError, match=r"feature 'H1'.*key 'zone_code' appears 2 times"):
        _import(s, settings, twice, tmp_path / "b.gpkg")
    assert _live(s, layer.id) == first


def test_a_parcel_joined_by_its_id_is_found_through_the_ident_index(session):
    """The parcels view is one scan of the cadastre (migration 0011): a join on a parcel's id is
    a lookup in the ident index, not a read of the whole cadastre (as the UNION ALL view did)."""
    for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
        session.execute(sa.text(f"SET LOCAL {setting} = off"))
    plan = "\n".join(session.execute(sa.text(
        "EXPLAIN SELECT p.parcel_code FROM parcels p JOIN project_parcels pp ON pp.parcel_id = p.id")).scalars())
    assert "Index Cond: (ident = pp.parcel_id)" in plan, plan


def _kept(session, layer) -> dict[str, bytes] | None:
    """The content digests kept for the layer's current version (gisapproval.digestcache):
    key -> digest."""
    from gisapproval import digestcache

    version = session.get(LayerVersion, layer.current_version_id)
    found = digestcache.load(version.content_token,
                             version.count_added + version.count_changed + version.count_unchanged)
    return None if found is None else {k: d.tobytes() for k, d in zip(found[0].to_pylist(), found[1], strict=True)}


def _asked_of_the_database(monkeypatch) -> list:
    """Each time a re-import asks the database for the live digests, an entry in the list."""
    from gisapproval import layerversions

    asked, query = [], layerversions._live_digests_sql
    monkeypatch.setattr(layerversions, "_live_digests_sql", lambda live: asked.append(live) or query(live))
    return asked


@pytest.mark.kept_digests
def test_each_version_keeps_its_content_digests_as_the_database_holds_them(hazard_layer, settings, tmp_path,
                                                                         digest_files):
    """The import that made a version keeps its live features' keys and digests, exactly as the
    database then holds them: after a first import; after a re-import that changes, adds,
    removes and keeps features; after one in another CRS (every shape rewritten); and after
    one that gave digests to features that had none."""
    s, layer = hazard_layer

    def live() -> dict[str, bytes]:
        return {k: d for k, (_, d) in _live(s, layer.id).items()}

    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    assert _kept(s, layer) == live() and len(live()) == 3
    frame = hazards(["H1", "H2", "H3", "H4"]).drop(index=2)
    frame.loc[0, "risk_level"] = "high"
    frame.loc[1, "geometry"] = shapely.box(X0 + 100, Y0, X0 + 180, Y0 + 80.5)
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (1, 2, 1, 0)
    assert _kept(s, layer) == live() and set(live()) == {"H1", "H2", "H4"}
    stored_form = frame.set_geometry(gpd.GeoSeries([shapely.MultiPolygon([g]) for g in frame.geometry],
                                                   index=frame.index, crs=frame.crs))  # found as read
    kept = _import(s, settings, stored_form, tmp_path / "b2.gpkg")
    assert (kept.added, kept.changed, kept.removed, kept.unchanged) == (0, 0, 0, 3)
    assert _kept(s, layer) == live()
    bowtie = frame.copy()
    bowtie.loc[1, "geometry"] = shapely.Polygon([(X0 + 100, Y0), (X0 + 180, Y0 + 80), (X0 + 180, Y0),
                                                 (X0 + 100, Y0 + 80)])
    bowtie.to_file(tmp_path / "r.gpkg")
    repaired = publish_layer_version(s, settings, None, "hazard_zones", tmp_path / "r.gpkg",
                                     options=ImportOptions(repair=True), check_permission=False)
    assert (repaired.changed, repaired.unchanged, len(repaired.repairs)) == (1, 2, 1)
    assert _kept(s, layer) == live()
    moved = _import(s, settings, frame.to_crs("EPSG:4326"), tmp_path / "c.gpkg")
    assert moved.changed == 3  # (the shapes moved by a few nanometres; the bowtie back)
    assert _kept(s, layer) == live()
    _imported_elsewhere(digest_files)
    s.execute(sa.update(LayerFeature).where(LayerFeature.layer_id == layer.id).values(content_digest=None))
    same = _import(s, settings, frame.to_crs("EPSG:4326"), tmp_path / "c.gpkg")
    assert (same.changed, same.unchanged) == (0, 3)  # compared in the database, given their digests
    assert None not in live().values() and _kept(s, layer) == live()
    assert len(list(digest_files.glob("*.arrow"))) == 1 and not list(digest_files.glob(".*"))


@pytest.mark.kept_digests
def test_a_reimport_takes_the_kept_digests_instead_of_asking_the_database(hazard_layer, settings, tmp_path,
                                                                          monkeypatch):
    s, _ = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    asked = _asked_of_the_database(monkeypatch)
    frame = hazards(["H1", "H2", "H3"])
    frame.loc[0, "risk_level"] = "high"
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 1, 0, 2)
    same = _import(s, settings, frame, tmp_path / "b.gpkg")  # with the digests the last import kept
    assert (same.added, same.changed, same.removed, same.unchanged) == (0, 0, 0, 3)
    assert asked == []


def _cut_short(path):
    path.write_bytes(path.read_bytes()[:-100])


def _not_arrow(path):
    path.write_bytes(b"not an Arrow file")


def _a_key_changed(path):
    """One byte of a key's text changed (H3 to H8), all else as written: only the checksum tells."""
    data = path.read_bytes()
    assert data.count(b"H1H2H3") == 1
    path.write_bytes(data.replace(b"H1H2H3", b"H1H2H8"))


def _an_offset_changed(path):
    """The last key's end offset beyond the text: the file still opens, its arrays are broken."""
    import struct

    data = path.read_bytes()
    assert data.count(struct.pack("<4i", 0, 2, 4, 6)) == 1
    path.write_bytes(data.replace(struct.pack("<4i", 0, 2, 4, 6), struct.pack("<4i", 0, 2, 4, 100000)))


def _rewritten(path, change):
    """The file written again through the recorder (so with its own good checksum), changed."""
    import pyarrow as pa

    from gisapproval import digestcache
    from gisapproval.layerimport import array_digests

    with pa.OSFile(str(path)) as f:
        table = pa.ipc.open_file(f).read_all()
    keys, digests = change(table.column(0).combine_chunks(), table.column(1).combine_chunks())
    recorder = digestcache.DigestRecorder()
    recorder.add(keys, array_digests(digests))
    recorder.keep(uuid.UUID(path.stem))


def _one_feature_fewer(path):
    _rewritten(path, lambda keys, digests: (keys[1:], digests[1:]))


def _another_format(path):
    import pyarrow as pa

    with pa.OSFile(str(path)) as f:
        table = pa.ipc.open_file(f).read_all()
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, table.schema.remove_metadata()) as out:
        out.write_table(table.replace_schema_metadata(None))


@pytest.mark.kept_digests
@pytest.mark.parametrize("spoil", [_cut_short, _not_arrow, _a_key_changed, _an_offset_changed, _one_feature_fewer,
                                   _another_format])
def test_kept_digests_that_are_spoiled_are_asked_of_the_database_instead(hazard_layer, settings, tmp_path,
                                                                        monkeypatch, digest_files, spoil):
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    (kept,) = digest_files.glob("*.arrow")
    spoil(kept)
    asked = _asked_of_the_database(monkeypatch)
    frame = hazards(["H1", "H2", "H3"])
    frame.loc[2, "risk_level"] = "low"
    again = _import(s, settings, frame, tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 1, 0, 2)
    assert asked == [3]
    current = s.get(LayerVersion, layer.current_version_id)
    assert [p.name for p in digest_files.iterdir()] == [f"{current.content_token}.arrow"]  # the spoiled one removed
    assert _kept(s, layer) == {k: d for k, (_, d) in _live(s, layer.id).items()}  # the new version's


@pytest.mark.kept_digests
def test_imports_that_do_not_commit_leave_the_live_versions_kept_digests(hazard_layer, settings, tmp_path,
                                                                         monkeypatch, digest_files):
    """A refused import keeps no file and leaves none half-written; one whose transaction is
    rolled back leaves a file that no version names. Either way the next re-import takes the
    live version's kept digests, and finds the same differences as the database would."""
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    first = _kept(s, layer)
    twice = hazards(["H1", "H2", "H3", "H3"])
    with pytest.raises(InputError, match="appears 2 times"):
        _import(s, settings, twice, tmp_path / "b.gpkg")
    assert len(list(digest_files.iterdir())) == 1
    changed = hazards(["H1", "H2", "H3"], risk="high")
    undone = s.begin_nested()
    assert _import(s, settings, changed, tmp_path / "c.gpkg").changed == 3
    undone.rollback()
    assert len(list(digest_files.glob("*.arrow"))) == 2 and _kept(s, layer) == first
    asked = _asked_of_the_database(monkeypatch)
    again = _import(s, settings, changed.iloc[:2], tmp_path / "d.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 2, 1, 0)
    assert asked == []


@pytest.mark.kept_digests
def test_a_home_that_cannot_be_written_to_only_costs_the_query(hazard_layer, settings, tmp_path, monkeypatch):
    from gisapproval import digestcache

    blocked = tmp_path / "a file"
    blocked.write_text("not a directory")
    monkeypatch.setattr(digestcache, "directory", lambda: blocked / "live-digests")
    s, layer = hazard_layer
    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    asked = _asked_of_the_database(monkeypatch)
    again = _import(s, settings, hazards(["H1", "H2"]), tmp_path / "b.gpkg")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 1, 2)
    assert asked == [3] and _kept(s, layer) is None


def test_batches_are_written_through_the_indexes_and_the_plan_settings_restored_after(hazard_layer, settings,
                                                                                      tmp_path, monkeypatch):
    """While a re-import writes its batches the planner may not hash or merge the layer's whole
    partition (BATCH_PLAN); after it, committed or refused, the session plans as before."""
    from gisapproval import layerversions

    s, _ = hazard_layer

    def plan() -> tuple[str, str]:
        return tuple(s.connection().execute(sa.text(
            "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")).one())

    _import(s, settings, hazards(["H1", "H2", "H3"]), tmp_path / "a.gpkg")
    seen, write = [], layerversions._write_differences

    def noting(conn, layer_id, number):
        seen.append(tuple(conn.execute(sa.text(
            "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")).one()))
        return write(conn, layer_id, number)

    monkeypatch.setattr(layerversions, "_write_differences", noting)
    assert _import(s, settings, hazards(["H1", "H2", "H3"], risk="high"), tmp_path / "b.gpkg").changed == 3
    assert seen == [("off", "off")] and plan() == ("on", "on")
    with pytest.raises(InputError, match="appears 2 times"):
        _import(s, settings, hazards(["H1", "H2", "H2"], risk="low"), tmp_path / "c.gpkg")
    assert len(seen) == 1 and plan() == ("on", "on")
    s.execute(sa.text("SET LOCAL enable_mergejoin = off"))  # a session's own setting is kept
    assert _import(s, settings, hazards(["H1"], risk="low"), tmp_path / "d.gpkg").changed == 1
    assert seen[-1] == ("off", "off") and plan() == ("on", "off")
