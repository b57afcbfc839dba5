"""Feature collections for OGC API - Features (Part 1 core, Part 2 CRS): every vector layer as
of its current version, and the footprints of approved projects.

Framework-neutral: ``web.ogcapi`` turns these into HTTP. Queries are composed SQLAlchemy
expressions: a bbox becomes ``geom && envelope AND ST_Intersects(geom, envelope)`` on the GiST
index, paging is ``ORDER BY id LIMIT/OFFSET``, and geometries are transformed to the asked CRS
(with the CRS's own axis order, as OGC API Part 2 requires) only on the way out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .errors import InputError, NotFoundError
from .mapdata import PG_INT_MAX
from .models import SRID, Building, Layer, LayerFeature, LayerVersion, Project, User
from .layerversions import features_as_of

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
APPROVED_PROJECTS = "approved_projects"
APPROVED_STATES = ("approved", "completed")
COORDINATE_DECIMALS = {True: 7, False: 3}  # geographic degrees (~1 cm) / projected metres (mm)
DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000


def crs_uri(srid: int | None) -> str:
    return CRS84 if srid is None else EPSG_URI.format(srid)


def supported_crs() -> list[str]:
    """CRS84 (lon/lat, the default), EPSG:4326 (lat/lon), web mercator and the storage CRS."""
    return [CRS84, crs_uri(4326), crs_uri(3857), crs_uri(SRID)]


@lru_cache(maxsize=16)
def _is_north_first(srid: int) -> bool:
    import pyproj

    return pyproj.CRS.from_epsg(srid).axis_info[0].direction == "north"


def parse_crs(value: str | None, where: str = "crs") -> tuple[int, bool, bool]:
    """(srid, is_geographic, swap_axes) of a supported CRS URI; CRS84 when ``value`` is empty."""
    if not value or value == CRS84:
        return 4326, True, False
    for srid in (4326, 3857, SRID):
        if value == crs_uri(srid):
            return srid, srid == 4326, _is_north_first(srid)
    raise InputError(f"unsupported CRS {value!r}; use one of {', '.join(supported_crs())}", where=where)


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    title_en: str
    geometry_type: str
    extent: tuple[float, float, float, float] | None  # CRS84
    version: int | None
    properties: tuple[str, ...]


def _extent(session: Session, geom_column, condition) -> tuple[float, float, float, float] | None:
    box = sa.select(sa.func.ST_Transform(sa.func.ST_SetSRID(sa.func.geometry(sa.func.ST_Extent(geom_column)), SRID),
                                         4326).label("g")) \
        .where(condition).subquery()
    row = session.execute(sa.select(sa.func.ST_XMin(box.c.g), sa.func.ST_YMin(box.c.g), sa.func.ST_XMax(box.c.g),
                                    sa.func.ST_YMax(box.c.g))).one()
    return None if row[0] is None else tuple(round(float(v), 7) for v in row)


def list_collections(session: Session, viewer: User | None) -> list[Collection]:
    """The approved projects' footprints for everyone; every vector layer with a current version
    for a logged-in viewer."""
    out = []
    if viewer is not None:
        rows = session.execute(
            sa.select(Layer, LayerVersion).join(LayerVersion, LayerVersion.id == Layer.current_version_id)
            .where(Layer.kind == "vector").order_by(Layer.id)
        ).all()
        for layer, version in rows:
            out.append(_layer_collection(session, layer, version))
    out.append(_projects_collection(session))
    return out


def _attribute_names(session: Session, layer: Layer, version: LayerVersion) -> tuple[str, ...]:
    keys = session.scalars(
        sa.select(sa.func.jsonb_object_keys(LayerFeature.attrs)).where(features_as_of(layer.id, version.number)).distinct()
    ).all()
    return ("feature_key", *sorted(k for k in keys if k != "feature_key"))


def _layer_collection(session: Session, layer: Layer, version: LayerVersion) -> Collection:
    return Collection(layer.name, layer.title_zh, layer.title_en, layer.geometry_type or "Geometry",
                      _extent(session, LayerFeature.geom, features_as_of(layer.id, version.number)), version.number,
                      _attribute_names(session, layer, version))


def _projects_collection(session: Session) -> Collection:
    return Collection(APPROVED_PROJECTS, "已批准项目建筑轮廓", "Footprints of approved projects", "MultiPolygon",
                      _extent(session, Building.geom, _approved_condition()), None,
                      ("project_code", "project_name", "project_name_en", "applicant_org", "status", "stage",
                       "name", "use", "height_m", "floors", "gfa_m2"))


def _approved_condition():
    return Building.project_id.in_(sa.select(Project.id).where(Project.status.in_(APPROVED_STATES)))


def get_collection(session: Session, viewer: User | None, collection_id: str) -> Collection:
    if collection_id == APPROVED_PROJECTS:
        return _projects_collection(session)
    layer, version = _current_layer(session, viewer, collection_id)
    return _layer_collection(session, layer, version)


def _current_layer(session: Session, viewer: User | None, collection_id: str) -> tuple[Layer, LayerVersion]:
    row = session.execute(
        sa.select(Layer, LayerVersion).join(LayerVersion, LayerVersion.id == Layer.current_version_id)
        .where(Layer.name == collection_id, Layer.kind == "vector")
    ).first()
    if row is None or viewer is None:  # anonymous callers are not told which layers exist
        raise NotFoundError(f"no collection {collection_id!r}", where="collectionId")
    return row[0], row[1]


def parse_bbox(value: str | None, bbox_crs: str | None = None) -> tuple[tuple[float, ...], int] | None:
    """``minx,miny,maxx,maxy`` in ``bbox_crs`` (default CRS84) -> (x/y-ordered box, srid)."""
    if value in (None, ""):
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise InputError(f"bbox must be four comma-separated numbers, not {value!r}", where="bbox") from None
    if len(numbers) == 6:  # 3D box: drop the heights
        numbers = (numbers[0], numbers[1], numbers[3], numbers[4])
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise InputError(f"bbox must be four finite numbers, not {value!r}", where="bbox")
    srid, _geographic, swap = parse_crs(bbox_crs, where="bbox-crs")
    if swap:
        numbers = (numbers[1], numbers[0], numbers[3], numbers[2])
    if srid == 4326 and not (-90 <= numbers[1] <= 90 and -90 <= numbers[3] <= 90):
        raise InputError(f"bbox latitudes must lie in -90..90 ({value!r})", where="bbox")
    if numbers[1] > numbers[3]:
        raise InputError(f"bbox must run from its lower to its upper corner ({value!r})", where="bbox")
    return numbers, srid


@dataclass(frozen=True)
class Page:
    features: list[dict]
    number_matched: int
    crs: str


def _source(session: Session, viewer: User | None, collection_id: str):
    """(id column, geom column, properties expression, from-clause condition, joins)."""
    if collection_id == APPROVED_PROJECTS:
        props = sa.func.jsonb_build_object(
            "project_code", Project.code, "project_name", Project.name, "project_name_en", Project.name_en,
            "applicant_org", Project.applicant_org, "status", Project.status, "stage", Project.current_stage,
            "name", Building.name, "use", Building.use, "height_m", Building.height_m, "floors", Building.floors,
            "gfa_m2", Building.gfa_m2)
        base = sa.select(Building.id.label("id"), Building.geom.label("geom"), props.label("props")) \
            .join(Project, Project.id == Building.project_id).where(Project.status.in_(APPROVED_STATES))
        return base, Building.id, Building.geom
    layer, version = _current_layer(session, viewer, collection_id)
    props = sa.func.jsonb_build_object("feature_key", LayerFeature.feature_key).op("||")(LayerFeature.attrs)
    base = sa.select(LayerFeature.id.label("id"), LayerFeature.geom.label("geom"), props.label("props")) \
        .where(features_as_of(layer.id, version.number))
    return base, LayerFeature.id, LayerFeature.geom


def _geometry_out(geom, crs: str | None):
    srid, geographic, swap = parse_crs(crs)
    out = sa.func.ST_Transform(geom, srid) if srid != SRID else geom
    if swap:
        out = sa.func.ST_FlipCoordinates(out)
    return sa.cast(sa.func.ST_AsGeoJSON(out, COORDINATE_DECIMALS[geographic]), sa.Text)


def query_items(session: Session, viewer: User | None, collection_id: str, *, bbox: str | None = None,
                bbox_crs: str | None = None, limit: int = DEFAULT_LIMIT, offset: int = 0,
                crs: str | None = None) -> Page:
    """A page of a collection's features as GeoJSON dicts, in ``crs`` (default CRS84)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}", where="limit")
    if not 0 <= offset <= PG_INT_MAX:
        raise InputError("offset must be a whole number of at least 0", where="offset")
    parse_crs(crs)
    base, id_column, geom_column = _source(session, viewer, collection_id)
    box = parse_bbox(bbox, bbox_crs)
    if box is not None:
        numbers, srid = box
        envelope = sa.func.ST_Transform(sa.func.ST_MakeEnvelope(*numbers, srid), SRID)
        base = base.where(geom_column.op("&&")(envelope), sa.func.ST_Intersects(geom_column, envelope))
    matched = session.scalar(sa.select(sa.func.count()).select_from(base.subquery()))
    rows = session.execute(
        base.with_only_columns(id_column, _geometry_out(geom_column, crs), base.selected_columns.props)
        .order_by(id_column).limit(limit).offset(offset)
    ).all()
    features = [{"type": "Feature", "id": r[0], "geometry": json.loads(r[1]), "properties": r[2]} for r in rows]
    return Page(features, matched, crs or CRS84)


def get_item(session: Session, viewer: User | None, collection_id: str, feature_id: int,
             crs: str | None = None) -> dict:
    parse_crs(crs)
    base, id_column, geom_column = _source(session, viewer, collection_id)
    row = None
    if 0 < feature_id <= 2**63 - 1:
        row = session.execute(
            base.with_only_columns(id_column, _geometry_out(geom_column, crs), base.selected_columns.props)
            .where(id_column == feature_id)
        ).first()
    if row is None:
        raise NotFoundError(f"no feature {feature_id} in collection {collection_id!r}", where="featureId")
    return {"type": "Feature", "id": row[0], "geometry": json.loads(row[1]), "properties": row[2]}
