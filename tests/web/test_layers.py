"""The layers area through HTTP: the JSON API (catalogue, import with progress-free multipart,
422 problem lists, versions, diff, roll back, features as of a version) and the pages, with
permissions, the audit of refused imports and two imports of one layer at once.

These tests import into layers and commit, so they run on a database of their own (migrated,
sample loaded) rather than the session-wide one other tests read.
"""

from __future__ import annotations

import datetime as dt
import html as htmllib
import io
import re
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

from gisapproval.db import (
    make_engine,
)
from gisapproval.models import Event, Layer, LayerFeature, LayerVersion

X0, Y0 = 436000.0, 2542000.0  # inside the sample jurisdiction (EPSG:4547)
UPLOAD_LIMIT = 3_000_000


# --- an app on a database of its own -------------------------------------------------------

@pytest.fixture(scope="module")
def ldb_url(own_sample_db):
    with own_sample_db("layersweb") as url:
        yield url


@pytest.fixture(scope="module")
def ldb(ldb_url):
    engine = make_engine(ldb_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def lapp(ldb_url):
    from web import create_app

    return create_app({"TESTING": True, "DATABASE_URL": ldb_url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True,
                       "LAYER_MAX_UPLOAD_BYTES": UPLOAD_LIMIT})


@pytest.fixture()
def lclient(lapp):
    return lapp.test_client()


def as_user(client, web, username):
    """Log in and return the CSRF token for API writes."""
    response = web.login(client, username)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    page = client.get("/layers")
    return web.csrf_token(page.get_data(as_text=True)) if page.status_code == 200 else None


def upload(client, token, layer, path: Path, **form):
    data = {"file": (io.BytesIO(path.read_bytes()), path.name), **form}
    return client.post(f"/api/layers/{layer}/versions", data=data, headers={"X-CSRFToken": token},
                       content_type="multipart/form-data")


def live(ldb, layer):
    with ldb.connect() as conn:
        current = conn.execute(sa.select(Layer.current_version_id).where(Layer.name == layer)).scalar_one()
        feats = conn.execute(sa.select(LayerFeature.feature_key, sa.cast(LayerFeature.attrs, sa.Text),
                                       sa.func.md5(sa.func.ST_AsEWKB(LayerFeature.geom)))
                             .join(Layer, Layer.id == LayerFeature.layer_id)
                             .where(Layer.name == layer, LayerFeature.valid_to.is_(None))).all()
    return current, sorted(feats)


def refusals(ldb, layer, since_id=0):
    with ldb.connect() as conn:
        return conn.execute(sa.select(Event).where(Event.type == "layer_import.refused", Event.id > since_id)
                            .where(Event.payload["layer"].astext == layer).order_by(Event.id)).all()


def last_event_id(ldb):
    with ldb.connect() as conn:
        return conn.scalar(sa.select(sa.func.coalesce(sa.func.max(Event.id), 0)))


def farmland(n=4, prefix="FT", **overrides):
    frame = gpd.GeoDataFrame(
        {"farmland_code": [f"{prefix}{i:03d}" for i in range(n)], "area_m2": [6400.0 + i for i in range(n)]},
        geometry=[shapely.box(X0 + i * 100, Y0, X0 + i * 100 + 80, Y0 + 80) for i in range(n)], crs="EPSG:4547")
    for column, values in overrides.items():
        frame[column] = values
    return frame


def shapefile_zip(tmp_path: Path, frame) -> Path:
    folder = tmp_path / "shp"
    folder.mkdir(exist_ok=True)
    frame.to_file(folder / "farmland.shp")
    path = tmp_path / "farmland.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f.name)
    return path


# --- the catalogue and permissions ----------------------------------------------------------

def test_catalogue_lists_every_layer_with_its_current_version(lclient, web, ldb):
    as_user(lclient, web, "land_editor")
    body = lclient.get("/api/layers").get_json()
    from gisapproval.catalogue import default_catalogue

    assert [layer["name"] for layer in body] == list(default_catalogue())
    by_name = {layer["name"]: layer for layer in body}
    with ldb.connect() as conn:
        n_parcels = conn.scalar(sa.text(
            "SELECT count(*) FROM layer_features f JOIN layers l ON l.id = f.layer_id "
            "WHERE l.name = 'cadastre' AND f.valid_to IS NULL"))
    cad = by_name["cadastre"]
    assert cad["feature_count"] == n_parcels > 0
    assert cad["current_version"]["number"] >= 1 and cad["department"]["code"] == "land"
    assert cad["feature_key"] == "parcel_code" and cad["attributes"]["area_m2"] == "float"
    assert "parcel_containment" in cad["used_by"] and cad["coverage"] == "jurisdiction" and cad["coverage_km2"] > 0
    assert cad["may_edit"] is True and by_name["zoning"]["may_edit"] is False
    assert by_name["dem"]["kind"] == "raster" and by_name["dem"]["feature_count"] is None
    assert by_name["roads"]["allowed"]["road_class"] == ["expressway", "arterial", "secondary", "branch"]


def test_applicants_and_visitors_may_not_read_layers(lclient, web):
    assert lclient.get("/api/layers").status_code == 401
    as_user(lclient, web, "applicant1")
    assert lclient.get("/api/layers").status_code == 403
    assert lclient.get("/layers").status_code == 403


@pytest.mark.parametrize("username", ["land_reviewer", "supervisor", "admin"])
def test_only_layer_editors_of_the_owning_department_import_and_the_refusal_is_audited(
        lclient, web, ldb, tmp_path, username):
    token = as_user(lclient, web, username)
    path = tmp_path / "f.gpkg"
    farmland().to_file(path)
    before, since = live(ldb, "basic_farmland"), last_event_id(ldb)
    response = upload(lclient, token, "basic_farmland", path)
    assert response.status_code == 403
    assert "only layer editors of the" in response.get_json()["error"]["message"]
    assert live(ldb, "basic_farmland") == before
    events = refusals(ldb, "basic_farmland", since)
    assert len(events) == 1 and "only layer editors" in events[0].payload["problems"][0]
    rollback = lclient.post("/api/layers/basic_farmland/rollback", json={"to_version": 1},
                            headers={"X-CSRFToken": token})
    assert rollback.status_code == 403


def test_a_layer_editor_may_not_change_another_departments_layer(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    frame = gpd.GeoDataFrame({"zone_code": ["Z1"], "hazard_type": ["flood"], "risk_level": ["low"]},
                             geometry=[shapely.box(X0, Y0, X0 + 50, Y0 + 50)], crs="EPSG:4547")
    frame.to_file(tmp_path / "h.gpkg")
    before = live(ldb, "hazard_zones")
    response = upload(lclient, token, "hazard_zones", tmp_path / "h.gpkg")
    assert response.status_code == 403 and "construction" in response.get_json()["error"]["message"]
    assert live(ldb, "hazard_zones") == before


def test_api_writes_need_the_csrf_token(lclient, web, ldb, tmp_path):
    as_user(lclient, web, "land_editor")
    farmland().to_file(tmp_path / "f.gpkg")
    before = live(ldb, "basic_farmland")
    response = upload(lclient, "not-the-token", "basic_farmland", tmp_path / "f.gpkg")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "csrf"
    assert live(ldb, "basic_farmland") == before


# --- refusals: every problem, nothing changed, audited --------------------------------------

def test_422_lists_every_problem_with_feature_and_field(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 50, Y0 + 50), (X0 + 50, Y0), (X0, Y0 + 50), (X0, Y0)])
    frame = farmland(4)
    frame["area_m2"] = frame["area_m2"].astype(object)
    frame.loc[1, "area_m2"] = "lots"
    frame.loc[2, "geometry"] = bowtie
    frame.loc[3, "farmland_code"] = "FT000"  # duplicate key
    frame.to_file(tmp_path / "bad.gpkg")
    before, since = live(ldb, "basic_farmland"), last_event_id(ldb)
    response = upload(lclient, token, "basic_farmland", tmp_path / "bad.gpkg")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input" and "nothing changed" in error["message"]
    problems = " | ".join(error["problems"])
    assert "feature 'FT001', field 'area_m2'" in problems and "'lots'" in problems
    assert "feature 'FT002'" in problems and "Self-intersection" in problems
    assert "key 'farmland_code' appears 2 times" in problems
    details = {(d["feature"], d["field"]) for d in error["problem_details"]}
    assert {("FT001", "area_m2"), ("FT002", "geometry"), ("FT000", "farmland_code")} <= details
    assert live(ldb, "basic_farmland") == before
    (event,) = refusals(ldb, "basic_farmland", since)
    assert event.actor_id is not None and event.payload["source"] == "bad.gpkg"
    assert any("Self-intersection" in p for p in event.payload["problems"])


