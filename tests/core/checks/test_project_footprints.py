"""The applicant's project: create on parcels, add buildings from GeoJSON / GeoPackage /
zipped Shapefile / DXF in any CRS or drawn on the map; bad input per building is refused with
a clear error and nothing is stored."""

from __future__ import annotations

import json
import re
import zipfile

import geopandas as gpd
import pytest
import shapely
import sqlalchemy as sa
from pyproj import Transformer

from gisapproval.config import load_settings
from gisapproval.errors import InputError, NotFoundError, PermissionDeniedError
from gisapproval.models import Building, Event, Parcel, User
from gisapproval.projects import (
    BuildingInputError,
    add_buildings_from_file,
    add_drawn_building,
    create_project,
    remove_building,
    update_building,
)

SETTINGS = load_settings()
TO_WGS84 = Transformer.from_crs("EPSG:4547", "EPSG:4326", always_xy=True)


def user(session, name):
    return session.scalar(sa.select(User).where(User.username == name))


@pytest.fixture()
def draft(session):
    applicant = user(session, "applicant1")
    parcel = session.scalar(sa.select(Parcel).where(Parcel.holder == applicant.organisation).order_by(Parcel.id))
    project = create_project(session, applicant, "测试住宅项目", [parcel.parcel_code])
    return applicant, project, parcel


def inside(parcel, session, size=20.0, dx=0.0):
    from geoalchemy2.shape import to_shape

    c = to_shape(parcel.geom).representative_point()
    return shapely.box(c.x - size / 2 + dx, c.y - size / 2, c.x + size / 2 + dx, c.y + size / 2)


def count(session, project):
    return session.scalar(sa.select(sa.func.count()).select_from(Building).where(Building.project_id == project.id))


ATTRS = {"name": "1#楼", "height_m": 30.0, "floors": 10, "gfa_m2": 3000.0, "use": "residential"}


def write(frame, path, driver=None):
    frame.to_file(path, driver=driver) if driver else frame.to_file(path)
    return path


def test_create_project_needs_known_parcels_and_an_applicant(session):
    applicant = user(session, "applicant1")
    with pytest.raises(InputError, match="unknown or retired parcel"):
        create_project(session, applicant, "x", ["NOPE-1"])
    with pytest.raises(InputError, match="at least one parcel"):
        create_project(session, applicant, "x", [])
    with pytest.raises(PermissionDeniedError):
        create_project(session, user(session, "clerk"), "x", ["NOPE-1"])


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp.zip", "dxf"])
def test_add_buildings_from_each_file_format_in_another_crs(session, tmp_path, draft, fmt):
    applicant, project, parcel = draft
    a, b = inside(parcel, session, dx=-15), inside(parcel, session, dx=15)
    if fmt == "dxf":  # no CRS and no attributes in DXF: both are given
        frame = gpd.GeoDataFrame(geometry=[a.exterior, b.exterior], crs="EPSG:4547")
        path = write(frame, tmp_path / "plan.dxf", driver="DXF")
        made = add_buildings_from_file(session, SETTINGS, applicant, project.id, path, "plan.dxf", crs="EPSG:4547",
                                       defaults=ATTRS)
    else:
        frame = gpd.GeoDataFrame([ATTRS, {**ATTRS, "name": "2#楼"}], geometry=[a, b], crs="EPSG:4547").to_crs(4326)
        if fmt == "shp.zip":
            shp = write(frame, tmp_path / "fp.shp")
            path = tmp_path / "fp.zip"
            with zipfile.ZipFile(path, "w") as z:
                for ext in ("shp", "shx", "dbf", "prj", "cpg"):
                    if (tmp_path / f"fp.{ext}").exists():
                        z.write(tmp_path / f"fp.{ext}", f"fp.{ext}")
            assert shp.exists()
        else:
            path = write(frame, tmp_path / f"fp.{fmt}")
        made = add_buildings_from_file(session, SETTINGS, applicant, project.id, path, path.name)
    assert len(made) == 2 and count(session, project) == 2
    from geoalchemy2.shape import to_shape

    assert to_shape(made[0].geom).area == pytest.approx(a.area, rel=1e-3)  # back in metres
    assert made[0].height_m == 30.0 and made[0].use == "residential"
    assert session.scalar(sa.select(Event).where(Event.type == "building.added", Event.project_id == project.id))


def test_a_multipolygon_is_one_building(session, tmp_path, draft):
    applicant, project, parcel = draft
    mp = shapely.MultiPolygon([inside(parcel, session, 10, -12), inside(parcel, session, 10, 12)])
    path = write(gpd.GeoDataFrame([ATTRS], geometry=[mp], crs="EPSG:4547"), tmp_path / "mp.geojson")
    (b,) = add_buildings_from_file(session, SETTINGS, applicant, project.id, path, "mp.geojson")
    from geoalchemy2.shape import to_shape

    assert len(to_shape(b.geom).geoms) == 2


