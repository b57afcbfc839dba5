"""Layer import: every refusal changes nothing; formats round-trip; reprojection to the
centimetre; version arithmetic; concurrent imports; permissions; impact on projects."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import sqlalchemy as sa
from pyproj import Transformer
from rasterio.transform import from_origin
from sqlalchemy.orm import Session

from gisapproval.errors import InputError, PermissionDeniedError
from gisapproval.layerimport import ImportLimits, ImportOptions, LayerImportError
from gisapproval.layerversions import (
    LayerBusyError,
    diff_versions,
    features_as_of,
    list_versions,
    publish_layer_version,
    record_refused_import,
    rollback_layer,
)
from gisapproval.models import Event, Layer, LayerFeature, LayerVersion, User

X0, Y0 = 436000.0, 2542000.0  # well inside the sample jurisdiction (EPSG:4547)


def hazard_frame(n=5, crs="EPSG:4547", **overrides):
    rows = []
    for i in range(n):
        rows.append({"zone_code": f"HZ-T{i:03d}", "hazard_type": "landslide", "risk_level": "medium",
                     "geometry": shapely.box(X0 + i * 100, Y0, X0 + i * 100 + 80, Y0 + 80)})
    frame = gpd.GeoDataFrame(rows, crs=crs)
    for column, values in overrides.items():
        frame[column] = values
    return frame


def write(frame, path: Path, driver=None) -> Path:
    frame.to_file(path, driver=driver)
    return path


def live(session: Session, layer="hazard_zones"):
    layer_row = session.scalar(sa.select(Layer).where(Layer.name == layer))
    feats = session.execute(sa.select(LayerFeature.feature_key, sa.cast(LayerFeature.attrs, sa.Text),
                                      sa.func.md5(sa.func.ST_AsEWKB(LayerFeature.geom)))
                            .where(LayerFeature.layer_id == layer_row.id, LayerFeature.valid_to.is_(None))).all()
    return layer_row.current_version_id, sorted(feats)


def do_import(session, settings, path, layer="hazard_zones", actor=None, **opts):
    return publish_layer_version(session, settings, actor, layer, path, options=ImportOptions(**opts),
                                 check_permission=actor is not None)


def refused(session, settings, path, match, layer="hazard_zones", **opts):
    before = live(session, layer)
    with pytest.raises(InputError, match=match) as info, session.begin_nested():
        do_import(session, settings, path, layer, **opts)
    assert live(session, layer) == before, "a refused import changed the live layer"
    return info.value


# --- refusals --------------------------------------------------------------------------

def test_wrong_geometry_type(session, settings, tmp_path):
    frame = hazard_frame()
    frame.loc[2, "geometry"] = shapely.Point(X0, Y0)
    err = refused(session, settings, write(frame, tmp_path / "h.gpkg"), "geometry is a Point")
    assert any("HZ-T002" in p.where for p in err.problems)


def test_invalid_geometry_names_feature_and_reason(session, settings, tmp_path):
    frame = hazard_frame()
    frame.loc[1, "geometry"] = shapely.from_wkt(
        f"POLYGON(({X0} {Y0}, {X0 + 50} {Y0 + 50}, {X0 + 50} {Y0}, {X0} {Y0 + 50}, {X0} {Y0}))")
    err = refused(session, settings, write(frame, tmp_path / "h.gpkg"), "Self-intersection")
    problem = next(p for p in err.problems if "Self-intersection" in p.message)
    assert "HZ-T001" in problem.where and f"{X0 + 25:.0f}" in problem.message


def test_repair_option_fixes_and_reports(session, settings, tmp_path):
    frame = hazard_frame()
    frame.loc[1, "geometry"] = shapely.from_wkt(
        f"POLYGON(({X0} {Y0}, {X0 + 50} {Y0 + 50}, {X0 + 50} {Y0}, {X0} {Y0 + 50}, {X0} {Y0}))")
    report = do_import(session, settings, write(frame, tmp_path / "h.gpkg"), repair=True)
    assert len(report.repairs) == 1 and "HZ-T001" in str(report.repairs[0]) and "Self-intersection" in str(report.repairs[0])
    valid = session.scalar(sa.text("SELECT bool_and(ST_IsValid(geom)) FROM layer_features WHERE feature_key LIKE 'HZ-T%'"))
    assert valid


def test_empty_geometry(session, settings, tmp_path):
    frame = hazard_frame()
    frame.loc[3, "geometry"] = shapely.Polygon()
    refused(session, settings, write(frame, tmp_path / "h.geojson", "GeoJSON"), "HZ-T003.*(empty|no) geometry")


def test_missing_attribute_field(session, settings, tmp_path):
    frame = hazard_frame().drop(columns=["risk_level"])
    refused(session, settings, write(frame, tmp_path / "h.gpkg"), "missing attribute field.*risk_level")


def test_ill_typed_attribute(session, settings, tmp_path):
    frame = hazard_frame(layer_n := 4)
    frame = gpd.GeoDataFrame({"farmland_code": [f"FT{i}" for i in range(layer_n)],
                              "area_m2": ["12.5", "abc", "3", "4"]}, geometry=frame.geometry, crs=frame.crs)
    err = refused(session, settings, write(frame, tmp_path / "f.gpkg"), "must be a number", layer="basic_farmland")
    assert any("FT1" in p.where and "area_m2" in p.where for p in err.problems)


def test_value_outside_allowed_set(session, settings, tmp_path):
    frame = hazard_frame(risk_level=["medium", "extreme", "low", "high", "low"])
    refused(session, settings, write(frame, tmp_path / "h.gpkg"), "'extreme' is not one of high, medium, low")


def test_duplicate_keys(session, settings, tmp_path):
    frame = hazard_frame(zone_code=["A", "B", "A", "C", "D"])
    refused(session, settings, write(frame, tmp_path / "h.gpkg"), "feature 'A'.*appears 2 times")


def test_feature_outside_the_jurisdiction(session, settings, tmp_path):
    frame = hazard_frame()
    frame.loc[4, "geometry"] = shapely.box(300000, 2500000, 300100, 2500100)
    refused(session, settings, write(frame, tmp_path / "h.gpkg"), "HZ-T004.*outside the jurisdiction")


def test_oversized_file(session, settings, tmp_path):
    path = write(hazard_frame(), tmp_path / "h.gpkg")
    refused(session, settings, path, "more than the", limits=ImportLimits(max_file_bytes=1000))


def test_empty_file_and_wrong_content(session, settings, tmp_path):
    (tmp_path / "e.gpkg").write_bytes(b"")
    refused(session, settings, tmp_path / "e.gpkg", "the file is empty")
    (tmp_path / "t.gpkg").write_text("not a geopackage at all")
    refused(session, settings, tmp_path / "t.gpkg", "not a GeoPackage")
    (tmp_path / "x.kml").write_text("<kml/>")
    refused(session, settings, tmp_path / "x.kml", "unsupported file type '.kml'")


def _shapefile_zip(tmp_path: Path, frame, prj=True, extra=None) -> Path:
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir(exist_ok=True)
    frame.to_file(shp_dir / "zones.shp")
    if not prj:
        (shp_dir / "zones.prj").unlink()
    path = tmp_path / "zones.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(shp_dir.iterdir()):
            z.write(f, f.name)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


def test_zip_path_traversal(session, settings, tmp_path):
    path = _shapefile_zip(tmp_path, hazard_frame(), extra={"../../etc/evil.txt": "x"})
    refused(session, settings, path, "unsafe path")


def test_zip_with_a_link(session, settings, tmp_path):
    path = _shapefile_zip(tmp_path, hazard_frame())
    with zipfile.ZipFile(path, "a") as z:
        info = zipfile.ZipInfo("link.txt")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    refused(session, settings, path, "is a link")


def test_zip_with_too_many_members(session, settings, tmp_path):
    path = _shapefile_zip(tmp_path, hazard_frame(), extra={f"junk{i}.txt": "x" for i in range(60)})
    refused(session, settings, path, "members, more than the 50 allowed")


def test_zip_with_too_large_a_member(session, settings, tmp_path):
    path = _shapefile_zip(tmp_path, hazard_frame(), extra={"big.txt": "0" * 3_000_000})
    refused(session, settings, path, "(unpacks to|compressed suspiciously)",
            limits=ImportLimits(max_member_bytes=2_000_000))


def test_shapefile_without_crs_is_refused_unless_given(session, settings, tmp_path):
    path = _shapefile_zip(tmp_path, hazard_frame(), prj=False)
    refused(session, settings, path, "no coordinate reference system")
    report = do_import(session, settings, path, crs="EPSG:4547")
    assert report.added == 5


def test_refused_import_is_audited(session, settings):
    land_editor = session.scalar(sa.select(User).where(User.username == "land_editor"))
    record_refused_import(session, land_editor, "basic_farmland", "f.gpkg",
                          LayerImportError("basic_farmland", "f.gpkg", []))
    session.flush()
    assert session.scalar(sa.select(sa.func.count()).select_from(Event).where(Event.type == "layer_import.refused"))


# --- formats and reprojection -------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shpzip"])
def test_vector_formats_round_trip(session, settings, tmp_path, fmt):
    frame = hazard_frame(7)
    if fmt == "gpkg":
        path = write(frame, tmp_path / "h.gpkg")
    elif fmt == "geojson":
        path = write(frame.to_crs(4326), tmp_path / "h.geojson", "GeoJSON")
    else:
        path = _shapefile_zip(tmp_path, frame)
    report = do_import(session, settings, path)
    assert report.features == 7
    rows = session.execute(sa.text(
        "SELECT f.feature_key, f.attrs, ST_AsText(ST_SnapToGrid(f.geom, 0.01)) FROM layer_features f JOIN layers l ON"
        " l.id = f.layer_id WHERE l.name = 'hazard_zones' AND f.valid_to IS NULL AND f.feature_key LIKE 'HZ-T%'"
        " ORDER BY f.feature_key")).all()
    assert [r[0] for r in rows] == list(frame["zone_code"])
    assert rows[0][1] == {"zone_code": "HZ-T000", "hazard_type": "landslide", "risk_level": "medium"}
    for (_, _, wkt), geom in zip(rows, frame.geometry):
        assert shapely.from_wkt(wkt).symmetric_difference(geom).area < 0.01


def test_geotiff_round_trip_and_reprojection(session, settings, tmp_path):
    data = np.arange(100, dtype="float32").reshape(10, 10)
    to4326 = Transformer.from_crs(4547, 4326, always_xy=True)
    lon, lat = to4326.transform(X0, Y0)
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(lon, lat + 0.001, 0.0001, 0.0001)) as dst:
        dst.write(data, 1)
    report = do_import(session, settings, path, layer="dem")
    version = session.get(LayerVersion, report.version_id)
    with rasterio.open(version.raster_path) as src:
        assert src.crs.to_epsg() == 4547
        assert abs(src.bounds.left - X0) < 20 and abs(src.bounds.bottom - Y0) < 130
        assert src.read(1).max() > 0


@pytest.mark.parametrize("epsg", [4326, 4546])
def test_reprojection_to_the_centimetre(session, settings, tmp_path, epsg):
    frame = hazard_frame(3)
    truth = {k: g for k, g in zip(frame["zone_code"], frame.geometry)}
    other = frame.to_crs(epsg)
    path = write(other, tmp_path / "h.gpkg")
    do_import(session, settings, path)
    for key, geom in truth.items():
        stored = shapely.from_wkt(session.scalar(sa.text(
            "SELECT ST_AsText(geom) FROM layer_features WHERE feature_key = :k AND valid_to IS NULL"), {"k": key}))
        got = shapely.get_coordinates(stored)
        want = shapely.get_coordinates(shapely.MultiPolygon([geom]))
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 0.01, f"{key} moved {np.abs(got - want).max():.4f} m"


def test_live_digests_find_each_feature_by_its_digest_and_key():
    """A source row is found among the live features (their position, in the keys' order) when
    its digest and key are one of theirs. Digests not known (zeros), and digests sharing their
    first 64 bits, are never found: those rows are compared in the database instead."""
    import pyarrow as pa

    from gisapproval.layerimport import LiveDigests

    live = np.array([[1, 10], [2, 20], [3, 30], [3, 31], [0, 0], [5, 50]], dtype="<u8")
    known = LiveDigests(pa.array(["a", "b", "c", "d", "e", "f"]), live)
    source = np.array([[2, 20], [1, 10], [3, 30], [3, 31], [0, 0], [1, 11], [5, 50], [9, 90]], dtype="<u8")
    keys = pa.array(["b", "a", "c", "d", "e", "a", "F", "z"])
    at = known.find(source, keys)
    # b, a found; c, d share a first half; e not known; a changed; f's key now F; z not live
    assert at.tolist() == [1, 0, -1, -1, -1, -1, -1, -1]
    known.saw(at[at >= 0])
    assert known.removed(pa.chunked_array([pa.array(["c", "d", "e", "a", "F", "z"])])) == ["f"]
    assert known.repeated(pa.array(["a"]), np.array([1])) == {"a": 2}  # held as it is and also changed
    assert LiveDigests(pa.array([], pa.string()), np.empty((0, 2), dtype="<u8")).find(source, keys).tolist() == [-1] * 8


# --- versions ----------------------------------------------------------------------------

def test_version_arithmetic_as_of_and_rollback(session, settings, tmp_path):
    v1 = do_import(session, settings, write(hazard_frame(5), tmp_path / "a.gpkg"))
    stored_after_v1 = session.scalar(sa.select(sa.func.count()).select_from(LayerFeature))
    frame = hazard_frame(5)
    frame = frame[frame["zone_code"] != "HZ-T004"]  # removed
    frame.loc[frame["zone_code"] == "HZ-T001", "risk_level"] = "high"  # changed
    frame = gpd.GeoDataFrame(
        [*frame.to_dict("records"), {"zone_code": "HZ-T999", "hazard_type": "collapse", "risk_level": "low",
                                     "geometry": shapely.box(X0, Y0 + 500, X0 + 50, Y0 + 550)}], crs=frame.crs)
    v2 = do_import(session, settings, write(frame, tmp_path / "b.gpkg"))
    assert (v2.added, v2.changed, v2.removed, v2.unchanged) == (1, 1, 1, 3)
    assert session.scalar(sa.select(sa.func.count()).select_from(LayerFeature)) == stored_after_v1 + 2
    layer = session.scalar(sa.select(Layer).where(Layer.name == "hazard_zones"))
    keys_v1 = set(session.scalars(sa.select(LayerFeature.feature_key).where(features_as_of(layer.id, v1.number))))
    keys_v2 = set(session.scalars(sa.select(LayerFeature.feature_key).where(features_as_of(layer.id, v2.number))))
    assert "HZ-T004" in keys_v1 and "HZ-T004" not in keys_v2 and "HZ-T999" in keys_v2
    d = diff_versions(session, "hazard_zones", v1.number, v2.number)
    assert (d.added, d.removed, d.changed) == (["HZ-T999"], ["HZ-T004"], ["HZ-T001"])
    v3 = rollback_layer(session, None, "hazard_zones", v1.number, check_permission=False)
    assert (v3.added, v3.changed, v3.removed) == (1, 1, 1)
    keys_v3 = set(session.scalars(sa.select(LayerFeature.feature_key).where(features_as_of(layer.id, v3.number))))
    assert keys_v3 == keys_v1
    assert diff_versions(session, "hazard_zones", v1.number, v3.number).counts() == {
        "added": 0, "removed": 0, "changed": 0}
    numbers = [v.number for v in list_versions(session, "hazard_zones")]
    assert numbers[:3] == [v3.number, v2.number, v1.number]


def test_a_diff_of_any_two_versions_is_what_their_contents_say(session, settings, tmp_path):
    """The diff reads only the keys whose rows begin or end between the two versions; for every
    pair of five versions (either way round, a version with itself too) it is what comparing the
    two versions' whole contents gives."""
    frames = [hazard_frame(6)]
    f = hazard_frame(6)
    f.loc[1, "risk_level"] = "high"  # changed
    frames.append(f[f["zone_code"] != "HZ-T005"])  # and removed
    f = frames[-1].copy()
    f.loc[1, "risk_level"] = "medium"  # changed back
    f.loc[2, "geometry"] = shapely.box(X0 + 200, Y0, X0 + 260, Y0 + 60)  # reshaped
    frames.append(f)
    frames.append(hazard_frame(6))  # HZ-T005 comes back, HZ-T002 its first shape again
    f = hazard_frame(7)
    f.loc[0, "hazard_type"] = "collapse"
    frames.append(f)  # HZ-T006 added
    numbers = [do_import(session, settings, write(f, tmp_path / f"v{i}.gpkg")).number for i, f in enumerate(frames)]
    layer = session.scalar(sa.select(Layer).where(Layer.name == "hazard_zones"))

    def content(number):
        return dict((k, (a, g)) for k, a, g in session.execute(
            sa.select(LayerFeature.feature_key, sa.cast(LayerFeature.attrs, sa.Text),
                      sa.func.ST_AsEWKB(LayerFeature.geom)).where(features_as_of(layer.id, number))).all())

    contents = {n: content(n) for n in numbers}
    for a in numbers:
        for b in numbers:
            old, new = contents[a], contents[b]
            d = diff_versions(session, "hazard_zones", a, b)
            assert (d.added, d.removed, d.changed) == (
                sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys()),
                sorted(k for k in old.keys() & new.keys() if old[k] != new[k])), (a, b)
    assert diff_versions(session, "hazard_zones", numbers[0], numbers[3]).counts() == {
        "added": 0, "removed": 0, "changed": 0}  # changed, then changed back: the same content