def test_repair_option_through_the_api(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    frame = farmland(2, prefix="FR")
    frame.loc[1, "geometry"] = shapely.Polygon([(X0, Y0), (X0 + 50, Y0 + 50), (X0 + 50, Y0), (X0, Y0 + 50)])
    frame.to_file(tmp_path / "r.gpkg")
    response = upload(lclient, token, "basic_farmland", tmp_path / "r.gpkg", repair="true")
    assert response.status_code == 201, response.get_json()
    report = response.get_json()
    assert report["repair_details"] == [{"where": "r.gpkg: feature 'FR001'", "feature": "FR001",
                                         "field": "geometry", "message": report["repair_details"][0]["message"]}]
    assert "repaired: Self-intersection" in report["repair_details"][0]["message"]


def test_oversized_upload_and_missing_file_are_refused_and_audited(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    big = tmp_path / "big.geojson"
    big.write_bytes(b"{" + b" " * (UPLOAD_LIMIT + 10) + b"}")
    since = last_event_id(ldb)
    response = upload(lclient, token, "eco_redline", big)
    assert response.status_code == 422 and "larger than the 3 MB allowed" in response.get_json()["error"]["message"]
    response = lclient.post("/api/layers/eco_redline/versions", data={}, headers={"X-CSRFToken": token},
                            content_type="multipart/form-data")
    assert response.status_code == 422 and "choose a file" in response.get_json()["error"]["message"]
    assert len(refusals(ldb, "eco_redline", since)) == 2


def test_a_source_without_crs_is_refused_unless_one_is_given(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    frame = gpd.GeoDataFrame({"redline_code": ["ER-T1"], "name": ["测试红线"]},
                             geometry=[shapely.box(X0, Y0, X0 + 60, Y0 + 60)], crs=None)
    frame.to_file(tmp_path / "nocrs.gpkg")
    response = upload(lclient, token, "eco_redline", tmp_path / "nocrs.gpkg")
    assert response.status_code == 422 and "no coordinate reference system" in response.get_json()["error"]["message"]
    response = upload(lclient, token, "eco_redline", tmp_path / "nocrs.gpkg", crs="EPSG:4547")
    assert response.status_code == 201 and response.get_json()["source_crs"] == "EPSG:4547"


# --- concurrency --------------------------------------------------------------------------

def test_a_second_import_of_a_busy_layer_is_refused_with_409(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    farmland(3, prefix="FB").to_file(tmp_path / "f.gpkg")
    with ldb.connect() as conn:
        layer_id = conn.execute(sa.select(Layer.id).where(Layer.name == "basic_farmland")).scalar_one()
    before, since = live(ldb, "basic_farmland"), last_event_id(ldb)
    with ldb.connect() as holder, holder.begin():  # another import of the same layer, mid-transaction
        assert holder.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(7301, layer_id)))
        response = upload(lclient, token, "basic_farmland", tmp_path / "f.gpkg")
        assert response.status_code == 409
        error = response.get_json()["error"]
        assert error["code"] == "busy" and "another import or rollback of layer 'basic_farmland'" in error["message"]
    assert live(ldb, "basic_farmland") == before
    assert "under way" in refusals(ldb, "basic_farmland", since)[0].payload["problems"][0]
    response = upload(lclient, token, "basic_farmland", tmp_path / "f.gpkg")  # once the other has finished
    assert response.status_code == 201


# --- round trips of the four formats -------------------------------------------------------

@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shpzip"])
def test_vector_round_trip_through_the_api(lclient, web, ldb, tmp_path, fmt):
    token = as_user(lclient, web, "land_editor")
    frame = farmland(5, prefix=f"RT{fmt}-")
    if fmt == "gpkg":
        path = tmp_path / "farmland.gpkg"
        frame.to_file(path)
    elif fmt == "geojson":
        path = tmp_path / "farmland.geojson"
        frame.to_crs(4326).to_file(path, driver="GeoJSON")
    else:
        path = shapefile_zip(tmp_path, frame)
    response = upload(lclient, token, "basic_farmland", path)
    assert response.status_code == 201, response.get_json()
    report = response.get_json()
    assert report["features"] == 5 and report["added"] == 5
    number = report["version"]
    versions = lclient.get("/api/layers/basic_farmland/versions").get_json()
    assert versions[0]["number"] == number and versions[0]["source_name"] == path.name
    assert versions[0]["created_by"] == "land_editor"
    got = lclient.get(f"/api/layers/basic_farmland/features?version={number}&limit=20000").get_json()
    assert got["version"] == number and got["truncated"] is False
    mine = {f["id"]: f for f in got["features"] if f["id"].startswith(f"RT{fmt}-")}
    assert sorted(mine) == list(frame["farmland_code"])
    to4547 = Transformer.from_crs(4326, 4547, always_xy=True)
    for key, area, geom in zip(frame["farmland_code"], frame["area_m2"], frame.geometry):
        feature = mine[key]
        assert feature["properties"]["area_m2"] == area and feature["properties"]["farmland_code"] == key
        ring = np.array(feature["geometry"]["coordinates"][0][0])
        x, y = to4547.transform(ring[:, 0], ring[:, 1])
        back = shapely.Polygon(np.column_stack([x, y]))
        assert shapely.hausdorff_distance(back, geom) < 0.02  # GeoJSON's 7 decimals of a degree: ~1 cm
    diff = lclient.get(f"/api/layers/basic_farmland/diff?from={number - 1}&to={number}").get_json()
    assert diff["counts"]["added"] == 5 and diff["counts"]["changed"] == 0
    assert diff["counts"]["removed"] == report["removed"]
    kinds = {f["properties"]["key"]: f["properties"]["kind"] for f in diff["geojson"]["features"]}
    assert all(kinds[k] == "added" for k in frame["farmland_code"])


def test_geotiff_round_trip_through_the_api(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    to4326 = Transformer.from_crs(4547, 4326, always_xy=True)
    lon, lat = to4326.transform(X0, Y0)
    path = tmp_path / "dem_update.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(lon, lat + 0.001, 0.0001, 0.0001)) as dst:
        dst.write(np.arange(100, dtype="float32").reshape(10, 10), 1)
    response = upload(lclient, token, "dem", path)
    assert response.status_code == 201, response.get_json()
    report = response.get_json()
    assert report["source_crs"] == "EPSG:4326"
    with ldb.connect() as conn:
        stored = conn.execute(sa.select(LayerVersion.raster_path).where(LayerVersion.id == report["version_id"])
                              ).scalar_one()
    with rasterio.open(stored) as src:
        assert src.crs.to_epsg() == 4547 and abs(src.bounds.left - X0) < 20
        cells = src.read(1, masked=True)
        assert 90 < cells.max() <= 99 and cells.min() >= 0  # bilinear resampling of 0..99
    catalogue = {layer["name"]: layer for layer in lclient.get("/api/layers").get_json()}
    assert catalogue["dem"]["current_version"]["number"] == report["version"]
    assert catalogue["dem"]["current_version"]["raster"] is True


# --- history: versions, diff, roll back, as-of -----------------------------------------------

def test_change_diff_rollback_and_as_of_through_the_api(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    base = farmland(4, prefix="HX")
    base.to_file(tmp_path / "a.gpkg")
    first = upload(lclient, token, "basic_farmland", tmp_path / "a.gpkg").get_json()
    changed = base.copy()
    changed.loc[0, "area_m2"] = 1.0  # changed attribute
    changed.loc[1, "geometry"] = shapely.box(X0 + 100, Y0, X0 + 170, Y0 + 70)  # changed shape
    changed = changed[changed["farmland_code"] != "HX003"]  # removed
    changed = gpd.GeoDataFrame(
        list(changed.to_dict("records")) + [{"farmland_code": "HX-NEW", "area_m2": 5.0,
                                              "geometry": shapely.box(X0 + 900, Y0, X0 + 950, Y0 + 50)}],
        crs="EPSG:4547")
    changed.to_file(tmp_path / "b.gpkg")
    second = upload(lclient, token, "basic_farmland", tmp_path / "b.gpkg").get_json()
    assert (second["added"], second["changed"], second["removed"]) == (1, 2, first["added"] + first["unchanged"] - 3)
    a, b = first["version"], second["version"]
    diff = lclient.get(f"/api/layers/basic_farmland/diff?from={a}&to={b}").get_json()
    kinds = {}
    for f in diff["geojson"]["features"]:
        kinds.setdefault(f["properties"]["key"], set()).add(f["properties"]["kind"])
    assert kinds["HX-NEW"] == {"added"} and kinds["HX003"] == {"removed"}
    assert kinds["HX000"] == kinds["HX001"] == {"changed", "changed_before"}
    assert "HX002" not in kinds
    change = next(f for f in diff["geojson"]["features"]
                  if f["properties"]["key"] == "HX000" and f["properties"]["kind"] == "changed")
    assert change["properties"]["old_attrs"]["area_m2"] == 6400.0 and change["properties"]["attrs"]["area_m2"] == 1.0
    # what differs in each feature: the attributes, whether the shape did, the area before and after
    changes = {c["key"]: c for c in diff["changes"]}
    assert [c["key"] for c in diff["changes"]] == sorted(changes) and len(changes) == sum(diff["counts"].values())
    assert changes["HX000"] == {"key": "HX000", "kind": "changed", "reshaped": False, "before": 6400.0,
                                "after": 6400.0, "fields": [{"name": "area_m2", "before": 6400.0, "after": 1.0}]}
    assert changes["HX001"] == {"key": "HX001", "kind": "changed", "reshaped": True, "before": 6400.0,
                                "after": 4900.0, "fields": []}
    assert changes["HX003"] == {"key": "HX003", "kind": "removed", "reshaped": None, "before": 6400.0,
                                "after": None, "fields": [{"name": "area_m2", "before": 6403.0, "after": None},
                                                          {"name": "farmland_code", "before": "HX003", "after": None}]}
    assert changes["HX-NEW"]["kind"] == "added" and changes["HX-NEW"]["after"] == 2500.0
    assert changes["HX-NEW"]["fields"] == [{"name": "area_m2", "before": None, "after": 5.0},
                                           {"name": "farmland_code", "before": None, "after": "HX-NEW"}]
    # and on the diff page, under the map
    page = lclient.get(f"/layers/basic_farmland/diff?from={a}&to={b}&lang=en").get_data(as_text=True)
    start = page.index('id="layers-changes-table"')
    table = page[start:page.index("</table>", start)]
    rows = dict(re.findall(r'<tr data-key="([^"]+)" data-kind="[a-z]+">(.*?)</tr>', table, re.DOTALL))
    assert list(rows) == [c["key"] for c in diff["changes"]]
    text = {k: " ".join(re.sub(r"<[^>]+>", " ", v).split()) for k, v in rows.items()}
    assert text["HX000"] == "HX000 Changed area_m2 : 6400 → 1 same 6,400.0 → 6,400.0"
    assert text["HX001"] == "HX001 Changed changed 6,400.0 → 4,900.0"
    assert text["HX003"] == "HX003 Removed area_m2 : 6403 farmland_code : HX003 — 6,400.0"
    assert text["HX-NEW"] == "HX-NEW Added area_m2 : 5 farmland_code : HX-NEW — 2,500.0"
    # as of version a, the old content; as of b, the new
    west, south = Transformer.from_crs(4547, 4326, always_xy=True).transform(X0 - 10, Y0 - 10)
    east, north = Transformer.from_crs(4547, 4326, always_xy=True).transform(X0 + 400, Y0 + 90)
    old = lclient.get(f"/api/layers/basic_farmland/features?version={a}&bbox={west},{south},{east},{north}").get_json()
    new = lclient.get(f"/api/layers/basic_farmland/features?version={b}&bbox={west},{south},{east},{north}").get_json()
    assert {f["id"] for f in old["features"] if f["id"].startswith("HX")} == {"HX000", "HX001", "HX002", "HX003"}
    assert {f["id"] for f in new["features"] if f["id"].startswith("HX")} == {"HX000", "HX001", "HX002"}
    limited = lclient.get(f"/api/layers/basic_farmland/features?version={a}&limit=2").get_json()
    assert len(limited["features"]) == 2 and limited["truncated"] is True
    # roll back to a: a new version with a's content, audited
    since = last_event_id(ldb)
    response = lclient.post("/api/layers/basic_farmland/rollback", json={"to_version": a},
                            headers={"X-CSRFToken": token})
    assert response.status_code == 201, response.get_json()
    rolled = response.get_json()
    assert rolled["version"] == b + 1 and (rolled["added"], rolled["changed"], rolled["removed"]) == (1, 2, 1)
    same = lclient.get(f"/api/layers/basic_farmland/diff?from={a}&to={b + 1}").get_json()
    assert same["counts"] == {"added": 0, "removed": 0, "changed": 0}
    with ldb.connect() as conn:
        types = conn.scalars(sa.select(Event.type).where(Event.id > since)).all()
    assert "layer_version.rolled_back" in types


def test_bad_arguments_name_what_is_wrong(lclient, web):
    as_user(lclient, web, "supervisor")
    r = lclient.get("/api/layers/basic_farmland/features?bbox=1,2,3")
    assert r.status_code == 422 and r.get_json()["error"]["where"] == "bbox"
    r = lclient.get("/api/layers/basic_farmland/features?version=999")
    assert r.status_code == 404 and "no version 999" in r.get_json()["error"]["message"]
    r = lclient.get("/api/layers/basic_farmland/diff?from=x")
    assert r.status_code == 422 and r.get_json()["error"]["where"] == "from"
    r = lclient.get("/api/layers/nosuch")
    assert r.status_code == 404 and "known layers" in r.get_json()["error"]["message"]


def test_imports_are_audited_with_their_counts(lclient, web, ldb, tmp_path):
    token = as_user(lclient, web, "land_editor")
    farmland(2, prefix="AU").to_file(tmp_path / "a.gpkg")
    since = last_event_id(ldb)
    report = upload(lclient, token, "basic_farmland", tmp_path / "a.gpkg").get_json()
    with ldb.connect() as conn:
        event = conn.execute(sa.select(Event).where(Event.id > since, Event.type == "layer_version.published")
                             ).one()
    assert event.payload["number"] == report["version"] and event.payload["source"] == "a.gpkg"
    assert event.actor_id is not None


def test_the_api_is_described_in_openapi(lclient):
    spec = lclient.get("/api/openapi.json").get_json()
    assert "/api/layers/{name}/versions" in spec["paths"]
    post = spec["paths"]["/api/layers/{name}/versions"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert "/api/layers/{name}/diff" in spec["paths"] and "/api/layers/{name}/features" in spec["paths"]


# --- pages --------------------------------------------------------------------------------

def test_catalogue_page_for_an_editor_and_read_only_for_other_staff(lclient, web):
    as_user(lclient, web, "land_editor")
    html = lclient.get("/layers").get_data(as_text=True)
    for name in ("cadastre", "zoning", "roads", "basic_farmland", "dem", "flood_depth"):
        assert f'data-layer="{name}"' in html
    assert "地籍宗地" in html and "parcel_containment" in html and "国土" in html
    assert 'href="/layers/cadastre/upload"' in html and 'href="/layers/zoning/upload"' not in html
    assert 'href="/layers"' in html  # the header's navigation
    as_user(lclient, web, "supervisor")
    html = lclient.get("/layers?lang=en").get_data(as_text=True)
    assert "Shared layer catalogue" in html and "Cadastral parcels" in html and "/upload" not in html
    page = lclient.get("/layers/cadastre").get_data(as_text=True)
    assert 'id="layers-read-only"' in page and "layers-rollback" not in page
    assert lclient.get("/layers/cadastre/upload").status_code == 403
    assert lclient.get("/layers/cadastre/rollback?to=1").status_code == 403


def test_layer_page_shows_the_version_history(lclient, web, ldb):
    as_user(lclient, web, "land_editor")
    html = lclient.get("/layers/basic_farmland?lang=en").get_data(as_text=True)
    with ldb.connect() as conn:
        numbers = conn.scalars(sa.select(LayerVersion.number).join(Layer, Layer.id == LayerVersion.layer_id)
                               .where(Layer.name == "basic_farmland")).all()
    assert len(numbers) >= 1
    for n in numbers:
        assert f'data-version="{n}"' in html
    assert "Version history" in html and "Import a new version" in html
    # each version's time is China's, as on every other page
    with ldb.connect() as conn:
        first = conn.scalar(sa.select(LayerVersion.created_at).join(Layer, Layer.id == LayerVersion.layer_id)
                            .where(Layer.name == "basic_farmland", LayerVersion.number == 1))
    china = first.astimezone(dt.timezone(dt.timedelta(hours=8)))
    row = html[html.index('data-version="1"'):]
    assert f"<td>{china:%Y-%m-%d %H:%M:%S}</td>" in row[:row.index("</tr>")]
    assert "UTC" not in html


def test_upload_page_without_javascript_reports_problems_escaped(lclient, web, ldb, tmp_path):
    as_user(lclient, web, "land_editor")
    page = lclient.get("/layers/eco_redline/upload").get_data(as_text=True)
    assert 'id="layers-progress-bar"' in page and "js/layers_upload.js" in page
    token = web.csrf_token(page)
    frame = gpd.GeoDataFrame({"redline_code": ["<script>alert(1)</script>", "ER-OK"], "name": [None, "ok"]},
                             geometry=[shapely.box(X0, Y0, X0 + 60, Y0 + 60), shapely.box(X0, Y0, X0 + 9, Y0 + 9)],
                             crs="EPSG:4547")
    frame.to_file(tmp_path / "x.gpkg")
    before, since = live(ldb, "eco_redline"), last_event_id(ldb)
    response = lclient.post("/layers/eco_redline/upload", content_type="multipart/form-data",
                            data={"csrf_token": token, "file": (io.BytesIO((tmp_path / "x.gpkg").read_bytes()),
                                                                "x.gpkg")})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-outcome="refused"' in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    table = html[html.index('class="layers-table layers-problems"'):]
    assert re.search(r"<td>&lt;script&gt;alert\(1\)&lt;/script&gt;</td><td>name</td>", table)
    assert live(ldb, "eco_redline") == before and len(refusals(ldb, "eco_redline", since)) == 1


def test_upload_page_without_javascript_publishes_and_reports(lclient, web, ldb, tmp_path):
    as_user(lclient, web, "land_editor")
    token = web.csrf_token(lclient.get("/layers/eco_redline/upload").get_data(as_text=True))
    frame = gpd.GeoDataFrame({"redline_code": ["ER-P1"], "name": ["<b>河道</b>"]},
                             geometry=[shapely.box(X0, Y0, X0 + 60, Y0 + 60)], crs="EPSG:4547")
    frame.to_file(tmp_path / "ok.gpkg")
    response = lclient.post("/layers/eco_redline/upload?lang=en", content_type="multipart/form-data",
                            data={"csrf_token": token, "file": (io.BytesIO((tmp_path / "ok.gpkg").read_bytes()),
                                                                "ok.gpkg")})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-outcome="published"' in html and "Published as version" in html
    number = int(re.search(r"Published as version (\d+)", html).group(1))
    diff = lclient.get(f"/layers/eco_redline/diff?from={number - 1}&to={number}").get_data(as_text=True)
    assert 'id="layers-diff-map"' in diff and "vendor/leaflet/leaflet.js" in diff and "js/layers_diff.js" in diff
    assert "<b>河道</b>" not in diff  # the attribute travels as JSON with < escaped
    legend = diff[diff.index('id="layers-diff-legend"'):diff.index("</section>", diff.index('id="layers-diff-legend"'))]
    assert re.search(r'data-kind="added">.*?<strong class="count">1</strong>', legend, re.DOTALL)
    assert "http://" not in diff.replace("http://localhost", "") and "https://" not in diff


def test_rollback_confirmation_page_then_rollback(lclient, web, ldb):
    as_user(lclient, web, "land_editor")
    with ldb.connect() as conn:
        current = conn.scalar(sa.select(LayerVersion.number).join(Layer, Layer.current_version_id == LayerVersion.id)
                              .where(Layer.name == "eco_redline"))
    assert current > 1
    page = lclient.get("/layers/eco_redline/rollback?to=1").get_data(as_text=True)
    assert 'id="layers-rollback-confirm"' in page and 'id="layers-rollback-counts"' in page
    token = web.csrf_token(page)
    since = last_event_id(ldb)
    response = lclient.post("/layers/eco_redline/rollback", data={"csrf_token": token, "to": "1"})
    assert response.status_code == 302
    with ldb.connect() as conn:
        now = conn.scalar(sa.select(LayerVersion.number).join(Layer, Layer.current_version_id == LayerVersion.id)
                          .where(Layer.name == "eco_redline"))
        assert conn.scalar(sa.select(sa.func.count()).select_from(Event)
                           .where(Event.id > since, Event.type == "layer_version.rolled_back")) == 1
    assert now == current + 1
    assert lclient.get(f"/api/layers/eco_redline/diff?from=1&to={now}").get_json()["counts"] == {
        "added": 0, "removed": 0, "changed": 0}
    # the history says in the reader's language what the new version is
    for lang, says in (("en", "Rolled back to version 1"), ("zh", "回退到版本 1 的内容")):
        history = lclient.get(f"/layers/eco_redline?lang={lang}").get_data(as_text=True)
        row = history[history.index(f'data-version="{now}"'):]
        assert f'<td class="layers-source">{says}</td>' in row[:row.index("</tr>")]
        assert "rollback to version" not in history
    # without the CSRF token nothing happens
    assert lclient.post("/layers/eco_redline/rollback", data={"to": "1"}).status_code == 400


def test_a_raster_layer_has_no_per_feature_diff(lclient, web):
    as_user(lclient, web, "supervisor")
    html = lclient.get("/layers/dem/diff?lang=en").get_data(as_text=True)
    assert 'id="layers-diff-raster"' in html and "replace the whole grid" in html
    assert lclient.get("/layers/nosuch").status_code == 404


def test_an_import_under_a_project_in_flight_names_the_project_to_each_reader(lclient, web, ldb, tmp_path):
    """The projects a new version touches are listed by code and name in the upload's report, the
    API's and the history; staff who may open a project get a link to its page."""
    with ldb.connect() as conn:
        pid, code, name, x, y = conn.execute(sa.text(
            "SELECT p.id, p.code, p.name, ST_X(ST_Centroid(b.geom)), ST_Y(ST_Centroid(b.geom)) FROM buildings b "
            "JOIN projects p ON p.id = b.project_id WHERE p.status = 'in_review' ORDER BY p.id LIMIT 1")).one()
    link = f'href="/workflow/projects/{pid}"'
    frame = farmland(1, prefix="FI", geometry=[shapely.box(x - 5, y - 5, x + 5, y + 5)])
    frame.to_file(tmp_path / "under.gpkg")
    # the layer editor's upload page: code and name, no link (a layer editor opens no project's page)
    as_user(lclient, web, "land_editor")
    token = web.csrf_token(lclient.get("/layers/basic_farmland/upload").get_data(as_text=True))
    response = lclient.post("/layers/basic_farmland/upload", content_type="multipart/form-data",
                            data={"csrf_token": token,
                                  "file": (io.BytesIO((tmp_path / "under.gpkg").read_bytes()), "under.gpkg")})
    assert response.status_code == 200
    report = response.get_data(as_text=True)
    report = report[report.index('class="layers-affected"'):]
    report = report[:report.index("</p>")]
    assert f'<span class="layers-project" title="{htmllib.escape(name)}">{code}</span> {htmllib.escape(name)}' in report
    assert link not in report
    # the API's report of the next version (the feature moved a metre, still on the building)
    frame.geometry = [shapely.box(x - 4, y - 5, x + 6, y + 5)]
    frame.to_file(tmp_path / "moved.gpkg")
    body = upload(lclient, token, "basic_farmland", tmp_path / "moved.gpkg").get_json()
    assert pid in body["affected_project_ids"]
    named = {p["id"]: p for p in body["affected_projects"]}
    assert named[pid] == {"id": pid, "code": code, "name": name, "name_en": named[pid]["name_en"], "url": None}
    assert [p["id"] for p in body["affected_projects"]] == body["affected_project_ids"]
    # a reviewer reading the history follows the link to the project
    as_user(lclient, web, "land_reviewer")
    history = lclient.get("/layers/basic_farmland").get_data(as_text=True)
    row = history[history.index(f'data-version="{body["version"]}"'):]
    row = row[:row.index("</tr>")]
    assert f'<a class="layers-project" {link} title="{htmllib.escape(name)}">{code}</a>' in row
    assert lclient.get(f"/workflow/projects/{pid}").status_code == 200
    # another applicant's draft is not on anyone's map: a version touching it names it by id alone
    with ldb.begin() as conn:
        status = conn.execute(sa.text("SELECT status FROM projects WHERE id = :p"), {"p": pid}).scalar()
        conn.execute(sa.text("UPDATE projects SET status = 'draft' WHERE id = :p"), {"p": pid})
    try:
        frame.geometry = [shapely.box(x - 5, y - 4, x + 5, y + 6)]
        frame.to_file(tmp_path / "draft.gpkg")
        token = as_user(lclient, web, "land_editor")
        body = upload(lclient, token, "basic_farmland", tmp_path / "draft.gpkg").get_json()
        assert {"id": pid, "code": None, "name": None, "name_en": None, "url": None} in body["affected_projects"]
        as_user(lclient, web, "land_reviewer")
        history = lclient.get("/layers/basic_farmland").get_data(as_text=True)
        row = history[history.index(f'data-version="{body["version"]}"'):]
        row = row[:row.index("</tr>")]
        assert f'<span class="layers-project" title="">#{pid}</span>' in row
        assert code not in row and htmllib.escape(name) not in row
    finally:
        with ldb.begin() as conn:
            conn.execute(sa.text("UPDATE projects SET status = :s WHERE id = :p"), {"s": status, "p": pid})
