"""Raster sources (GeoTIFF) checked and brought to the storage CRS with rasterio."""

from __future__ import annotations

from pathlib import Path

import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

from .config import Jurisdiction
from .errors import InputError


def normalise_raster(source: Path, name: str, workdir: Path, jurisdiction: Jurisdiction,
                     given_crs: str | None = None) -> tuple[Path, str]:
    """Check a GeoTIFF and return (a GeoTIFF in the storage CRS, the source CRS as text)."""
    try:
        src = rasterio.open(source)
    except RasterioIOError as exc:
        raise InputError(f"cannot be read as a GeoTIFF: {exc}", where=name) from None
    with src:
        crs = src.crs or (CRS.from_user_input(given_crs) if given_crs else None)
        if crs is None:
            raise InputError("the raster has no coordinate reference system; give one (e.g. --crs EPSG:4547)",
                             where=name)
        if src.count < 1 or src.width < 1 or src.height < 1:
            raise InputError("the raster has no cells", where=name)
        target = CRS.from_epsg(jurisdiction.srid)
        left, bottom, right, top = transform_bounds(crs, target, *src.bounds)
        x0, y0, x1, y1 = jurisdiction.extent
        if right <= x0 or left >= x1 or top <= y0 or bottom >= y1:
            raise InputError(f"the raster lies outside the jurisdiction (bounds {left:.1f}, {bottom:.1f}, "
                             f"{right:.1f}, {top:.1f} in EPSG:{jurisdiction.srid})", where=name)
        out = workdir / "normalised.tif"
        if crs == target and src.crs is not None:
            return source, crs.to_string()
        transform, width, height = calculate_default_transform(crs, target, src.width, src.height, *src.bounds)
        profile = src.profile.copy()
        profile.update(crs=target, transform=transform, width=width, height=height, driver="GTiff",
                       compress="deflate", tiled=True, blockxsize=256, blockysize=256)
        with rasterio.open(out, "w", **profile) as dst:
            for band in range(1, src.count + 1):
                reproject(rasterio.band(src, band), rasterio.band(dst, band), src_crs=crs, dst_crs=target,
                          resampling=Resampling.bilinear)
        return out, crs.to_string()