def test_unchanged_reimport_stores_nothing_new(session, settings, tmp_path):
    path = write(hazard_frame(5), tmp_path / "a.gpkg")
    do_import(session, settings, path)
    before = session.scalar(sa.select(sa.func.count()).select_from(LayerFeature))
    again = do_import(session, settings, path)
    assert (again.added, again.changed, again.removed) == (0, 0, 0) and again.unchanged == 5
    assert session.scalar(sa.select(sa.func.count()).select_from(LayerFeature)) == before


def test_two_imports_of_one_layer_never_interleave(engine, settings, tmp_path):
    path = write(hazard_frame(5), tmp_path / "a.gpkg")
    with Session(engine) as first, Session(engine) as second:
        try:
            do_import(first, settings, path)  # holds the layer's lock until it commits or rolls back
            with pytest.raises(LayerBusyError, match="another import or rollback of layer 'hazard_zones'"):
                do_import(second, settings, path)
        finally:
            first.rollback()
            second.rollback()


# --- permissions and impact ---------------------------------------------------------------

def test_only_editors_of_the_owning_department(session, settings, tmp_path):
    users = {u.username: u for u in session.scalars(sa.select(User))}
    path = write(hazard_frame(3), tmp_path / "h.gpkg")
    with pytest.raises(PermissionDeniedError, match="only layer editors of the"):
        do_import(session, settings, path, actor=users["land_editor"])  # hazard zones belong to construction
    with pytest.raises(PermissionDeniedError):
        do_import(session, settings, path, actor=users["construction_reviewer"])
    farm = gpd.GeoDataFrame({"farmland_code": ["FT1"], "area_m2": [6400.0]},
                            geometry=[shapely.box(X0, Y0, X0 + 80, Y0 + 80)], crs="EPSG:4547")
    report = do_import(session, settings, write(farm, tmp_path / "f.gpkg"), layer="basic_farmland",
                       actor=users["land_editor"])
    assert report.added == 1
    with pytest.raises(PermissionDeniedError):
        rollback_layer(session, users["planning_reviewer"], "basic_farmland", 1)


