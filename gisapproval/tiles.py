"""Mapbox vector tiles (MVT) from PostGIS: parcels by the approval state of their project, every
vector layer as of a version, and projects' footprints.

Each tile is one SQL statement ending in ``ST_AsMVT``. Geometries come from the stored
web-mercator copy (``geom_web``, migration 0007), so nothing is reprojected per request;
rows are found through the GiST index on ``geom`` with the tile's envelope transformed once.

Zoom policy (``layers/map.toml``): from ``parcel_min_zoom`` up, every parcel is in the tile;
below it, parcels without a visible project are aggregated into square cells carrying a
count (the whole city stays readable and a tile stays small), and layer features narrower
than ``min_feature_px`` pixels are left out and the rest simplified to ``simplify_px``.

Tile layers: ``parcels`` (id = parcel_id = parcel id; parcel_code, category, status, project_code, stage,
project_count, clock: the days-left colour of an in-flight project), ``cells`` (parcels: count; projects: how many of them carry a visible
project), ``footprints`` (id = building id; project_code, category, status, stage, name,
is_overlapping), ``features`` (id = feature id; feature_key and the feature's attributes).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from .config import LAYERS_DIR, read_toml
from .errors import ConfigurationError, InputError, NotFoundError
from .mapdata import IN_FLIGHT, category_of, overlapping_building_condition, shown_project_per_parcel, visible_projects
from .models import SRID, Building, Layer, LayerFeature, LayerVersion, Parcel, User

WEB_MERCATOR_HALF = 20037508.342789244  # half the side of the EPSG:3857 square, metres (a projection constant)
TILE_PIXELS = 256  # the side of a map tile on screen, as Leaflet draws it


@dataclass(frozen=True)
class TileSettings:
    min_zoom: int
    max_zoom: int
    parcel_min_zoom: int
    cell_px: int
    extent: int
    buffer: int
    simplify_px: float
    min_feature_px: float
    max_tile_kb: int


@lru_cache(maxsize=4)
def load_tile_settings(path: Path | None = None) -> TileSettings:
    path = Path(path or LAYERS_DIR / "map.toml")
    data = read_toml(path, "map configuration").get("tiles")
    if not isinstance(data, dict):
        raise ConfigurationError("needs a [tiles] table", where=str(path))
    try:
        settings = TileSettings(**{name: type_(data[name]) for name, type_ in (
            ("min_zoom", int), ("max_zoom", int), ("parcel_min_zoom", int), ("cell_px", int), ("extent", int),
            ("buffer", int), ("simplify_px", float), ("min_feature_px", float), ("max_tile_kb", int))})
    except KeyError as exc:
        raise ConfigurationError(f"[tiles] lacks {exc.args[0]}", where=str(path)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"[tiles] has a value of the wrong type ({exc})", where=str(path)) from None
    if not 0 <= settings.min_zoom <= settings.parcel_min_zoom <= settings.max_zoom <= 24:
        raise ConfigurationError("need 0 <= min_zoom <= parcel_min_zoom <= max_zoom <= 24", where=str(path))
    return settings


@dataclass(frozen=True)
class TileAddress:
    z: int
    x: int
    y: int

    @property
    def width_m(self) -> float:
        return 2 * WEB_MERCATOR_HALF / (1 << self.z)

    @property
    def pixel_m(self) -> float:
        return self.width_m / TILE_PIXELS

    def bounds_3857(self) -> tuple[float, float, float, float]:
        w = self.width_m
        minx = -WEB_MERCATOR_HALF + self.x * w
        maxy = WEB_MERCATOR_HALF - self.y * w
        return minx, maxy - w, minx + w, maxy

    def bounds_4326(self) -> tuple[float, float, float, float]:
        minx, miny, maxx, maxy = self.bounds_3857()

        def lon(mx):
            return math.degrees(mx / 6378137.0)

        def lat(my):
            return math.degrees(2 * math.atan(math.exp(my / 6378137.0)) - math.pi / 2)

        return lon(minx), lat(miny), lon(maxx), lat(maxy)


def tile_address(z: int, x: int, y: int, settings: TileSettings | None = None) -> TileAddress:
    """Validate a tile address against the zooms served; InputError names what is wrong."""
    settings = settings or load_tile_settings()
    if not settings.min_zoom <= z <= settings.max_zoom:
        raise InputError(f"zoom {z} is not served (tiles exist from {settings.min_zoom} to {settings.max_zoom})",
                         where="z")
    n = 1 << z
    for name, value in (("x", x), ("y", y)):
        if not 0 <= value < n:
            raise InputError(f"{name}={value} is outside zoom {z} (0..{n - 1})", where=name)
    return TileAddress(z, x, y)


class _Tile:
    """The envelope expressions of one tile (bound parameters, not formatted SQL)."""

    def __init__(self, address: TileAddress, settings: TileSettings):
        self.address, self.settings = address, settings
        self.envelope = sa.func.ST_TileEnvelope(address.z, address.x, address.y)
        margin = address.width_m * settings.buffer / settings.extent
        # in storage CRS, with the clip buffer: finds rows through the GiST index on geom
        self.search = sa.func.ST_Expand(sa.func.ST_Transform(self.envelope, SRID), margin)

    def geom(self, web_geom: sa.ColumnElement) -> sa.ColumnElement:
        s = self.settings
        return sa.func.ST_AsMVTGeom(web_geom, self.envelope, s.extent, s.buffer, True)

    @property
    def is_aggregated(self) -> bool:
        return self.address.z < self.settings.parcel_min_zoom


def _mvt(rows: sa.Select, name: str, settings: TileSettings, id_column: str | None = "id") -> sa.ScalarSelect:
    """``ST_AsMVT`` over ``rows`` (which has a ``geom`` column) as MVT layer ``name``."""
    sub = rows.subquery(name)
    args = [sa.literal_column(name), name, settings.extent, "geom"] + ([id_column] if id_column else [])
    return sa.select(sa.func.coalesce(sa.func.ST_AsMVT(*args), sa.literal(b"", sa.LargeBinary))) \
        .select_from(sub).where(sub.c.geom.is_not(None)).scalar_subquery()


def _concat(*parts: sa.ScalarSelect) -> sa.ColumnElement:
    out = parts[0]
    for part in parts[1:]:
        out = out.op("||")(part)
    return out


def _web(column) -> sa.ColumnElement:
    return sa.func.ST_GeomFromEWKB(column)


def _clock(project_id: sa.ColumnElement, clocks: Mapping[int, str] | None) -> sa.ColumnElement:
    """The days-left colour of a project, looked up in ``clocks`` (passed as one JSON parameter)."""
    if not clocks:
        return sa.null()
    table = sa.bindparam("clocks", {str(k): v for k, v in clocks.items()}, type_=JSONB)
    return table.op("->>")(sa.cast(project_id, sa.Text))


def parcels_tile_query(viewer: User | None, address: TileAddress, settings: TileSettings | None = None,
                       clocks: Mapping[int, str] | None = None) -> sa.Select:
    """The statement that returns the parcels tile (one bytea) for ``viewer``. ``clocks``: the
    days-left colour of in-flight projects (``mapdata.project_clock_colours``), as attribute ``clock``."""
    settings = settings or load_tile_settings()
    tile = _Tile(address, settings)
    shown = shown_project_per_parcel(viewer)
    live = sa.and_(Parcel.is_retired.is_(False), Parcel.geom.op("&&")(tile.search))
    columns = [
        tile.geom(_web(Parcel.geom_web)).label("geom"), Parcel.id.label("id"), Parcel.id.label("parcel_id"),
        Parcel.parcel_code,
        sa.func.coalesce(shown.c.category, "none").label("category"), shown.c.status,
        shown.c.code.label("project_code"), shown.c.current_stage.label("stage"), shown.c.project_count,
        _clock(shown.c.project_id, clocks).label("clock"),
    ]
    if not tile.is_aggregated:
        parcels = sa.select(*columns).outerjoin(shown, shown.c.parcel_id == Parcel.id).where(live)
        return sa.select(_mvt(parcels, "parcels", settings))
    project_parcels = sa.select(*columns).join(shown, shown.c.parcel_id == Parcel.id).where(live)
    cell = address.pixel_m * settings.cell_px
    centre = sa.func.ST_SnapToGrid(_web(Parcel.centre_web), cell).label("centre")
    snapped = sa.select(centre, shown.c.parcel_id.label("shown")) \
        .select_from(Parcel).outerjoin(shown, shown.c.parcel_id == Parcel.id).where(live).subquery("snapped")
    cells = sa.select(
        tile.geom(sa.func.ST_Expand(snapped.c.centre, cell / 2)).label("geom"),
        sa.func.count().label("parcels"), sa.func.count(snapped.c.shown).label("projects"),
    ).group_by(snapped.c.centre)
    return sa.select(_concat(_mvt(cells, "cells", settings, id_column=None),
                             _mvt(project_parcels, "parcels", settings)))


def footprints_tile_query(viewer: User | None, address: TileAddress, settings: TileSettings | None = None) -> sa.Select:
    """The statement that returns the tile of the footprints of the projects ``viewer`` may see."""
    settings = settings or load_tile_settings()
    tile = _Tile(address, settings)
    visible = visible_projects(viewer).subquery("visible_projects")
    in_flight = visible.c.status.in_(IN_FLIGHT)
    rows = sa.select(
        tile.geom(_web(Building.geom_web)).label("geom"), Building.id.label("id"), Building.name,
        visible.c.code.label("project_code"), visible.c.status, category_of(visible.c.status).label("category"),
        visible.c.current_stage.label("stage"),
        sa.and_(in_flight, overlapping_building_condition()).label("is_overlapping"),
    ).join(visible, visible.c.id == Building.project_id).where(Building.geom.op("&&")(tile.search))
    return sa.select(_mvt(rows, "footprints", settings))


def resolve_layer_version(session: Session, layer_name: str, version: int | None) -> tuple[Layer, LayerVersion]:
    """A vector layer and one of its versions (default: its current version)."""
    layer = session.scalar(sa.select(Layer).where(Layer.name == layer_name))
    if layer is None:
        raise NotFoundError(f"no layer named {layer_name!r}", where="layer")
    if layer.kind != "vector":
        raise InputError(f"layer {layer_name!r} is a raster; tiles and features exist for vector layers only",
                         where="layer")
    query = sa.select(LayerVersion).where(LayerVersion.layer_id == layer.id)
    if version is None:
        if layer.current_version_id is None:
            raise NotFoundError(f"layer {layer_name!r} has no published version yet", where="layer")
        query = query.where(LayerVersion.id == layer.current_version_id)
    else:
        query = query.where(LayerVersion.number == version, LayerVersion.state == "live")
    found = session.scalar(query)
    if found is None:
        raise NotFoundError(f"layer {layer_name!r} has no live version {version}", where="version")
    return layer, found


def features_as_of(layer: Layer, version: LayerVersion) -> sa.ColumnElement:
    """The features of ``layer`` valid in ``version`` (a composable condition)."""
    f = LayerFeature
    return sa.and_(f.layer_id == layer.id, f.valid_from <= version.number,
                   sa.or_(f.valid_to.is_(None), f.valid_to > version.number))


def layer_tile_query(layer: Layer, version: LayerVersion, address: TileAddress,
                     settings: TileSettings | None = None) -> sa.Select:
    """The statement that returns the tile of ``layer`` as of ``version``."""
    settings = settings or load_tile_settings()
    tile = _Tile(address, settings)
    f = LayerFeature
    geom = _web(f.geom_web)
    condition = sa.and_(features_as_of(layer, version), f.geom.op("&&")(tile.search))
    if tile.is_aggregated:
        size = address.pixel_m * settings.min_feature_px
        large_enough = sa.or_(
            sa.func.ST_Dimension(f.geom) == 0,
            (sa.func.ST_XMax(f.geom) - sa.func.ST_XMin(f.geom)) + (sa.func.ST_YMax(f.geom) - sa.func.ST_YMin(f.geom))
            >= size,
        )
        condition = sa.and_(condition, large_enough)
        geom = sa.func.ST_SimplifyPreserveTopology(geom, address.pixel_m * settings.simplify_px)
    rows = sa.select(tile.geom(geom).label("geom"), f.id.label("id"), f.feature_key, f.attrs).where(condition)
    return sa.select(_mvt(rows, "features", settings))


def render(session: Session, query: sa.Select) -> bytes:
    return bytes(session.execute(query).scalar_one() or b"")


def parcels_tile(session: Session, viewer: User | None, z: int, x: int, y: int,
                 clocks: Mapping[int, str] | None = None) -> bytes:
    return render(session, parcels_tile_query(viewer, tile_address(z, x, y), clocks=clocks))


def footprints_tile(session: Session, viewer: User | None, z: int, x: int, y: int) -> bytes:
    return render(session, footprints_tile_query(viewer, tile_address(z, x, y)))


def layer_tile(session: Session, layer_name: str, version: int | None, z: int, x: int, y: int) -> bytes:
    address = tile_address(z, x, y)
    layer, found = resolve_layer_version(session, layer_name, version)
    return render(session, layer_tile_query(layer, found, address))


# One round trip, index-only work: the last audit event that can change the map (events of
# logins, tokens and downloads are left out: they change nothing on it), every layer's
# current version, and the number and last id of projects. A constant statement with no
# parameters: nothing from a request reaches its text.
MAP_STATE_SQL = sa.text("""
SELECT (SELECT id FROM events
         WHERE type NOT LIKE 'user.%' AND type NOT LIKE 'api_token.%' AND type NOT LIKE '%.exported'
         ORDER BY id DESC LIMIT 1),
       (SELECT string_agg(coalesce(current_version_id, 0)::text, ',' ORDER BY id) FROM layers),
       (SELECT count(*) || ':' || coalesce(max(id), 0) FROM projects)
""")


def map_state(session: Session) -> str:
    """A fingerprint of everything a tile depends on that can change (see MAP_STATE_SQL): every
    stage, status, footprint and layer change writes an audit event."""
    return "|".join(str(v) for v in session.execute(MAP_STATE_SQL).one())


def tile_etag(state: str, scope: str, *parts: object) -> str:
    """A strong ETag for a tile: changes whenever ``state`` (``map_state``), the viewer's scope or
    the tile settings change."""
    digest = hashlib.sha256("|".join(map(str, (state, scope, load_tile_settings(), *parts))).encode())
    return digest.hexdigest()[:32]
