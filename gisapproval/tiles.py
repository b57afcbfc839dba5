"""Mapbox vector tiles (MVT) from PostGIS: parcels by the approval state of their project, every
vector layer as of a version, and projects' footprints.

Each tile is one SQL statement ending in ``ST_AsMVT``. Geometries come from the stored
web-mercator copy (``geom_web``, migration 0007) and parcels are counted by their stored
web-mercator centre (``centre_web``, migration 0010), so nothing is reprojected per request;
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

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.orm import Session

from .accounts import password_fingerprint_sql
from .config import LAYERS_DIR, read_toml
from .db import sha256_prefix, sha256_prefix_sql
from .errors import ConfigurationError, InputError, NotFoundError
from .layerversions import features_as_of
from .mapdata import (
    IN_FLIGHT,
    PORTFOLIO_ROLES,
    Scope,
    category_of,
    overlapping_building_condition,
    shown_project_per_parcel,
    visible_projects,
)
from .models import (
    SRID,
    Building,
    Layer,
    LayerFeature,
    LayerVersion,
    MapRevision,
    Parcel,
    Project,
    User,
    UserRole,
)

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
    """The envelope expressions of one tile. The tile's z, x, y and pixel size are named bind
    parameters (``tile_params``), so that one statement, prepared once (``PreparedTile``), serves
    every tile of its shape."""

    def __init__(self, address: TileAddress, settings: TileSettings):
        self.address, self.settings = address, settings
        z, x, y = (sa.bindparam(name, getattr(address, name), type_=sa.Integer) for name in ("z", "x", "y"))
        self.envelope = sa.func.ST_TileEnvelope(z, x, y)
        self.pixel_m = sa.bindparam("pixel_m", address.pixel_m, type_=sa.Float)
        margin = self.pixel_m * (TILE_PIXELS * settings.buffer / settings.extent)
        # in storage CRS, with the clip buffer: finds rows through the GiST index on geom
        self.search = sa.func.ST_Expand(sa.func.ST_Transform(self.envelope, SRID), margin)

    def geom(self, web_geom: sa.ColumnElement) -> sa.ColumnElement:
        s = self.settings
        return sa.func.ST_AsMVTGeom(web_geom, self.envelope, s.extent, s.buffer, sa.true())

    @property
    def is_aggregated(self) -> bool:
        return is_aggregated(self.address, self.settings)


def is_aggregated(address: TileAddress, settings: TileSettings) -> bool:
    """Below ``parcel_min_zoom`` parcels are counted in cells and small layer features left out."""
    return address.z < settings.parcel_min_zoom


def tile_params(address: TileAddress) -> dict[str, object]:
    """The bind parameters of ``_Tile`` for ``address``."""
    return {"z": address.z, "x": address.x, "y": address.y, "pixel_m": address.pixel_m}


def _mvt(rows: sa.Select, name: str, settings: TileSettings, id_column: str | None = "id") -> sa.ScalarSelect:
    """``ST_AsMVT`` over ``rows`` (which has a ``geom`` column) as MVT layer ``name``."""
    sub = rows.offset(0).subquery(name)  # OFFSET 0: geom is computed once per row, then filtered
    args = [sa.literal_column(name), name, settings.extent, "geom"] + ([id_column] if id_column else [])
    return sa.select(sa.func.coalesce(sa.func.ST_AsMVT(*args), sa.literal_column("''::bytea"))) \
        .select_from(sub).where(sub.c.geom.is_not(None)).scalar_subquery()


def _concat(*parts: sa.ScalarSelect) -> sa.ColumnElement:
    out = parts[0]
    for part in parts[1:]:
        out = out.op("||")(part)
    return out


def _web(column) -> sa.ColumnElement:
    return sa.func.ST_GeomFromEWKB(column)


def clocks_json(clocks: Mapping[int, str] | None) -> str:
    """The days-left colours as the ``clocks`` parameter of a parcels tile (one JSON object)."""
    return json.dumps({str(k): v for k, v in (clocks or {}).items()}, separators=(",", ":"))


def _clock(project_id: sa.ColumnElement, clocks: Mapping[int, str] | None) -> sa.ColumnElement:
    """The days-left colour of a project, looked up in ``clocks`` (passed as one JSON parameter)."""
    table = sa.cast(sa.bindparam("clocks", clocks_json(clocks), type_=sa.Text), JSONB)
    return table.op("->>")(sa.cast(project_id, sa.Text))


def parcels_tile(viewer: User | Scope | None, address: TileAddress, settings: TileSettings | None = None,
                 clocks: Mapping[int, str] | None = None) -> sa.ColumnElement:
    """The parcels tile (one bytea) for ``viewer``, as an expression. ``clocks``: the days-left
    colour of in-flight projects (``mapdata.project_clock_colours``), as attribute ``clock``."""
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
        return _mvt(parcels, "parcels", settings)
    project_parcels = sa.select(*columns).join(shown, shown.c.parcel_id == Parcel.id).where(live)
    cell = tile.pixel_m * settings.cell_px
    centre = sa.func.ST_SnapToGrid(Parcel.centre_web, cell).label("centre")
    snapped = sa.select(centre, shown.c.parcel_id.label("shown")) \
        .select_from(Parcel).outerjoin(shown, shown.c.parcel_id == Parcel.id).where(live).subquery("snapped")
    cells = sa.select(
        tile.geom(sa.func.ST_Expand(snapped.c.centre, cell / 2)).label("geom"),
        sa.func.count().label("parcels"), sa.func.count(snapped.c.shown).label("projects"),
    ).group_by(snapped.c.centre)
    return _concat(_mvt(cells, "cells", settings, id_column=None), _mvt(project_parcels, "parcels", settings))


def footprints_tile(viewer: User | Scope | None, address: TileAddress,
                    settings: TileSettings | None = None) -> sa.ColumnElement:
    """The tile of the footprints of the projects ``viewer`` may see, as an expression."""
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
    return _mvt(rows, "footprints", settings)


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


def layer_tile(layer: Layer | int, version: LayerVersion | int, address: TileAddress,
               settings: TileSettings | None = None) -> sa.ColumnElement:
    """The tile of ``layer`` as of ``version`` (objects, or their id and number), as an expression."""
    settings = settings or load_tile_settings()
    tile = _Tile(address, settings)
    f = LayerFeature
    layer_id = sa.bindparam("layer_id", getattr(layer, "id", layer), type_=sa.Integer)
    number = sa.bindparam("version_number", getattr(version, "number", version), type_=sa.Integer)
    geom = _web(f.geom_web)
    condition = sa.and_(features_as_of(layer_id, number), f.geom.op("&&")(tile.search))
    if tile.is_aggregated:
        large_enough = sa.or_(
            sa.func.ST_Dimension(f.geom) == 0,
            (sa.func.ST_XMax(f.geom) - sa.func.ST_XMin(f.geom)) + (sa.func.ST_YMax(f.geom) - sa.func.ST_YMin(f.geom))
            >= tile.pixel_m * settings.min_feature_px,
        )
        condition = sa.and_(condition, large_enough)
        geom = sa.func.ST_SimplifyPreserveTopology(geom, tile.pixel_m * settings.simplify_px)
    rows = sa.select(tile.geom(geom).label("geom"), f.id.label("id"), f.feature_key, f.attrs).where(condition)
    return _mvt(rows, "features", settings)


def _map_state() -> sa.ColumnElement:
    """A fingerprint of everything a tile depends on that can change, as one text value: the map
    revision (bumped when a transaction that wrote a map-changing audit event commits: every
    stage, status, footprint and layer change writes one; migration 0008), every layer's current
    version, and the last project id (projects are never deleted). Index-only work."""
    revision = sa.select(MapRevision.revision).where(MapRevision.id == 1)
    versions = sa.select(sa.func.string_agg(sa.cast(sa.func.coalesce(Layer.current_version_id, 0), sa.Text),
                                            aggregate_order_by(sa.literal(","), Layer.id)))
    last_project = sa.select(sa.func.coalesce(sa.func.max(Project.id), 0))
    text = [sa.func.coalesce(sa.cast(revision.scalar_subquery(), sa.Text), "-"),
            sa.func.coalesce(versions.scalar_subquery(), ""), sa.cast(last_project.scalar_subquery(), sa.Text)]
    return sa.func.concat_ws("|", *text)


def map_state(session: Session | sa.Connection) -> str:
    """The map's state (``_map_state``) now."""
    return session.execute(sa.select(_map_state())).scalar_one()