def _hazard_under_a_project_in_review(session, settings, tmp_path):
    """Import a hazard zone lying on a footprint of a project in review; (project id, report)."""
    project_id, wkt = session.execute(sa.text(
        "SELECT b.project_id, ST_AsText(ST_Buffer(ST_Centroid(b.geom), 5)) FROM buildings b JOIN projects p ON"
        " p.id = b.project_id WHERE p.status = 'in_review' ORDER BY p.id LIMIT 1")).one()
    frame = hazard_frame(2)
    frame.loc[1, "geometry"] = shapely.from_wkt(wkt)
    return project_id, do_import(session, settings, write(frame, tmp_path / "h.gpkg"))


def test_a_change_under_a_project_in_flight_is_recorded_as_its_impact(session, settings, tmp_path):
    project_id, report = _hazard_under_a_project_in_review(session, settings, tmp_path)
    assert project_id in report.affected_project_ids
    version = session.get(LayerVersion, report.version_id)
    assert project_id in version.affected_project_ids


# --- reading layers back: problems by feature and field, overview, features as of, diff GeoJSON ----

def test_problems_name_their_feature_and_field(session, settings, tmp_path):
    frame = hazard_frame(risk_level=["medium", "extreme", "low", "high", "low"])
    frame.loc[3, "geometry"] = shapely.Point(X0, Y0)
    err = refused(session, settings, write(frame, tmp_path / "h.gpkg"), "refused")
    found = {(p.feature, p.field) for p in err.problems}
    assert found == {("HZ-T001", "risk_level"), ("HZ-T003", "geometry")}
    assert err.problems[0].as_dict()["feature"] in {"HZ-T001", "HZ-T003"}


