"""Raster zonal statistics are safe from several threads at once (gunicorn runs threads): each
thread reads through its own GDAL dataset handle, since one handle shared between threads
corrupts concurrent block reads (seen as 'ZIPDecode: Decoding error' under bench/load.py)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import shapely
import sqlalchemy as sa

from gisapproval.checks import zonal as zonal_module
from gisapproval.checks.zonal import zonal
from gisapproval.models import Layer, LayerVersion


def _dem(session):
    return session.scalar(sa.select(LayerVersion.raster_path).join(Layer, Layer.current_version_id == LayerVersion.id)
                          .where(Layer.name == "dem"))


def test_each_thread_has_its_own_dataset_handle(session):
    path = _dem(session)
    barrier = threading.Barrier(4)

    def handle(_):
        barrier.wait()
        return id(zonal_module._open(path)), id(zonal_module._open(path))

    with ThreadPoolExecutor(max_workers=4) as pool:
        pairs = list(pool.map(handle, range(4)))
    assert all(a == b for a, b in pairs), "a thread should reuse its own handle"
    assert len({a for a, _ in pairs}) == 4, "threads must not share a dataset handle"


def test_concurrent_zonal_reads_agree_with_serial_ones(session):
    path = _dem(session)
    x0, y0, x1, y1 = session.execute(sa.text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                                             "(SELECT ST_Extent(geom)::geometry e FROM parcels) s")).one()
    boxes = [shapely.box(x0 + (x1 - x0) * i / 60, y0 + (y1 - y0) * (i % 7) / 7,
                         x0 + (x1 - x0) * i / 60 + 300, y0 + (y1 - y0) * (i % 7) / 7 + 300) for i in range(60)]
    serial = [zonal(path, b, "slope_deg")[0] for b in boxes]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda b: zonal(path, b, "slope_deg")[0], boxes)) == serial
    assert any(v is not None for v in serial)