BAD = [
    ("invalid", lambda g: shapely.Polygon([(g.bounds[0], g.bounds[1]), (g.bounds[2], g.bounds[3]),
                                           (g.bounds[2], g.bounds[1]), (g.bounds[0], g.bounds[3])]), {},
     "invalid geometry: Self-intersection"),
    ("empty", lambda g: shapely.Polygon(), {}, "(empty|no) geometry"),
    ("3d", lambda g: shapely.Polygon([(x, y, 12.0) for x, y in g.exterior.coords]), {}, "is 3D"),
    ("point", lambda g: g.centroid, {}, "geometry is a Point; a footprint must be a polygon"),
    ("line", lambda g: shapely.LineString(g.exterior.coords), {}, "geometry is a LineString"),
    ("outside", lambda g: shapely.affinity.translate(g, 100000, 0), {}, "outside the jurisdiction"),
    ("height", lambda g: g, {"height_m": 9000}, "field 'height_m'"),
    ("gfa", lambda g: g, {"gfa_m2": 5e9}, "field 'gfa_m2'"),
    ("gfa_vs_footprint", lambda g: g, {"gfa_m2": 400000}, "more than 10 floors"),
    ("floors", lambda g: g, {"floors": 2.5}, "must be a whole number"),
    ("use", lambda g: g, {"use": "spaceport"}, "is not one of"),
]


@pytest.mark.parametrize("label,make,attrs,message", BAD, ids=[b[0] for b in BAD])
def test_bad_building_input_is_refused_per_building_and_nothing_stored(session, tmp_path, draft, label, make,
                                                                       attrs, message):
    applicant, project, parcel = draft
    good = inside(parcel, session, dx=-15)
    feature = {"type": "Feature", "properties": {**ATTRS, "name": "坏楼", **attrs},
               "geometry": shapely.geometry.mapping(make(inside(parcel, session, dx=15)))
               if not make(good).is_empty else None}
    ok = {"type": "Feature", "properties": ATTRS, "geometry": shapely.geometry.mapping(good)}
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4547"}},
           "features": [ok, feature]}
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError) as info:
        add_buildings_from_file(session, SETTINGS, applicant, project.id, path, "bad.geojson")
    assert re.search(message, str(info.value)), str(info.value)
    if isinstance(info.value, BuildingInputError):
        assert any("feature #2" in str(p) for p in info.value.problems)
        assert not any("feature #1" in str(p) for p in info.value.problems)
    assert count(session, project) == 0


def test_a_file_without_crs_is_refused_unless_one_is_given(session, tmp_path, draft):
    applicant, project, parcel = draft
    g = inside(parcel, session)
    frame = gpd.GeoDataFrame(geometry=[g.exterior])
    path = write(frame, tmp_path / "nocrs.dxf", driver="DXF")
    with pytest.raises(InputError, match="no coordinate reference system"):
        add_buildings_from_file(session, SETTINGS, applicant, project.id, path, "nocrs.dxf", defaults=ATTRS)
    assert count(session, project) == 0


def test_draw_edit_and_remove_a_building(session, draft):
    applicant, project, parcel = draft
    g = inside(parcel, session)
    lonlat = shapely.transform(g, lambda xy: __import__("numpy").column_stack(TO_WGS84.transform(xy[:, 0], xy[:, 1])))
    b = add_drawn_building(session, SETTINGS, applicant, project.id, shapely.geometry.mapping(lonlat), ATTRS)
    from geoalchemy2.shape import to_shape

    assert to_shape(b.geom).area == pytest.approx(400.0, rel=1e-3)
    with pytest.raises(BuildingInputError, match="height_m"):
        update_building(session, SETTINGS, applicant, b.id, {"height_m": -3})
    update_building(session, SETTINGS, applicant, b.id, {"height_m": 33.0, "floors": 11})
    assert (b.height_m, b.floors) == (33.0, 11)
    with pytest.raises(NotFoundError):
        remove_building(session, user(session, "applicant2"), b.id)
    remove_building(session, applicant, b.id)
    assert count(session, project) == 0


def test_a_submitted_project_cannot_be_edited(session, draft):
    applicant, project, _parcel = draft
    project.status = "in_review"
    with pytest.raises(InputError, match="draft or in correction"):
        add_drawn_building(session, SETTINGS, applicant, project.id,
                           {"type": "Polygon", "coordinates": [[[113.4, 23.0], [113.4001, 23.0], [113.4001, 23.0001],
                                                                [113.4, 23.0]]]}, ATTRS)