def test_layer_overview_counts_live_features_and_versions(session, settings, tmp_path):
    from gisapproval.layerversions import layer_overview

    before = {o.layer.name: o for o in layer_overview(session)}
    assert list(before)[:2] == ["cadastre", "zoning"]
    assert before["dem"].feature_count is None and before["dem"].current is not None
    assert before["cadastre"].coverage_km2 > 0
    report = do_import(session, settings, write(hazard_frame(4), tmp_path / "h.gpkg"))
    (after,) = layer_overview(session, "hazard_zones")
    assert after.current.number == report.number
    assert after.feature_count == report.added + report.changed + report.unchanged
    assert after.version_count == before["hazard_zones"].version_count + 1


def test_features_geojson_as_of_a_version_with_bbox_and_limit(session, settings, tmp_path):
    from gisapproval.layerversions import features_geojson

    v1 = do_import(session, settings, write(hazard_frame(3), tmp_path / "a.gpkg"))
    frame = hazard_frame(3)
    frame.loc[0, "risk_level"] = "high"
    v2 = do_import(session, settings, write(frame, tmp_path / "b.gpkg"))
    to4326 = Transformer.from_crs(4547, 4326, always_xy=True)
    w, s = to4326.transform(X0 - 5, Y0 - 5)
    e, n = to4326.transform(X0 + 150, Y0 + 85)  # the first two boxes only
    old = features_geojson(session, "hazard_zones", v1.number, (w, s, e, n))
    new = features_geojson(session, "hazard_zones", v2.number, (w, s, e, n))
    assert [f["id"] for f in old["features"]] == ["HZ-T000", "HZ-T001"]
    assert old["features"][0]["properties"]["risk_level"] == "medium"
    assert new["features"][0]["properties"]["risk_level"] == "high" and new["version"] == v2.number
    lon, lat = old["features"][0]["geometry"]["coordinates"][0][0][0]
    assert abs(lon - 113.4) < 0.2 and abs(lat - 23.0) < 0.2
    some = features_geojson(session, "hazard_zones", None, limit=1)
    assert len(some["features"]) == 1 and some["truncated"] and some["version"] == v2.number
    with pytest.raises(InputError, match="west < east"):
        features_geojson(session, "hazard_zones", None, (e, s, w, n))


