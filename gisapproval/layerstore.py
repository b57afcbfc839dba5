"""Writing layers and their versions into the shared database.

Features are written with PostgreSQL COPY (no row-by-row INSERT). Each feature carries the
range of versions in which it is valid ([valid_from, valid_to), NULL = still valid).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from sqlalchemy.orm import Session

from .catalogue import LayerSpec
from .models import Department, Layer


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """COPY rows into ``table`` inside the session's transaction; returns the row count."""
    conn = session.connection().connection.driver_connection
    cols = ", ".join(columns)
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def to_multi(geoms: np.ndarray, geometry_type: str) -> np.ndarray:
    """Promote single parts to the layer's multi type (Polygon -> MultiPolygon, ...)."""
    if not geometry_type.startswith("Multi"):
        return geoms
    parts, index = shapely.get_parts(geoms, return_index=True)
    build = {"MultiPolygon": shapely.multipolygons, "MultiLineString": shapely.multilinestrings,
             "MultiPoint": shapely.multipoints}[geometry_type]
    return build(parts, indices=index)


def ewkb_hex(geoms: np.ndarray, srid: int) -> np.ndarray:
    return shapely.to_wkb(shapely.set_srid(geoms, srid), hex=True, include_srid=True, output_dimension=2)


def content_hash(wkb_hex: str, attrs_json: str) -> str:
    return hashlib.sha256(wkb_hex.encode() + b"|" + attrs_json.encode()).hexdigest()


def register_layers(session: Session, specs: dict[str, LayerSpec], coverage, srid: int) -> dict[str, Layer]:
    """Create or update the Layer rows for the catalogue; ``coverage`` is a shapely geometry."""
    depts = {d.code: d for d in session.scalars(sa.select(Department))}
    existing = {l.name: l for l in session.scalars(sa.select(Layer))}
    cov = from_shape(to_multi(np.array([coverage]), "MultiPolygon")[0], srid=srid)
    out = {}
    for name, spec in specs.items():
        layer = existing.get(name) or Layer(name=name)
        layer.title_zh, layer.title_en = spec.title_zh, spec.title_en
        layer.department = depts[spec.department]
        layer.kind, layer.geometry_type, layer.feature_key = spec.kind, spec.geometry_type, spec.feature_key
        if layer.coverage is None and spec.coverage == "jurisdiction":
            layer.coverage = cov
        session.add(layer)
        out[name] = layer
    session.flush()
    return out


def store_raster(store_dir: Path, source: Path) -> tuple[Path, str]:
    """Copy a raster into the content-addressed store; returns (stored path, sha256)."""
    digest = file_sha256(source)
    store_dir.mkdir(parents=True, exist_ok=True)
    target = store_dir / f"{digest}{source.suffix.lower()}"
    if not target.exists():
        tmp = target.with_suffix(".part")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    return target, digest


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
