"""OGC API - Features: landing page, conformance, collections, items with bbox / paging / CRS,
and GDAL's OAPIF driver reading every collection from a live server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gisapproval.accounts import create_api_token
from gisapproval.models import SRID, Building, Layer, LayerFeature, LayerVersion, Project, User

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"


@pytest.fixture(scope="module")
def token(web_db):
    with Session(web_db) as s:
        user = s.scalar(sa.select(User).where(User.username == "land_editor"))
        value = create_api_token(s, user, user, "ogcapi tests")
        s.commit()
    return value


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def _live_layers(conn) -> dict[str, int]:
    """vector layer name -> number of features valid in its current version."""
    rows = conn.execute(
        sa.select(Layer.name, sa.func.count(LayerFeature.id))
        .join(LayerVersion, LayerVersion.id == Layer.current_version_id)
        .join(LayerFeature, sa.and_(LayerFeature.layer_id == Layer.id, LayerFeature.valid_from <= LayerVersion.number,
                                    sa.or_(LayerFeature.valid_to.is_(None),
                                           LayerFeature.valid_to > LayerVersion.number)))
        .where(Layer.kind == "vector").group_by(Layer.name)).all()
    return dict(rows)


def _approved_count(conn) -> int:
    return conn.scalar(sa.select(sa.func.count()).select_from(Building).join(Project)
                       .where(Project.status.in_(("approved", "completed"))))


def test_landing_page_and_conformance(client):
    landing = client.get("/ogcapi/")
    assert landing.status_code == 200
    rels = {link["rel"]: link for link in landing.get_json()["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["href"].endswith("/api/openapi.json")
    conformance = client.get("/ogcapi/conformance").get_json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conformance
    spec = client.get("/api/openapi.json").get_json()
    assert "/ogcapi/collections/{collection_id}/items" in spec["paths"]


def test_collections_are_every_vector_layer_and_the_approved_projects(client, web_db, token):
    with web_db.connect() as conn:
        layers = _live_layers(conn)
        types = dict(conn.execute(sa.select(Layer.name, Layer.geometry_type).where(Layer.kind == "vector")).all())
    body = client.get("/ogcapi/collections", headers=auth(token)).get_json()
    found = {c["id"]: c for c in body["collections"]}
    assert set(found) == set(layers) | {"approved_projects"}
    for name, c in found.items():
        assert c["itemType"] == "feature"
        assert CRS84 in c["crs"] and EPSG.format(SRID) in c["crs"]
        assert c["storageCrs"] == EPSG.format(SRID)
        assert c["geometryType"] == (types.get(name) or "MultiPolygon")
        west, south, east, north = c["extent"]["spatial"]["bbox"][0]
        assert 73 < west < east < 136 and 3 < south < north < 54
        assert any(link["rel"] == "items" for link in c["links"])
    assert found["cadastre"]["geometryType"] == "MultiPolygon"
    # anonymous callers see the approved projects only
    anonymous = {c["id"] for c in client.get("/ogcapi/collections").get_json()["collections"]}
    assert anonymous == {"approved_projects"}
    assert client.get("/ogcapi/collections/zoning/items").status_code == 404
    assert client.get("/ogcapi/collections/nosuch", headers=auth(token)).status_code == 404


def test_items_page_through_a_collection(client, web_db, token):
    with web_db.connect() as conn:
        total = _live_layers(conn)["zoning"]
    first = client.get("/ogcapi/collections/zoning/items?limit=7", headers=auth(token))
    assert first.status_code == 200 and first.mimetype == "application/geo+json"
    assert first.headers["Content-Crs"] == f"<{CRS84}>"
    page = first.get_json()
    assert page["numberMatched"] == total and page["numberReturned"] == 7
    next_link = next(link["href"] for link in page["links"] if link["rel"] == "next")
    assert "offset=7" in next_link and "limit=7" in next_link
    second = client.get("/ogcapi/collections/zoning/items?limit=7&offset=7", headers=auth(token)).get_json()
    assert not {f["id"] for f in page["features"]} & {f["id"] for f in second["features"]}
    last = client.get(f"/ogcapi/collections/zoning/items?limit=7&offset={total - 3}", headers=auth(token)).get_json()
    assert last["numberReturned"] == 3 and not any(link["rel"] == "next" for link in last["links"])
    everything = client.get("/ogcapi/collections/zoning/items?limit=10000", headers=auth(token)).get_json()
    assert len({f["id"] for f in everything["features"]}) == total
    feature = everything["features"][0]
    assert "feature_key" in feature["properties"] and len(feature["properties"]) > 1
    lon, lat = _first_position(feature["geometry"])
    assert 113 < lon < 114 and 22 < lat < 24  # CRS84: lon, lat
    one = client.get(f"/ogcapi/collections/zoning/items/{feature['id']}", headers=auth(token)).get_json()
    assert one["properties"] == feature["properties"]
    assert client.get("/ogcapi/collections/zoning/items/999999999", headers=auth(token)).status_code == 404


def _first_position(geometry):
    coords = geometry["coordinates"]
    while isinstance(coords[0], list):
        coords = coords[0]
    return coords[0], coords[1]


def test_bbox_selects_the_features_that_intersect_it(client, web_db, token):
    with web_db.connect() as conn:
        west, south, east, north = conn.execute(sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Transform(ST_Buffer("
            "ST_Centroid(ST_Collect(geom)), 400), 4326) e FROM parcels) s")).one()
        expected = set(conn.scalars(sa.text(
            "SELECT f.id FROM layer_features f JOIN layers l ON l.id = f.layer_id JOIN layer_versions v "
            "ON v.id = l.current_version_id WHERE l.name = 'cadastre' AND f.valid_from <= v.number AND "
            "(f.valid_to IS NULL OR f.valid_to > v.number) AND ST_Intersects(f.geom, "
            "ST_Transform(ST_MakeEnvelope(:w, :s, :e, :n, 4326), ST_SRID(f.geom)))"),
            {"w": west, "s": south, "e": east, "n": north}))
    assert 0 < len(expected) < 3000
    bbox = f"{west},{south},{east},{north}"
    body = client.get(f"/ogcapi/collections/cadastre/items?bbox={bbox}&limit=10000", headers=auth(token)).get_json()
    assert body["numberMatched"] == len(expected)
    assert {f["id"] for f in body["features"]} == expected
    # the same box given in EPSG:4326 (lat, lon order)
    swapped = f"{south},{west},{north},{east}"
    body = client.get(f"/ogcapi/collections/cadastre/items?bbox={swapped}&bbox-crs={EPSG.format(4326)}&limit=10000",
                      headers=auth(token)).get_json()
    assert {f["id"] for f in body["features"]} == expected


@pytest.mark.parametrize("query,where", [("bbox=1,2,3", "bbox"), ("bbox=a,b,c,d", "bbox"), ("bbox=0,10,1,5", "bbox"),
                                         ("crs=EPSG:9999", "crs"), ("bbox=1,2,3,4&bbox-crs=urn:x", "bbox-crs")])
def test_bad_parameters_are_a_400_naming_the_parameter(client, token, query, where):
    response = client.get(f"/ogcapi/collections/zoning/items?{query}", headers=auth(token))
    assert response.status_code in (400, 422)
    body = response.get_json()
    assert body["where"] == where and body["description"]


def test_items_in_other_crs_follow_the_crs_axis_order(client, token):
    url = "/ogcapi/collections/approved_projects/items?limit=1"
    lon, lat = _first_position(client.get(url).get_json()["features"][0]["geometry"])
    lat2, lon2 = _first_position(client.get(f"{url}&crs={EPSG.format(4326)}").get_json()["features"][0]["geometry"])
    assert (lat2, lon2) == pytest.approx((lat, lon), abs=1e-6)
    storage = client.get(f"{url}&crs={EPSG.format(SRID)}")
    assert storage.headers["Content-Crs"] == f"<{EPSG.format(SRID)}>"
    northing, easting = _first_position(storage.get_json()["features"][0]["geometry"])
    assert 2_000_000 < northing < 3_000_000 and 300_000 < easting < 700_000  # EPSG:4547 is northing, easting
    mx, my = _first_position(client.get(f"{url}&crs={EPSG.format(3857)}").get_json()["features"][0]["geometry"])
    assert 12_000_000 < mx < 13_000_000 and 2_000_000 < my < 3_000_000


def test_approved_projects_are_the_footprints_of_approved_projects_only(client, web_db):
    with web_db.connect() as conn:
        expected = _approved_count(conn)
    body = client.get("/ogcapi/collections/approved_projects/items?limit=10000").get_json()
    assert body["numberMatched"] == expected > 0
    assert {f["properties"]["status"] for f in body["features"]} <= {"approved", "completed"}
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in body["features"])


# --- GDAL's OAPIF driver against the live server ------------------------------------------------

def _ogrinfo(url: str, token: str, *options: str, layer: str | None = None) -> str:
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}", "GDAL_HTTP_TIMEOUT": "60",
           "CPL_DEBUG": "OFF"}
    result = subprocess.run(["ogrinfo", "-ro", *options, f"OAPIF:{url}/ogcapi",
                             *([layer] if layer else [])], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_gdal_lists_and_reads_every_collection_with_bbox_and_paging(live_server, web_db, token):
    assert shutil.which("ogrinfo"), "gdal-bin (ogrinfo) is part of the platform"
    with web_db.connect() as conn:
        counts = {**_live_layers(conn), "approved_projects": _approved_count(conn)}
        types = dict(conn.execute(sa.select(Layer.name, Layer.geometry_type).where(Layer.kind == "vector")).all())
        west, south, east, north = conn.execute(sa.text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Transform(ST_Buffer("
            "ST_Centroid(ST_Collect(geom)), 600), 4326) e FROM parcels) s")).one()
    listing = _ogrinfo(live_server.url, token)
    listed = dict(re.findall(r"^\d+: (\w+) \(title: [^)]*\) \(([^)]*)\)", listing, re.MULTILINE))
    assert set(listed) == set(counts)
    gdal_names = {"MultiPolygon": "Multi Polygon", "MultiLineString": "Multi Line String", "Point": "Point"}
    for name in counts:
        assert listed[name] == gdal_names[types.get(name) or "MultiPolygon"], name
    for name, count in counts.items():
        summary = _ogrinfo(live_server.url, token, "-so", layer=name)
        assert f"Feature Count: {count}" in summary, (name, summary)
        # read every feature, in small pages, then only those in a box
        everything = _ogrinfo(live_server.url, token, "-q", "-geom=NO", "-oo", "PAGE_SIZE=500", layer=name)
        assert everything.count("OGRFeature(") == count, name
        boxed = _ogrinfo(live_server.url, token, "-q", "-geom=NO", "-oo", "PAGE_SIZE=10", "-spat", str(west),
                         str(south), str(east), str(north), layer=name)
        assert boxed.count("OGRFeature(") <= count
    cadastre = _ogrinfo(live_server.url, token, "-q", "-geom=NO", "-oo", "PAGE_SIZE=10", "-spat", str(west),
                        str(south), str(east), str(north), layer="cadastre")
    assert 10 < cadastre.count("OGRFeature(") < counts["cadastre"]