def test_diff_geojson_carries_old_and_new_attributes(session, settings, tmp_path):
    from gisapproval.layerversions import diff_geojson

    v1 = do_import(session, settings, write(hazard_frame(2), tmp_path / "a.gpkg"))
    frame = hazard_frame(2)
    frame.loc[1, "risk_level"] = "low"
    v2 = do_import(session, settings, write(frame, tmp_path / "b.gpkg"))
    features = diff_geojson(session, "hazard_zones", v1.number, v2.number)["features"]
    changed = [f for f in features if f["properties"]["key"] == "HZ-T001"]
    kinds = {f["properties"]["kind"]: f["properties"] for f in changed}
    assert kinds["changed"]["attrs"]["risk_level"] == "low" and kinds["changed"]["old_attrs"]["risk_level"] == "medium"
    assert kinds["changed_before"]["attrs"]["risk_level"] == "medium"


@pytest.mark.parametrize("layer, shapes, moved, before, after", [
    ("roads", "lines", shapely.LineString([(X0, Y0), (X0 + 300, Y0)]), 200.0, 300.0),  # metres of road
    ("fire_stations", "points", shapely.Point(X0 + 50, Y0 + 50), None, None),  # a point measures nothing
])
def test_diff_changes_say_what_differs_and_measure_by_the_layers_geometry(session, settings, tmp_path, layer, shapes,
                                                                          moved, before, after):
    from gisapproval.layerversions import diff_changes

    if shapes == "lines":
        frame = gpd.GeoDataFrame({"road_id": ["R1", "R2"], "name": ["东路", "西路"], "road_class": ["branch"] * 2,
                                  "width_m": [12.0, 9.0]},
                                 geometry=[shapely.LineString([(X0, Y0), (X0 + 200, Y0)]),
                                           shapely.LineString([(X0, Y0 + 50), (X0 + 100, Y0 + 50)])], crs="EPSG:4547")
    else:
        frame = gpd.GeoDataFrame({"station_id": ["S1", "S2"], "name": ["一站", "二站"],
                                  "station_class": ["standard", "small"]},
                                 geometry=[shapely.Point(X0, Y0), shapely.Point(X0 + 100, Y0)], crs="EPSG:4547")
    v1 = do_import(session, settings, write(frame, tmp_path / "a.gpkg"), layer=layer)
    key = frame.columns[0]
    frame.loc[0, "geometry"] = moved  # the first moves; the second is renamed
    frame.loc[1, "name"] = "新名"
    v2 = do_import(session, settings, write(frame, tmp_path / "b.gpkg"), layer=layer)
    first, second = frame[key][0], frame[key][1]
    changes = {c.key: c for c in diff_changes(session, layer, v1.number, v2.number)}
    assert set(changes) == {first, second} and {c.kind for c in changes.values()} == {"changed"}
    assert (changes[first].reshaped, changes[first].fields) == (True, [])
    assert changes[first].before == pytest.approx(before) and changes[first].after == pytest.approx(after)
    old_name = "西路" if shapes == "lines" else "二站"
    assert (changes[second].reshaped, changes[second].fields) == (False, [("name", old_name, "新名")])
    # and the other way, with a limit: the first by key only
    assert [c.key for c in diff_changes(session, layer, v2.number, v1.number, limit=1)] == [first]


