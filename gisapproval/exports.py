"""Downloads as GeoPackage or GeoJSON: a layer version, a project's footprints, a project's
check results (with their evidence geometries).

Each export reads its rows with one query (geopandas over the session's connection), writes
the file with pyogrio into a temporary directory and returns its bytes; the GeoPackage keeps
the storage CRS, GeoJSON is RFC 7946 (EPSG:4326, lon/lat). Exports are audited
(``<subject>.exported``) in the caller's transaction.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import sqlalchemy as sa
from sqlalchemy.orm import Session

from .audit import record_event
from .errors import InputError, NotFoundError, PermissionDeniedError
from .mapdata import sees_all_projects
from .models import SRID, Building, CheckResult, CheckRun, Department, LayerFeature, Project, User
from .layerversions import features_as_of
from .tiles import resolve_layer_version

FORMATS = {
    "gpkg": ("GPKG", "application/geopackage+sqlite3"),
    "geojson": ("GeoJSON", "application/geo+json"),
}
# Who may download whole layers (attributes such as parcel holders): staff, not applicants.
LAYER_EXPORT_ROLES = frozenset({"clerk", "reviewer", "leader", "layer_editor", "supervisor", "admin"})


@dataclass(frozen=True)
class ExportFile:
    filename: str
    mimetype: str
    content: bytes
    count: int


def _format(fmt: str) -> tuple[str, str]:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}", where="format") from None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _write(frame: gpd.GeoDataFrame, layer: str, fmt: str, stem: str) -> ExportFile:
    driver, mimetype = _format(fmt)
    if fmt == "geojson":
        frame = frame.to_crs(4326)
    with tempfile.TemporaryDirectory(prefix="gisapproval-export-") as tmp:
        path = Path(tmp) / f"{_safe(stem)}.{fmt}"
        kwargs = {"geometry_type": "Unknown"} if frame.empty else {}
        pyogrio.write_dataframe(frame, path, layer=layer, driver=driver, **kwargs)
        return ExportFile(path.name, mimetype, path.read_bytes(), len(frame))


def _frame(session: Session, query: sa.Select, geom: str = "geom") -> gpd.GeoDataFrame:
    frame = gpd.read_postgis(query, session.connection(), geom_col=geom, crs=f"EPSG:{SRID}")
    return frame


def export_layer_version(session: Session, actor: User, layer_name: str, version: int | None,
                         fmt: str) -> ExportFile:
    """The features of a vector layer valid in ``version`` (default: its current version), with
    their attributes as columns."""
    _format(fmt)
    if not actor.role_codes & LAYER_EXPORT_ROLES:
        raise PermissionDeniedError("downloading whole layers needs a staff role", where="layer")
    layer, found = resolve_layer_version(session, layer_name, version)
    f = LayerFeature
    frame = _frame(session, sa.select(f.id.label("feature_id"), f.feature_key, f.valid_from, f.valid_to, f.attrs,
                                      f.geom).where(features_as_of(layer.id, found.number)).order_by(f.id))
    attrs = pd.json_normalize(frame.pop("attrs").tolist()) if len(frame) else pd.DataFrame()
    attrs = attrs.drop(columns=[c for c in attrs.columns if c in frame.columns], errors="ignore")
    frame = gpd.GeoDataFrame(pd.concat([frame.drop(columns="geom"), attrs.set_index(frame.index)], axis=1),
                             geometry=frame.geometry, crs=frame.crs)
    record_event(session, actor, "layer_version.exported", found, {"layer": layer.name, "version": found.number,
                                                                  "format": fmt, "features": len(frame)})
    return _write(frame, layer.name, fmt, f"{layer.name}_v{found.number}")


def _project_for(session: Session, actor: User, code: str) -> Project:
    project = session.scalar(sa.select(Project).where(Project.code == code))
    if project is None or not (sees_all_projects(actor) or project.applicant_id == actor.id):
        raise NotFoundError(f"no project {code!r} that you may see", where="project")
    if project.status == "draft" and project.applicant_id != actor.id:
        raise NotFoundError(f"no project {code!r} that you may see", where="project")
    return project


def export_project_footprints(session: Session, actor: User, code: str, fmt: str) -> ExportFile:
    """The project's building footprints with their attributes."""
    _format(fmt)
    project = _project_for(session, actor, code)
    b = Building
    frame = _frame(session, sa.select(b.id.label("building_id"), sa.literal(project.code).label("project_code"),
                                      b.name, b.use, b.height_m, b.floors, b.gfa_m2, b.geom)
                   .where(b.project_id == project.id).order_by(b.id))
    record_event(session, actor, "project.exported", project, {"what": "footprints", "format": fmt},
                 project_id=project.id)
    return _write(frame, "footprints", fmt, f"{project.code}_footprints")


def export_project_checks(session: Session, actor: User, code: str, fmt: str) -> ExportFile:
    """Every check result of the project's check runs, with its evidence geometry (if any)."""
    _format(fmt)
    project = _project_for(session, actor, code)
    r = CheckResult
    frame = _frame(session, sa.select(
        r.id.label("result_id"), CheckRun.id.label("run_id"), CheckRun.purpose,
        sa.func.to_char(CheckRun.created_at, "YYYY-MM-DD\"T\"HH24:MI:SSOF").label("run_at"),
        r.building_id, r.rule_id, Department.code.label("department"), r.outcome, r.measured,
        r.limit_value, r.unit, r.message_zh, r.message_en, r.overrides_result_id, r.override_reason,
        r.evidence.label("geom"),
    ).join(CheckRun, CheckRun.id == r.check_run_id).join(Department, Department.id == r.department_id)
        .where(CheckRun.project_id == project.id).order_by(CheckRun.id, r.id))
    record_event(session, actor, "project.exported", project, {"what": "check_results", "format": fmt},
                 project_id=project.id)
    return _write(frame, "check_results", fmt, f"{project.code}_check_results")