def etag_suffix(scope: str, *parts: object) -> str:
    """What, besides the map's state, a tile's ETag depends on: the viewer's scope, the tile
    settings, and ``parts`` (kind, address, version, day)."""
    return "|".join(map(str, (scope, load_tile_settings(), *parts)))


ETAG_CHARS = 32


def tile_etag(state: str, scope: str, *parts: object) -> str:
    """A strong ETag for a tile: changes whenever ``state`` (``map_state``), the viewer's scope or
    the tile settings change. ``PreparedTile`` computes the same value in SQL."""
    return sha256_prefix(f"{state}|{etag_suffix(scope, *parts)}", ETAG_CHARS)


def _etag_sql(state: sa.ColumnElement) -> sa.ColumnElement:
    """``tile_etag`` in SQL, with the suffix as the parameter ``etag_suffix``."""
    return sha256_prefix_sql(sa.func.concat_ws("|", state, sa.bindparam("etag_suffix", "", type_=sa.Text)), ETAG_CHARS)


@dataclass(frozen=True)
class TileAnswer:
    state: str
    etag: str
    viewer_ok: bool
    data: bytes | None  # None when not built: the ETag matched or the viewer was refused


class PreparedTile:
    """One statement for a tile request, compiled once per shape of tile and run with a tile's
    parameters: it reads the map's state, computes the ETag, checks the viewer (when asked), and
    only then builds the tile: when the client's ETag still matches or the viewer no longer holds
    what the session says, the tile is not built (PostgreSQL evaluates the uncorrelated subquery
    of a CASE branch only when the branch is taken).

    Parameters: those of the tile (``tile_params``, ``viewer_id``, ``clocks``, ``layer_id``,
    ``version_number``), ``etag_suffix``, ``if_none_match`` (a list), and with ``check_viewer``
    ``fingerprint`` and ``sees_all``."""

    def __init__(self, tile: sa.ColumnElement, dialect: sa.Dialect, *, check_viewer: bool):
        # OFFSET 0 keeps each subquery whole: inlined, the state and the viewer check would be
        # computed once for every reference to them
        state = sa.select(_map_state().label("state")).offset(0).subquery("map_state")
        viewer_ok = viewer_still_valid() if check_viewer else sa.true()
        head = sa.select(state.c.state, _etag_sql(state.c.state).label("etag"),
                         viewer_ok.label("viewer_ok")).offset(0).subquery("head")
        conditions = [head.c.viewer_ok,
                      head.c.etag != sa.all_(sa.cast(_plain("if_none_match", []), ARRAY(sa.Text)))]
        statement = sa.select(head.c.state, head.c.etag, head.c.viewer_ok,
                              sa.case((sa.and_(*conditions), tile), else_=sa.null()))
        # PostgreSQL's own $n placeholders, run through psycopg's RawCursor: the driver sends the
        # text as it is instead of parsing a statement this long on every request
        numeric = type(dialect)(paramstyle="numeric_dollar")
        compiled = statement.compile(dialect=numeric, compile_kwargs={"render_postcompile": True})
        if compiled._bind_processors:  # every parameter here is a plain value the driver adapts
            raise TypeError(f"tile statement has parameters needing conversion: {sorted(compiled._bind_processors)}")
        self.sql, self.constants, self.order = compiled.string, dict(compiled.params), tuple(compiled.positiontup)

    def run(self, conn: sa.Connection, **params) -> TileAnswer:
        unknown = set(params) - set(self.constants)
        if unknown:
            raise TypeError(f"not parameters of this tile statement: {sorted(unknown)}")
        values = {**self.constants, **params}
        values = [values[name] for name in self.order]
        dbapi = conn.connection.dbapi_connection
        try:
            with psycopg.RawCursor(dbapi) as cursor:
                cursor.execute(self.sql, values)
                state, etag, ok, data = cursor.fetchone()
        except psycopg.Error as exc:
            gone = conn.dialect.is_disconnect(exc, dbapi, None)
            if gone:
                conn.invalidate()
            raise sa.exc.DBAPIError.instance(self.sql, values, exc, psycopg.Error,
                                             connection_invalidated=gone) from exc
        return TileAnswer(state, etag, ok, None if data is None else bytes(data))