def test_an_attribute_set_to_null_differs_from_an_absent_one_in_the_diffs_changes(session, settings, tmp_path):
    """jsonb and the content comparison tell a null attribute from an absent one; so does the list
    of what changed, which never shows a changed feature with nothing changed in it. (Imports
    refuse empty values; rows edited in the database by hand can hold either.)"""
    from gisapproval.layerversions import diff_changes

    frame = gpd.GeoDataFrame({"redline_code": ["ER-N1"], "name": ["甲"]},
                             geometry=[shapely.box(X0, Y0, X0 + 50, Y0 + 50)], crs="EPSG:4547")
    v1 = do_import(session, settings, write(frame, tmp_path / "a.gpkg"), layer="eco_redline")
    frame["name"] = ["乙"]
    v2 = do_import(session, settings, write(frame, tmp_path / "b.gpkg"), layer="eco_redline")
    edit = ("UPDATE layer_features SET attrs = {attrs}, content_digest = NULL "
            "WHERE feature_key = 'ER-N1' AND valid_from = :v")
    session.execute(sa.text(edit.format(attrs="jsonb_set(attrs, '{name}', 'null')")), {"v": v1.number})
    session.execute(sa.text(edit.format(attrs="attrs - 'name'")), {"v": v2.number})
    changes = diff_changes(session, "eco_redline", v1.number, v2.number)
    assert [(c.key, c.kind, c.reshaped, c.fields) for c in changes] == [
        ("ER-N1", "changed", False, [("name", None, None)])]


