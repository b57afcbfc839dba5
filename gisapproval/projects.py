"""The applicant's project: create it on parcels, add buildings (an uploaded footprint file or
a drawn geometry), edit and remove them.

An uploaded footprint is read once (pyogrio), normalised once (CRS, 2D, validity, multi-polygon)
and stored once. Every building is validated — geometry, CRS, place, height, floors, GFA, use —
and ALL problems are reported per building (file, feature, field); if there is any, nothing
is stored.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyogrio
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape, to_shape
from pyproj import CRS
from sqlalchemy.orm import Session

from .audit import record_event
from .config import LAYERS_DIR, Settings, read_toml
from .crs import crs_transformer, reproject
from .errors import InputError, NotFoundError, PermissionDeniedError
from .layerimport import (
    ImportLimits,
    Problem,
    check_file,
    extract_shapefile,
    resolve_crs,
)
from .layerstore import to_multi
from .models import SRID, Building, Parcel, Project, User

EDITABLE = ("draft", "in_correction")
ATTRIBUTES = ("name", "height_m", "floors", "gfa_m2", "use")


class BuildingInputError(InputError):
    """Footprints were refused; ``problems`` lists every problem, per building and field."""

    def __init__(self, source: str, problems: list[Problem]):
        self.problems = problems
        head = "; ".join(str(p) for p in problems[:5])
        tail = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"buildings refused, nothing stored: {head}{tail}", where=source)


@dataclass(frozen=True)
class FootprintLimits:
    uses: tuple[str, ...]
    max_height_m: float
    max_floors: int
    min_storey_height_m: float
    max_storey_height_m: float
    max_gfa_m2: float
    max_gfa_per_footprint_floor: float
    min_footprint_m2: float
    max_footprint_m2: float
    max_buildings_per_upload: int


@lru_cache(maxsize=1)
def footprint_limits() -> FootprintLimits:
    data = read_toml(LAYERS_DIR / "rules" / "_footprints.toml", "footprint limits")
    data["uses"] = tuple(data["uses"])
    return FootprintLimits(**data)


# ----------------------------------------------------------------------------- projects

def _applicant(actor: User | None) -> User:
    if actor is None or "applicant" not in actor.role_codes:
        raise PermissionDeniedError("only an applicant (建设单位) may create and edit projects")
    return actor


def get_own_project(session: Session, actor: User, project_id: int, *, editable: bool = False) -> Project:
    project = session.get(Project, project_id)
    if project is None or project.applicant_id != getattr(actor, "id", None):
        raise NotFoundError(f"no project {project_id} of yours")
    if editable and project.status not in EDITABLE:
        raise InputError(f"project {project.code} is {project.status}; buildings can be changed only while it is a "
                         "draft or in correction", where=project.code)
    return project


def create_project(session: Session, actor: User, name: str, parcel_codes: list[str], name_en: str | None = None
                   ) -> Project:
    """A draft project on one or more of the cadastre's live parcels."""
    _applicant(actor)
    name = (name or "").strip()
    if not name or len(name) > 300:
        raise InputError("a project needs a name of 1 to 300 characters", where="name")
    codes = list(dict.fromkeys(c.strip() for c in parcel_codes or [] if c and c.strip()))
    if not codes:
        raise InputError("choose at least one parcel (by its code or on the map)", where="parcel_codes")
    parcels = {p.parcel_code: p for p in session.scalars(
        sa.select(Parcel).where(Parcel.parcel_code.in_(codes), Parcel.is_retired.is_(False)))}
    missing = [c for c in codes if c not in parcels]
    if missing:
        raise InputError(f"unknown or retired parcel(s): {', '.join(missing[:20])}", where="parcel_codes")
    project = Project(code=f"XM-{secrets.token_hex(4).upper()}", name=name, name_en=(name_en or "").strip() or None,
                      applicant=actor, applicant_org=actor.organisation or actor.display_name, status="draft",
                      parcels=[parcels[c] for c in codes])
    session.add(project)
    session.flush()
    record_event(session, actor, "project.created", project, {"name": name, "parcels": codes})
    return project


# ----------------------------------------------------------------------------- validation

def _number(value, field: str, label: str, problems: list[Problem], integer: bool = False):
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append(Problem(f"{label}, field {field!r}", "is missing"))
        return None
    if isinstance(value, bool):
        problems.append(Problem(f"{label}, field {field!r}", f"must be a number, got {value!r}"))
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(Problem(f"{label}, field {field!r}", f"must be a number, got {value!r}"))
        return None
    if not np.isfinite(number):
        problems.append(Problem(f"{label}, field {field!r}", f"must be a finite number, got {value!r}"))
        return None
    if integer:
        if number != int(number):
            problems.append(Problem(f"{label}, field {field!r}", f"must be a whole number, got {value!r}"))
            return None
        return int(number)
    return number


