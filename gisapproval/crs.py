"""Coordinate transformations, made once and kept: for a process, and for the machine.

PROJ takes about a tenth of a second of CPU to choose the operation between two CRSs (it
searches its database for datum transformations), which every new process (a command-line
import, a web worker's first upload) would otherwise pay again for each pair it uses. The
operation it chose, when it is a single pipeline, is written down in the app's home
(``cache/crs-operations.json``, keyed by the two CRSs and by the PROJ build, data and grids
that chose it) and a later process makes its transformer from that text in a fraction of a
millisecond. The cache is a shortcut: an entry that is missing, unreadable or no longer valid
is chosen again, and a home that cannot be written to is simply not written to. Its entries are
trusted as the rest of the home is (the cluster's data, the session secret): whoever may write
there may change them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pyproj
import shapely
from pyproj import CRS, Transformer
from pyproj.datadir import get_data_dir, get_user_data_dir
from pyproj.exceptions import ProjError
from pyproj.network import is_network_enabled

from .config import app_home

OPERATIONS_FILE = Path("cache") / "crs-operations.json"  # under the app's home
KEPT_OPERATIONS = 256  # entries the file keeps (the latest written)

_TRANSFORMERS_MADE = threading.Lock()  # one thread makes a transformer, the others wait for it


def crs_transformer(source: CRS, target: CRS) -> Transformer:
    """The (always_xy) transformer from ``source`` to ``target``, kept for the process.

    pyproj makes a transformer's PROJ object anew in each other thread that uses it (a
    request's, a helper's), which for one made from the two CRSs means choosing the operation
    again. So a transformer whose operation is a single pipeline is kept as made from that
    pipeline's text, which PROJ makes in a fraction of a millisecond in any thread and which
    transforms exactly as the one it came from (but names no source or target CRS); the text
    is also written to the machine's cache of operations for the next process. One that
    chooses among operations point by point (its pipeline "unavailable until proj_trans is
    called") is kept as it is."""
    with _TRANSFORMERS_MADE:
        return _transformer(source, target)


def web_transformer(srid: int) -> Transformer:
    """From the storage CRS (``srid``) to web mercator (EPSG:3857), the CRS of the copies vector
    tiles are cut from."""
    return crs_transformer(CRS.from_epsg(srid), CRS.from_epsg(3857))


@functools.lru_cache(maxsize=32)
def _transformer(source: CRS, target: CRS) -> Transformer:
    key = operation_key(source, target)
    known = _read_operations().get(key)
    if known is not None:
        try:
            return Transformer.from_pipeline(known)
        except ProjError:  # not valid here any more: chosen again below
            pass
    chosen = Transformer.from_crs(source, target, always_xy=True)
    try:
        made = Transformer.from_pipeline(chosen.definition)
    except ProjError:
        return chosen
    _write_operation(key, chosen.definition)
    return made


def reproject(geoms, transformer: Transformer):
    """Shapes (one or an array) with their x, y reprojected by ``transformer`` (always_xy)."""
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def operation_key(source: CRS, target: CRS) -> str:
    """What the operation PROJ chooses from ``source`` to ``target`` (always_xy) depends on:
    the two CRSs as given, pyproj's and PROJ's versions, whether grids may be fetched, and
    the files PROJ searches for its database and grids — its data directories and the
    user-writable one where ``projsync`` puts grids (each file's name, size and last change:
    a grid installed, removed or replaced makes a new key)."""
    dirs = [*get_data_dir().split(os.pathsep), get_user_data_dir()]
    parts = [pyproj.__version__, pyproj.proj_version_str, is_network_enabled(), source.srs, target.srs, "always_xy",
             [[d, _listing(d)] for d in dirs]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _listing(directory: str) -> list:
    try:
        with os.scandir(directory) as found:
            return sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in found if e.is_file())
    except OSError:
        return []


def operations_path() -> Path:
    return app_home() / OPERATIONS_FILE


def _read_operations() -> dict[str, str]:
    try:
        stored = json.loads(operations_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in stored.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(
        stored, dict) else {}


def _write_operation(key: str, definition: str) -> None:
    """Add an operation to the file (replaced whole, so a reader never sees half of it); two
    processes writing at once may lose one's entry, which is then chosen again next time."""
    path = operations_path()
    kept = _read_operations()
    kept.pop(key, None)
    kept[key] = definition
    kept = dict(list(kept.items())[-KEPT_OPERATIONS:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".crs-operations-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(kept, f)
            os.chmod(tmp, 0o644)  # readable by every user of the home (the command line's, the web server's)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a home we may not write to: the operation is chosen again by the next process