def _plain(name: str, value: object) -> sa.BindParameter:
    """A parameter passed to the driver as it is (no SQLAlchemy conversion): psycopg adapts bools and lists."""
    return sa.bindparam(name, value, type_=sa.types.NullType())


VIEWER_ID = sa.bindparam("viewer_id", 0, type_=sa.Integer)  # the viewer of a prepared tile statement


def viewer_still_valid() -> sa.ColumnElement:
    """True while the user ``viewer_id`` is active, has the password of ``fingerprint``, and still
    does (``sees_all`` true) or does not see every project: what a session cookie claimed at login."""
    has_portfolio = sa.exists().where(UserRole.user_id == User.id, UserRole.role.in_(sorted(PORTFOLIO_ROLES)))
    return sa.exists().where(
        User.id == VIEWER_ID, User.is_active,
        password_fingerprint_sql(User.password_hash) == sa.bindparam("fingerprint", "", type_=sa.Text),
        has_portfolio == sa.cast(_plain("sees_all", False), sa.Boolean))


# how each kind of tile is built for a prepared statement (viewer, layer and version are parameters)
_BUILDERS = {
    "parcels": lambda scope, address: parcels_tile(scope, address),
    "footprints": lambda scope, address: footprints_tile(scope, address),
    "layer": lambda scope, address: layer_tile(0, 0, address),
}
_prepared: dict[tuple, PreparedTile] = {}
_prepared_lock = threading.Lock()


def prepared(kind: str, address: TileAddress, scope_kind: str, dialect: sa.Dialect, *,
             check_viewer: bool) -> PreparedTile:
    """The ``PreparedTile`` for a ``kind`` tile ('parcels', 'footprints', 'layer') at the zoom of
    ``address``, for viewers of ``scope_kind`` (``Scope.kind``): compiled on first use, then kept."""
    key = (dialect.name, dialect.driver, kind, is_aggregated(address, load_tile_settings()), scope_kind,
           check_viewer)
    with _prepared_lock:
        found = _prepared.get(key)
    if found is None:
        tile = _BUILDERS[kind](Scope(scope_kind, VIEWER_ID), address)
        found = PreparedTile(tile, dialect, check_viewer=check_viewer)
        with _prepared_lock:
            _prepared[key] = found
    return found