def validate_building(attrs: dict, geom, label: str, settings: Settings) -> tuple[dict, list[Problem]]:
    """The building's clean values, and its problems (empty when it is fine). ``geom`` is a
    shapely geometry already in the storage SRID (or None)."""
    lim = footprint_limits()
    problems: list[Problem] = []
    where = label
    if geom is None:
        problems.append(Problem(where, "no geometry"))
    elif geom.is_empty:
        problems.append(Problem(where, "empty geometry"))
    elif geom.geom_type not in ("Polygon", "MultiPolygon"):
        problems.append(Problem(where, f"geometry is a {geom.geom_type}; a footprint must be a polygon"))
    elif shapely.has_z(geom) and np.any(shapely.get_coordinates(geom, include_z=True)[:, 2] != 0):
        problems.append(Problem(where, "geometry is 3D (it has heights in z); give a flat 2D footprint and the "
                                       "height in the height_m field"))
    else:
        geom = shapely.force_2d(geom)
        if not geom.is_valid:
            problems.append(Problem(where, f"invalid geometry: {shapely.is_valid_reason(geom)}"))
        else:
            x0, y0, x1, y1 = geom.bounds
            e = settings.jurisdiction.extent
            if x0 < e[0] or y0 < e[1] or x1 > e[2] or y1 > e[3]:
                problems.append(Problem(where, f"lies outside the jurisdiction (bounds {x0:.1f}, {y0:.1f}, {x1:.1f}, "
                                               f"{y1:.1f} in EPSG:{settings.jurisdiction.srid})"))
            area = geom.area
            if area < lim.min_footprint_m2 or area > lim.max_footprint_m2:
                problems.append(Problem(where, f"footprint area {area:.1f} m² is outside {lim.min_footprint_m2:g}–"
                                               f"{lim.max_footprint_m2:g} m²; is the CRS right?"))
    name = str(attrs.get("name") or "").strip()
    if len(name) > 200:
        problems.append(Problem(f"{label}, field 'name'", "is longer than 200 characters"))
    height = _number(attrs.get("height_m"), "height_m", label, problems)
    floors = _number(attrs.get("floors"), "floors", label, problems, integer=True)
    gfa = _number(attrs.get("gfa_m2"), "gfa_m2", label, problems)
    use = str(attrs.get("use") or "").strip()
    if use not in lim.uses:
        problems.append(Problem(f"{label}, field 'use'", f"{use!r} is not one of {', '.join(lim.uses)}"))
    if height is not None and not 0 < height <= lim.max_height_m:
        problems.append(Problem(f"{label}, field 'height_m'", f"{height:g} m is absurd (0 < height <= "
                                                               f"{lim.max_height_m:g} m)"))
    if floors is not None and not 0 < floors <= lim.max_floors:
        problems.append(Problem(f"{label}, field 'floors'", f"{floors} is absurd (1 to {lim.max_floors})"))
    if gfa is not None and not 0 < gfa <= lim.max_gfa_m2:
        problems.append(Problem(f"{label}, field 'gfa_m2'", f"{gfa:g} m² is absurd (0 < GFA <= {lim.max_gfa_m2:g} m²)"))
    if height and floors and 0 < floors <= lim.max_floors and 0 < height <= lim.max_height_m:
        storey = height / floors
        if not lim.min_storey_height_m <= storey <= lim.max_storey_height_m:
            problems.append(Problem(f"{label}, field 'height_m'",
                                    f"{height:g} m over {floors} floors is {storey:.1f} m a storey, outside "
                                    f"{lim.min_storey_height_m:g}–{lim.max_storey_height_m:g} m"))
    if gfa and floors and geom is not None and not problems and gfa > 0:
        cap = geom.area * floors * lim.max_gfa_per_footprint_floor
        if gfa > cap:
            problems.append(Problem(f"{label}, field 'gfa_m2'",
                                    f"{gfa:g} m² is more than {floors} floors of a {geom.area:.0f} m² footprint can "
                                    f"hold ({cap:.0f} m²)"))
    clean = {"name": name, "height_m": height, "floors": floors, "gfa_m2": gfa, "use": use,
             "geom": None if problems else to_multi(np.array([geom]), "MultiPolygon")[0]}
    return clean, problems


# ----------------------------------------------------------------------------- reading files

