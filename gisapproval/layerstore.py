"""Writing layers and their versions into the shared database.

Features reach the database by PostgreSQL COPY (layerversions._copy_batches; no row-by-row
INSERT). Each feature carries the range of versions in which it is valid ([valid_from,
valid_to), NULL = still valid).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from sqlalchemy.orm import Session

from .catalogue import LayerSpec
from .models import Department, Layer


def to_multi(geoms: np.ndarray, geometry_type: str) -> np.ndarray:
    """Promote single parts to the layer's multi type (Polygon -> MultiPolygon, ...)."""
    if not geometry_type.startswith("Multi"):
        return geoms
    parts, index = shapely.get_parts(geoms, return_index=True)
    build = {"MultiPolygon": shapely.multipolygons, "MultiLineString": shapely.multilinestrings,
             "MultiPoint": shapely.multipoints}[geometry_type]
    return build(parts, indices=index)


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
        # a name of its own per writer: two imports of the same file may store it at once
        fd, tmp_name = tempfile.mkstemp(dir=store_dir, prefix=f".{digest[:16]}-", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
    return target, digest


def file_sha256(path: Path, stop: threading.Event | None = None) -> str | None:
    """The file's SHA-256 (hex); None if ``stop`` is set before it is done."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            if stop is not None and stop.is_set():
                return None
            h.update(chunk)
    return h.hexdigest()
