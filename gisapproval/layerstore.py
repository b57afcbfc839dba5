"""Writing layers and their versions into the shared database.

Features are written with PostgreSQL COPY (no row-by-row INSERT). Each feature carries the
range of versions in which it is valid ([valid_from, valid_to), NULL = still valid).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from sqlalchemy.orm import Session

from .audit import record_event
from .catalogue import LayerSpec
from .models import Department, Layer, LayerVersion, User


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


def next_version_number(session: Session, layer: Layer) -> int:
    current = session.scalar(sa.select(sa.func.max(LayerVersion.number)).where(LayerVersion.layer_id == layer.id))
    return (current or 0) + 1


def publish_first_version(
    session: Session, actor: User | None, layer: Layer, spec: LayerSpec, frame, *,
    source_name: str, checksum: str, srid: int,
) -> LayerVersion:
    """Publish ``frame`` (a GeoDataFrame already in ``srid``) as a layer's first version."""
    if layer.current_version_id is not None:
        raise ValueError(f"layer {layer.name} already has a version")
    version = LayerVersion(layer_id=layer.id, number=1, state="live", created_by_id=actor.id if actor else None,
                           source_name=source_name, checksum=checksum)
    session.add(version)
    session.flush()
    attrs_cols = list(spec.attributes)
    geoms = to_multi(frame.geometry.values._data if hasattr(frame.geometry.values, "_data")
                     else np.asarray(frame.geometry.values), spec.geometry_type)
    hexes = ewkb_hex(geoms, srid)
    records = frame[attrs_cols].to_dict("records")

    def rows():
        for rec, hx in zip(records, hexes):
            clean = {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else
                         (v.item() if hasattr(v, "item") else v)) for k, v in rec.items()}
            attrs_json = json.dumps(clean, ensure_ascii=False, sort_keys=True)
            yield (layer.id, str(clean[spec.feature_key]), 1, attrs_json, content_hash(hx, attrs_json), hx)

    n = copy_rows(session, "layer_features", ["layer_id", "feature_key", "valid_from", "attrs", "content_hash", "geom"],
                  rows())
    version.count_added = n
    layer.current_version_id = version.id
    record_event(session, actor, "layer_version.published", version,
                 {"layer": layer.name, "number": 1, "source": source_name, "added": n})
    return version


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


def publish_raster_version(session: Session, actor: User | None, layer: Layer, stored: Path, *,
                           source_name: str, checksum: str) -> LayerVersion:
    version = LayerVersion(layer_id=layer.id, number=next_version_number(session, layer), state="live",
                           created_by_id=actor.id if actor else None, source_name=source_name,
                           checksum=checksum, raster_path=str(stored))
    session.add(version)
    session.flush()
    layer.current_version_id = version.id
    record_event(session, actor, "layer_version.published", version,
                 {"layer": layer.name, "number": version.number, "source": source_name})
    return version


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
