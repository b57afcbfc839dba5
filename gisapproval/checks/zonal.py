"""Raster zonal statistics with rasterio: the steepest slope (from the DEM) or the largest
value (flood depth) within each footprint, read through a window around it only.

A footprint outside the raster, or over nodata cells only, gives "no data", never "pass".
Evidence: the cells over the limit, as polygons clipped to the footprint.
"""

from __future__ import annotations

import math
import threading
import warnings

import numpy as np
import rasterio
import shapely
from rasterio import features
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window, from_bounds

from .predicates import ROUND_DIGITS


_local = threading.local()


def _open(path: str):
    """An open dataset for ``path``, one per thread: a GDAL dataset handle must not be shared
    between threads (concurrent reads through one handle corrupt each other's blocks)."""
    cache = getattr(_local, "datasets", None)
    if cache is None:
        cache = _local.datasets = {}
    src = cache.get(path)
    if src is None or src.closed:
        if len(cache) >= 16:
            for old in cache.values():
                old.close()
            cache.clear()
        src = cache[path] = rasterio.open(path)
    return src


def clear_cache() -> None:
    """Close this thread's open datasets (stored rasters never change under their name, but a
    test may write a new file where an old one was)."""
    for src in getattr(_local, "datasets", {}).values():
        src.close()
    _local.datasets = {}


def _window(src, geom, pad: int) -> Window | None:
    x0, y0, x1, y1 = geom.bounds
    win = from_bounds(x0, y0, x1, y1, transform=src.transform)
    col0 = math.floor(win.col_off) - pad
    row0 = math.floor(win.row_off) - pad
    col1 = math.ceil(win.col_off + win.width) + pad
    row1 = math.ceil(win.row_off + win.height) + pad
    if col1 <= 0 or row1 <= 0 or col0 >= src.width or row0 >= src.height:
        return None
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, src.width), min(row1, src.height)
    return Window(col0, row0, col1 - col0, row1 - row0)


def _inside_raster(src, geom) -> bool:
    l, b, r, t = src.bounds
    x0, y0, x1, y1 = geom.bounds
    return x0 >= l and y0 >= b and x1 <= r and y1 <= t


def zonal(path: str, geom, measure: str) -> tuple[float | None, np.ndarray | None, object | None]:
    """(max within the footprint or None for no data, the values, the window transform)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # affine's matmul deprecation, inside rasterio
        # rasterio's geometry_mask rasterizes into an in-memory dataset that it never georeferences
        # itself and warns about; the mask is computed with the window transform passed to it
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return _zonal(path, geom, measure)


def _zonal(path: str, geom, measure: str):
    src = _open(path)
    if not _inside_raster(src, geom):
        return None, None, None
    win = _window(src, geom, pad=1 if measure == "slope_deg" else 0)
    if win is None or win.width < 1 or win.height < 1:
        return None, None, None
    data = src.read(1, window=win, masked=True).astype("float64")
    transform = src.window_transform(win)
    if measure == "slope_deg":
        filled = data.filled(np.nan)
        dy, dx = np.gradient(filled, abs(transform.e), abs(transform.a))
        values = np.degrees(np.arctan(np.hypot(dx, dy)))
    else:
        values = data.filled(np.nan)
    inside = features.geometry_mask([shapely.geometry.mapping(geom)], out_shape=values.shape, transform=transform,
                                    invert=True, all_touched=True)
    picked = values[inside & np.isfinite(values)]
    if picked.size == 0:
        return None, None, None
    return float(picked.max()), np.where(inside, values, np.nan), transform


def raster_max(rule, ref, buildings) -> list[dict]:
    """One result per building: ``buildings`` are (project_id, building_id, shapely geometry, is_covered)."""
    out = []
    limit = float(rule.params["max_value"])
    for project_id, building_id, geom, is_covered in buildings:
        row = {"project_id": project_id, "building_id": building_id, "limit_value": limit, "measured": None,
               "evidence": None, "details": {"raster": ref.name, "version": ref.number}}
        if not ref.present or not is_covered or not ref.raster_path:
            row["outcome"] = "no_data"
            out.append(row)
            continue
        peak, values, transform = zonal(ref.raster_path, geom, rule.params["measure"])
        if peak is None:
            row["outcome"] = "no_data"
            out.append(row)
            continue
        row["measured"] = peak
        broken = round(peak, ROUND_DIGITS) > round(limit, ROUND_DIGITS)
        row["outcome"] = rule.severity if broken else "pass"
        if broken:
            over = np.nan_to_num(values, nan=-np.inf) > limit
            shapes = [shapely.geometry.shape(s) for s, v in features.shapes(over.astype("uint8"), mask=over,
                                                                              transform=transform) if v == 1]
            if shapes:
                row["evidence"] = shapely.intersection(shapely.union_all(shapes), geom)
        out.append(row)
    return out
