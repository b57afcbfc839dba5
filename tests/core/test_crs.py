"""Kept transformers: made once per process, usable in any thread, and made from the machine's
cache of PROJ's chosen operations in a new process — transforming exactly as PROJ's own choice."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from pyproj import CRS, Transformer

from gisapproval import crs
from gisapproval.crs import crs_transformer, operation_key, operations_path


def _points(a: CRS, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    aou = a.area_of_use
    lon = np.random.default_rng(7).uniform(aou.west, aou.east, n)
    lat = np.random.default_rng(8).uniform(aou.south, aou.north, n)
    return Transformer.from_crs(4326, a, always_xy=True).transform(lon, lat)


def _same(t: Transformer, want: Transformer, a: CRS) -> bool:
    x, y = _points(a)
    return np.array_equal(np.column_stack(t.transform(x, y)), np.column_stack(want.transform(x, y)))


@pytest.fixture
def new_process(monkeypatch, tmp_path):
    """As in a new process: no transformer kept yet, and a home of its own (whose cache of
    operations starts empty)."""
    monkeypatch.setenv("GISAPPROVAL_HOME", str(tmp_path / "home"))
    crs._transformer.cache_clear()
    yield tmp_path / "home"
    crs._transformer.cache_clear()


@pytest.mark.parametrize("source, target", [(4547, 3857), (4326, 4547), (4546, 4547), (27700, 4326)])
def test_kept_transformers_transform_as_proj_chooses_in_any_thread(new_process, source, target):
    """A kept transformer whose operation is one pipeline is remade from that pipeline's text
    (cheap in every thread); one that PROJ chooses point by point (British National Grid to
    WGS 84: several operations) stays as made. Either way, in this thread or another, it
    transforms exactly as a transformer made from the two CRSs does."""
    a, b = CRS.from_epsg(source), CRS.from_epsg(target)
    chosen = Transformer.from_crs(a, b, always_xy=True)
    kept = crs_transformer(a, b)
    assert kept is crs_transformer(CRS.from_epsg(source), CRS.from_epsg(target))  # made once
    single = not chosen.definition.startswith("unavailable")
    assert single == (source != 27700)
    assert (kept.definition == chosen.definition) if single else kept.definition.startswith("unavailable")
    assert (kept.source_crs is None) == single  # made from the pipeline's text (which names no CRS), or as chosen
    assert _same(kept, chosen, a)
    x, y = _points(a)
    with ThreadPoolExecutor(1) as pool:
        assert np.array_equal(pool.submit(lambda: np.column_stack(kept.transform(x, y))).result(),
                              np.column_stack(chosen.transform(x, y)))


def test_a_new_process_makes_its_transformer_from_the_kept_operation(new_process, monkeypatch):
    """The first process writes PROJ's chosen pipeline to the home's cache; the next makes its
    transformer from it without asking PROJ to choose, and it transforms the same. An operation
    with no single pipeline is not written (it must be chosen point by point)."""
    a, b = CRS.from_epsg(4547), CRS.from_epsg(3857)
    chosen = Transformer.from_crs(a, b, always_xy=True)
    crs_transformer(a, b)
    crs_transformer(CRS.from_epsg(27700), CRS.from_epsg(4326))
    kept = json.loads(operations_path().read_text())
    assert operations_path().parent.parent == new_process
    assert kept == {operation_key(a, b): chosen.definition}

    crs._transformer.cache_clear()  # the next process

    def no_choosing(*args, **kwargs):
        raise AssertionError("PROJ was asked to choose an operation the cache holds")

    monkeypatch.setattr(crs.Transformer, "from_crs", no_choosing)
    again = crs_transformer(a, b)
    monkeypatch.undo()
    assert again.definition == chosen.definition and _same(again, chosen, a)


def test_an_operation_that_no_longer_makes_a_transformer_is_chosen_again(new_process):
    """An entry PROJ cannot make (other data, a damaged file) is chosen again and replaced; a
    file that is not the cache's JSON is ignored and replaced too."""
    a, b = CRS.from_epsg(4546), CRS.from_epsg(4547)
    chosen = Transformer.from_crs(a, b, always_xy=True)
    operations_path().parent.mkdir(parents=True)
    operations_path().write_text(json.dumps({operation_key(a, b): "+proj=pipeline +step +proj=nonesuch"}))
    made = crs_transformer(a, b)
    assert made.definition == chosen.definition and _same(made, chosen, a)
    assert json.loads(operations_path().read_text())[operation_key(a, b)] == chosen.definition

    crs._transformer.cache_clear()
    operations_path().write_text("[not, json")
    made = crs_transformer(a, b)
    assert _same(made, chosen, a)
    assert json.loads(operations_path().read_text()) == {operation_key(a, b): chosen.definition}


def test_a_home_that_cannot_be_written_to_only_costs_the_choosing(monkeypatch, tmp_path):
    """A home that is a file (no cache directory can be made in it): transformers are still
    made, as PROJ chooses, and nothing is written."""
    home = tmp_path / "home"
    home.write_text("not a directory")
    monkeypatch.setenv("GISAPPROVAL_HOME", str(home))
    crs._transformer.cache_clear()
    try:
        a, b = CRS.from_epsg(4547), CRS.from_epsg(3857)
        assert _same(crs_transformer(a, b), Transformer.from_crs(a, b, always_xy=True), a)
        assert home.read_text() == "not a directory"
    finally:
        crs._transformer.cache_clear()


def test_the_kept_operation_is_keyed_by_the_crss_and_the_proj_data_that_chose_it(monkeypatch, tmp_path):
    """Other CRSs, other PROJ data, or a grid installed, replaced or removed where PROJ looks
    for grids (with the network off, PROJ leaves out an operation whose grid it lacks): a new
    key, so the operation is chosen again."""
    grids = tmp_path / "user-proj"
    grids.mkdir()
    monkeypatch.setattr(crs, "get_user_data_dir", lambda: str(grids))
    a, b, c = CRS.from_epsg(4547), CRS.from_epsg(3857), CRS.from_epsg(4546)
    key = operation_key(a, b)
    assert key == operation_key(CRS.from_epsg(4547), CRS.from_epsg(3857))
    assert len({key, operation_key(b, a), operation_key(c, b), operation_key(a, c)}) == 4
    keys = {key}
    grid = grids / "cn_grid.tif"
    grid.write_bytes(b"one")
    keys.add(operation_key(a, b))  # installed
    grid.write_bytes(b"other")
    keys.add(operation_key(a, b))  # replaced in place
    grid.unlink()
    assert operation_key(a, b) == key  # removed again
    other = tmp_path / "proj"
    other.mkdir()
    monkeypatch.setattr(crs, "get_data_dir", lambda: str(other))
    keys.add(operation_key(a, b))  # other PROJ data
    assert len(keys) == 4


def test_the_kept_operations_are_readable_by_every_user_of_the_home(new_process):
    crs_transformer(CRS.from_epsg(4547), CRS.from_epsg(3857))
    assert operations_path().stat().st_mode & 0o777 == 0o644