VECTOR_FORMATS = {".geojson", ".json", ".gpkg", ".zip", ".dxf"}


def read_footprints(path: Path, source_name: str, crs: str | None, limits: ImportLimits | None = None
                    ) -> tuple[list[dict], list, CRS]:
    """(attribute dicts, shapely geometries in the source CRS, the source CRS) of every feature."""
    limits = limits or ImportLimits(max_file_bytes=50 * 1024 * 1024)
    suffix = path.suffix.lower()
    if suffix not in VECTOR_FORMATS:
        raise InputError(f"unsupported file type {suffix or '(none)'!r}; upload GeoJSON, GeoPackage, a zipped "
                         "Shapefile or DXF", where=source_name)
    with tempfile.TemporaryDirectory(prefix="gisapproval-footprints-") as tmp:
        if suffix == ".dxf":
            if path.stat().st_size == 0:
                raise InputError("the file is empty", where=source_name)
            read_path = path
        else:
            fmt = check_file(path, source_name, "vector", limits)
            read_path = extract_shapefile(path, source_name, Path(tmp), limits) if fmt == "zipped Shapefile" else path
        try:
            layers = pyogrio.list_layers(read_path)
            if len(layers) == 0:
                raise InputError("the file holds no layer", where=source_name)
            pyogrio.set_gdal_config_options({"DXF_CLOSED_LINE_AS_POLYGON": "TRUE"})
            meta, _, wkb, field_data = pyogrio.raw.read(read_path, layer=str(layers[0][0]))
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001  (GDAL's errors come in many classes)
            raise InputError(f"cannot be read as a vector file: {exc}", where=source_name) from None
    source_crs = resolve_crs(meta.get("crs"), crs, source_name)
    fields = list(meta["fields"])
    attrs = [{f: (v.item() if hasattr(v, "item") else v) for f, v in zip(fields, row)}
             for row in zip(*field_data)] if fields else [{} for _ in range(len(wkb))]
    geoms = [shapely.from_wkb(w) if w is not None else None for w in wkb]
    if suffix == ".dxf":  # a CAD outline is a closed polyline: it is the footprint's ring
        geoms = [shapely.Polygon(g.coords) if g is not None and g.geom_type == "LineString" and g.is_ring and
                 len(g.coords) >= 4 else g for g in geoms]
    return attrs, geoms, source_crs


def _to_storage(geoms: list, source_crs: CRS, settings: Settings) -> list:
    target = CRS.from_epsg(settings.jurisdiction.srid)
    if source_crs.equals(target):
        return geoms
    tr = crs_transformer(source_crs, target)
    out = []
    for g in geoms:
        if g is None or g.is_empty:
            out.append(g)
            continue
        has_z = shapely.has_z(g)
        out.append(reproject(g, tr) if not has_z else _transform_z(g, tr))
    return out


def _transform_z(g, tr):
    def f(xyz):
        x, y = tr.transform(xyz[:, 0], xyz[:, 1])
        return np.column_stack([x, y, xyz[:, 2]])

    return shapely.transform(g, f, include_z=True)


def _field(attrs: dict, name: str):
    for k, v in attrs.items():
        if k.lower() == name or k.lower()[:10] == name[:10]:
            return v
    return None


def add_buildings_from_file(session: Session, settings: Settings, actor: User, project_id: int, path: Path,
                            source_name: str, crs: str | None = None, defaults: dict | None = None
                            ) -> list[Building]:
    """Add every footprint of an uploaded file (GeoJSON, GeoPackage, zipped Shapefile, DXF).

    Attributes come from the file's fields name, height_m, floors, gfa_m2, use, else from
    ``defaults`` (a DXF has no such fields). A multi-polygon is one building. All or nothing.
    """
    project = get_own_project(session, _applicant(actor), project_id, editable=True)
    attrs, geoms, source_crs = read_footprints(Path(path), source_name, crs)
    lim = footprint_limits()
    if not geoms:
        raise InputError("the file holds no features", where=source_name)
    if len(geoms) > lim.max_buildings_per_upload:
        raise InputError(f"the file holds {len(geoms)} features, more than the {lim.max_buildings_per_upload} "
                         "buildings one upload may add", where=source_name)
    geoms = _to_storage(geoms, source_crs, settings)
    defaults = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
    entries = []
    for i, (a, g) in enumerate(zip(attrs, geoms), start=1):
        values = {k: _field(a, k) for k in ATTRIBUTES}
        values = {k: (v if v not in (None, "") else defaults.get(k)) for k, v in values.items()}
        label = f"{source_name}: feature #{i}" + (f" ({values['name']})" if values.get("name") else "")
        entries.append((values, g, label))
    return _store_buildings(session, settings, actor, project, entries, source_name)


def add_drawn_building(session: Session, settings: Settings, actor: User, project_id: int, geometry: dict,
                       attrs: dict, crs: str = "EPSG:4326") -> Building:
    """Add one building drawn on the map (a GeoJSON geometry, EPSG:4326 unless ``crs`` says otherwise)."""
    project = get_own_project(session, _applicant(actor), project_id, editable=True)
    geom = _geojson_geometry(geometry, "drawn footprint")
    src = resolve_crs(crs, None, "drawn footprint")
    geom = _to_storage([geom], src, settings)[0]
    return _store_buildings(session, settings, actor, project, [(attrs, geom, "drawn footprint")],
                            "drawn footprint")[0]


def _geojson_geometry(geometry, where: str):
    if not isinstance(geometry, dict) or "type" not in geometry:
        raise InputError("a GeoJSON geometry object is needed", where=where)
    if geometry.get("type") == "Feature":
        geometry = geometry.get("geometry") or {}
    try:
        return shapely.from_geojson(json.dumps(geometry))
    except Exception as exc:  # noqa: BLE001  (shapely raises GEOSException and others)
        raise InputError(f"not a valid GeoJSON geometry: {exc}", where=where) from None


def _store_buildings(session, settings, actor, project, entries, source_name) -> list[Building]:
    problems: list[Problem] = []
    cleans = []
    existing = session.scalar(sa.select(sa.func.count()).select_from(Building).where(Building.project_id == project.id))
    for n, (values, geom, label) in enumerate(entries, start=1):
        clean, found = validate_building(values, geom, label, settings)
        problems += found
        if not clean["name"]:
            clean["name"] = f"{existing + n}#"
        cleans.append(clean)
    if problems:
        raise BuildingInputError(source_name, problems)
    buildings = []
    for c in cleans:
        b = Building(project_id=project.id, name=c["name"], height_m=c["height_m"], floors=c["floors"],
                     gfa_m2=c["gfa_m2"], use=c["use"], geom=from_shape(c["geom"], srid=SRID))
        session.add(b)
        buildings.append(b)
    session.flush()
    record_event(session, actor, "building.added", project,
                 {"source": source_name, "buildings": [{"id": b.id, "name": b.name} for b in buildings]})
    return buildings


def update_building(session: Session, settings: Settings, actor: User, building_id: int, changes: dict) -> Building:
    """Change a building's attributes and/or footprint (``geometry``: GeoJSON in EPSG:4326)."""
    building = session.get(Building, building_id)
    if building is None:
        raise NotFoundError(f"no building {building_id}")
    get_own_project(session, _applicant(actor), building.project_id, editable=True)
    before = {k: getattr(building, k) for k in ATTRIBUTES}
    values = {**before, **{k: v for k, v in changes.items() if k in ATTRIBUTES}}
    geom = to_shape(building.geom)
    if changes.get("geometry") is not None:
        geom = _to_storage([_geojson_geometry(changes["geometry"], f"building {building_id}")],
                           resolve_crs(changes.get("crs") or "EPSG:4326", None, "crs"), settings)[0]
    clean, problems = validate_building(values, geom, f"building {building_id} ({before['name']})", settings)
    if problems:
        raise BuildingInputError(f"building {building_id}", problems)
    for k in ATTRIBUTES:
        setattr(building, k, clean[k] or before[k] if k == "name" else clean[k])
    building.geom = from_shape(clean["geom"], srid=SRID)
    session.flush()
    record_event(session, actor, "building.updated", ("buildings", building.id),
                 {"before": {k: before[k] for k in ATTRIBUTES},
                  "after": {k: getattr(building, k) for k in ATTRIBUTES},
                  "geometry_changed": changes.get("geometry") is not None}, project_id=building.project_id)
    return building


def remove_building(session: Session, actor: User, building_id: int) -> None:
    building = session.get(Building, building_id)
    if building is None:
        raise NotFoundError(f"no building {building_id}")
    project = get_own_project(session, _applicant(actor), building.project_id, editable=True)
    record_event(session, actor, "building.removed", project, {"id": building.id, "name": building.name})
    session.delete(building)
    session.flush()


def list_projects(session: Session, actor: User) -> list[Project]:
    """The applicant's own projects; staff see every project."""
    q = sa.select(Project).order_by(Project.created_at.desc(), Project.id.desc())
    if actor.role_codes <= {"applicant"}:
        q = q.where(Project.applicant_id == actor.id)
    return list(session.scalars(q))