def test_affected_projects_are_rechecked_when_the_version_commits(session, settings, tmp_path):
    from gisapproval.models import CheckRun

    project_id, report = _hazard_under_a_project_in_review(session, settings, tmp_path)
    assert report.recheck_run_ids
    runs = session.scalars(sa.select(CheckRun).where(CheckRun.id.in_(report.recheck_run_ids))).all()
    assert project_id in {r.project_id for r in runs}
    assert {r.purpose for r in runs} == {"recheck"} and all(r.trigger_version_id == report.version_id for r in runs)


@pytest.mark.parametrize("values", [
    ["plain", "中文", "x"],  # nothing to escape
    ['say "hi"', "back\\slash", 'both \\"'],  # quotes and backslashes only
    ["tab\there", "new\nline", 'mixed "\x01'],  # control characters
])
def test_attributes_json_is_the_json_of_each_row(values):
    """attrs_json builds every row's object column-wise; each row must read back as the row."""
    import json

    import pyarrow as pa

    from gisapproval.layerimport import attrs_json

    columns = {"name": pa.array(values), "area": pa.array([1.5, 1e20, 1 / 3])}
    rows = attrs_json(columns, {"name": "str", "area": "float"}).to_pylist()
    assert [json.loads(r) for r in rows] == [{"name": v, "area": a} for v, a in zip(values, [1.5, 1e20, 1 / 3])]
