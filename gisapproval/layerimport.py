"""Reading and validating a layer source before anything in the database changes.

Vector sources (GeoPackage, GeoJSON, zipped Shapefile) are streamed in Arrow batches through
pyogrio, so memory stays bounded whatever the file's size. Each batch is checked column by
column (Arrow compute and shapely's vectorised predicates; a Python loop runs only over the
rows of a column that needs one, to name each bad value) and handed on as an Arrow table —
key, attributes as JSON, geometry as EWKB, content digest and web-mercator copies — that COPY
reads in its binary format. Every problem is reported with the feature's key (or its position)
and the field; nothing is written while any problem remains.

A re-import is given the live features' digests (``LiveDigests``): a source feature whose
digest and key are one of theirs is the very feature the layer holds, so its geometry is not
parsed and checked again and it is not sent to the database. Duplicate and removed keys are
then looked for among the other features and the live features not seen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import stat
import struct
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import shapely
import xxhash
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from .catalogue import LayerSpec
from .crs import crs_transformer, reproject, web_transformer
from .errors import InputError

MAX_REPORTED_PROBLEMS = 200
ACCEPTED_TYPES = {
    "MultiPolygon": {"Polygon", "MultiPolygon"},
    "Polygon": {"Polygon"},
    "MultiLineString": {"LineString", "MultiLineString"},
    "LineString": {"LineString"},
    "Point": {"Point"},
    "MultiPoint": {"Point", "MultiPoint"},
}
VECTOR_SUFFIXES = {".gpkg": "GeoPackage", ".geojson": "GeoJSON", ".json": "GeoJSON", ".zip": "zipped Shapefile"}
RASTER_SUFFIXES = {".tif": "GeoTIFF", ".tiff": "GeoTIFF"}


@dataclass(frozen=True)
class ImportLimits:
    max_file_bytes: int = 2 * 1024**3
    max_archive_members: int = 50
    max_member_bytes: int = 2 * 1024**3
    max_archive_bytes: int = 4 * 1024**3
    max_compression_ratio: int = 200


@dataclass(frozen=True)
class ImportOptions:
    crs: str | None = None  # the source's CRS when the file has none
    repair: bool = False  # fix invalid geometries with make_valid and report each repair
    limits: ImportLimits = field(default_factory=ImportLimits)


@dataclass(frozen=True)
class Problem:
    where: str
    message: str
    feature: str | None = None  # the feature's key (or "#position") when the problem is one feature's
    field: str | None = None  # the attribute field when the problem is one field's
    position: int | None = dataclasses.field(default=None, compare=False, repr=False)  # the feature's, in the source

    def as_dict(self) -> dict:
        return {"where": self.where, "feature": self.feature, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class LayerImportError(InputError):
    """A source was refused; ``problems`` lists every problem found (up to a limit)."""

    def __init__(self, layer: str, source: str, problems: list[Problem], more: int = 0):
        self.layer, self.source, self.problems, self.more = layer, source, problems, more
        head = "; ".join(str(p) for p in problems[:5])
        tail = f" (and {len(problems) - 5 + more} more)" if len(problems) + more > 5 else ""
        super().__init__(f"import of layer {layer!r} refused, nothing changed: {head}{tail}", where=source)


# The columns of layer_features an import writes for each feature, in this order (``Batch``,
# the COPY statements and the staging table of gisapproval.layerversions).
STORED_COLUMNS = ("feature_key", "attrs", "geom", "content_digest", "centre_web", "geom_web")
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # binary COPY: signature, flags, extension
COPY_TRAILER = struct.pack(">h", -1)
_EMPTY = pa.scalar(b"", pa.large_binary())


@dataclass
class Batch:
    """The rows of one source batch to be written, as layer_features stores them: feature_key,
    attrs (JSON text), geom (EWKB in the layer's type and the storage SRID), content_digest
    (16 bytes), centre_web (its bounding box's centre in web mercator, EWKB) and geom_web (the
    shape in web mercator, EWKB). Valid rows only, and on a re-import only those the layer does
    not hold already."""

    table: pa.Table

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def copy_data(self, *leading_int4: int) -> bytes:
        """The rows in PostgreSQL's binary COPY format (between ``COPY_HEADER`` and
        ``COPY_TRAILER``), each after a column per ``leading_int4`` value (an integer), then
        feature_key (text), attrs (jsonb), geom (geometry: EWKB), content_digest (uuid),
        centre_web (geometry: EWKB) and geom_web (bytea: EWKB).
        Built column-wise by Arrow: no per-row Python, no text encoding of the geometry."""
        head = struct.pack(">h", len(leading_int4) + len(STORED_COLUMNS)) + b"".join(
            struct.pack(">ii", 4, v) for v in leading_int4)
        parts = [pa.scalar(head, pa.large_binary())]
        for name in STORED_COLUMNS:
            col = self.table.column(name).combine_chunks().cast(pa.large_binary())
            if name == "attrs":  # jsonb's binary form: a version byte, then the text
                col = pc.binary_join_element_wise(pa.scalar(b"\x01", pa.large_binary()), col, _EMPTY)
            length = pc.binary_length(col).to_numpy(zero_copy_only=False).astype(">i4")
            parts += [pa.array(length.view("S4"), type=pa.binary(4)).cast(pa.large_binary()), col]
        rows = pc.binary_join_element_wise(*parts, _EMPTY)
        offsets = value_offsets(rows)
        return rows.buffers()[2][offsets[0]:offsets[-1]].to_pybytes() if len(rows) else b""


@dataclass
class SourceReport:
    features: int = 0
    repairs: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0
    source_crs: str | None = None
    valid: int = 0  # valid features
    unchanged: int = 0  # valid features the layer already holds as they are (a re-import)
    # the keys of the valid features that are not a live feature as it is (all of them on a
    # first import), batch by batch: where duplicate and removed keys can hide
    keys: list[pa.Array] = field(default_factory=list)
    # given each batch's valid features: their keys, and their digests as written or found
    # (an (n, 2) uint64 array); the version's content, for gisapproval.digestcache
    content: Callable[[pa.Array, np.ndarray], None] | None = None

    def other_keys(self) -> pa.ChunkedArray:
        return pa.chunked_array(self.keys, type=pa.string())

    def problem(self, where: str, message: str, feature: str | None = None, field: str | None = None,
                position: int | None = None) -> None:
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(Problem(where, message, feature, field, position))
        else:
            self.more_problems += 1


def _magic(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(16)


def check_file(path: Path, name: str, kind: str, limits: ImportLimits) -> str:
    """The format of an uploaded file, after size and content checks; raises InputError."""
    size = path.stat().st_size
    if size == 0:
        raise InputError("the file is empty", where=name)
    if size > limits.max_file_bytes:
        raise InputError(f"the file is {size / 1e6:.1f} MB, more than the {limits.max_file_bytes / 1e6:.0f} MB allowed",
                         where=name)
    suffix = path.suffix.lower()
    table = VECTOR_SUFFIXES if kind == "vector" else RASTER_SUFFIXES
    if suffix not in table:
        raise InputError(f"unsupported file type {suffix or '(none)'!r} for a {kind} layer; use "
                         f"{', '.join(sorted(set(table.values())))}", where=name)
    magic = _magic(path)
    expected = {".gpkg": [b"SQLite format 3\x00"], ".zip": [b"PK\x03\x04"], ".tif": [b"II*\x00", b"MM\x00*"],
                ".tiff": [b"II*\x00", b"MM\x00*"]}.get(suffix)
    if expected and not any(magic.startswith(m) for m in expected):
        raise InputError(f"the file's content is not a {table[suffix]}", where=name)
    if suffix in (".geojson", ".json") and not magic.lstrip().startswith(b"{"):
        raise InputError("the file's content is not GeoJSON (it does not start with '{')", where=name)
    return table[suffix]


def extract_shapefile(path: Path, name: str, workdir: Path, limits: ImportLimits) -> Path:
    """Safely extract a zipped Shapefile into ``workdir``; returns the .shp path."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError("not a valid zip archive", where=name) from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_archive_members:
            raise InputError(f"the archive has {len(members)} members, more than the {limits.max_archive_members} "
                             "allowed", where=name)
        total = 0
        for m in members:
            mname = m.filename
            parts = Path(mname).parts
            if mname.startswith(("/", "\\")) or ".." in parts or ":" in mname or "\\" in mname:
                raise InputError(f"archive member {mname!r} has an unsafe path", where=name)
            if stat.S_ISLNK(m.external_attr >> 16):
                raise InputError(f"archive member {mname!r} is a link; links are not accepted", where=name)
            if m.file_size > limits.max_member_bytes:
                raise InputError(f"archive member {mname!r} unpacks to {m.file_size / 1e6:.1f} MB, more than the "
                                 f"{limits.max_member_bytes / 1e6:.0f} MB allowed", where=name)
            if m.compress_size and m.file_size / m.compress_size > limits.max_compression_ratio and m.file_size > 1e6:
                raise InputError(f"archive member {mname!r} is compressed suspiciously well "
                                 f"({m.file_size // max(m.compress_size, 1)}:1)", where=name)
            total += m.file_size
        if total > limits.max_archive_bytes:
            raise InputError(f"the archive unpacks to {total / 1e6:.1f} MB, more than the "
                             f"{limits.max_archive_bytes / 1e6:.0f} MB allowed", where=name)
        shps = [m for m in members if m.filename.lower().endswith(".shp") and not m.is_dir()]
        if len(shps) != 1:
            raise InputError(f"the archive must hold exactly one .shp file, it holds {len(shps)}", where=name)
        stem = shps[0].filename[:-4]
        present = {m.filename.lower() for m in members}
        for ext in (".shx", ".dbf"):
            if (stem + ext).lower() not in present:
                raise InputError(f"the archive lacks {Path(stem).name + ext}, which a Shapefile needs", where=name)
        for m in members:
            if m.is_dir():
                continue
            target = workdir / Path(m.filename).name
            with archive.open(m) as src, open(target, "wb") as dst:
                written = 0
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > limits.max_member_bytes:
                        raise InputError(f"archive member {m.filename!r} unpacks larger than it declares", where=name)
                    dst.write(chunk)
        return workdir / (Path(stem).name + ".shp")


def resolve_crs(source_crs: str | None, given: str | None, name: str) -> CRS:
    text = source_crs or given
    if not text:
        raise InputError("the source has no coordinate reference system; give one (e.g. --crs EPSG:4547) or "
                         "include it in the file (.prj for a Shapefile)", where=name)
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise InputError(f"unknown coordinate reference system {text!r}: {exc}", where=name) from None


def _cast(value, typ: str):
    """The attribute value as the catalogue's type, or raise ValueError."""
    if value is None:
        raise ValueError("is missing (empty)")
    if typ == "str":
        text = str(value).strip()
        if not text:
            raise ValueError("is empty")
        return text
    if typ == "int":
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number, got {value!r}")
        if isinstance(value, float):
            if not np.isfinite(value) or value != int(value):
                raise ValueError(f"must be a whole number, got {value!r}")
            return int(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {value!r}") from None
    if typ == "float":
        if isinstance(value, bool):
            raise ValueError(f"must be a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number, got {value!r}") from None
        if not np.isfinite(out):
            raise ValueError(f"must be a finite number, got {value!r}")
        return out
    raise ValueError(f"unknown type {typ}")


def _fix(geom, accepted: set[str]):
    """make_valid, keeping only parts of the accepted kind; None when nothing usable is left."""
    fixed = shapely.make_valid(geom)
    if fixed.geom_type in accepted:
        return fixed
    parts = [p for p in shapely.get_parts(fixed) if p.geom_type in {t.replace("Multi", "") for t in accepted}]
    if not parts:
        return None
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


class VectorSource:
    """A vector source opened for reading: its layer chosen, its fields matched to the
    catalogue's attributes, its CRS resolved and its transformers made (to the storage CRS, to
    web mercator). A file-level problem (no CRS, missing attribute columns, unreadable file)
    raises at once, on opening; ``batches()`` then streams it. Use it as a context manager."""

    def __init__(self, path: Path, name: str, spec: LayerSpec, srid: int,
                 extent: tuple[float, float, float, float], options: ImportOptions, report: SourceReport,
                 batch_size: int = 20_000):
        self.name, self.spec, self.report = name, spec, report
        try:
            layers = pyogrio.list_layers(path)
        except Exception as exc:  # GDAL's errors come in many classes
            raise InputError(f"cannot be read as a vector file: {exc}", where=name) from None
        if len(layers) == 0:
            raise InputError("the file holds no layer", where=name)
        layer_name = None
        if len(layers) > 1:
            names = [str(n) for n, _ in layers]
            wanted = spec.source_layer or spec.name
            if wanted not in names:
                raise InputError(f"the file holds several layers ({', '.join(names)}) and none is named "
                                 f"{wanted!r}", where=name)
            layer_name = wanted
        try:
            self._ctx = pyogrio.raw.open_arrow(path, layer=layer_name, use_pyarrow=True, batch_size=batch_size)
            meta, self._reader = self._ctx.__enter__()
        except Exception as exc:
            raise InputError(f"cannot be read as a vector file: {exc}", where=name) from None
        try:
            fields = list(meta["fields"])
            self.mapping = match_fields(spec.attributes, fields)
            missing = [a for a in spec.attributes if a not in self.mapping]
            if missing:
                raise InputError(f"missing attribute field(s) {', '.join(missing)}; the file has "
                                 f"{', '.join(fields) or 'none'}", where=name)
            src_crs = resolve_crs(meta.get("crs"), options.crs, name)
            report.source_crs = src_crs.to_string()
            target = CRS.from_epsg(srid)
            self.geom_col = meta.get("geometry_name") or "wkb_geometry"
            to_storage = None if src_crs.equals(target) else crs_transformer(src_crs, target)
            self.shape = _Shape(spec, srid, extent, to_storage, options, web_transformer(srid))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)

    def __enter__(self) -> VectorSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def batches(self, known: LiveDigests | Future | None = None, lookahead: int = 3) -> Iterator[Batch]:
        """Validated, normalised batches; problems go to the report, duplicate keys among them
        once the whole source is read. ``known``: the layer's live features' digests (a
        re-import): the features found among them are counted in ``report.unchanged`` and not
        yielded. While they are still coming (a Future), up to ``lookahead`` batches are read
        and their attributes checked and digested."""
        reimport, pending, position = known is not None, deque(), 0
        for rb in self._reader:
            pending.append(_read_batch(rb, self.mapping, self.geom_col, position, self.name, self.spec, self.shape,
                                       self.report, reimport))
            position += rb.num_rows
            if isinstance(known, Future):
                if not known.done() and len(pending) < lookahead:
                    continue
                known = known.result()
            while pending:
                yield _finish_batch(pending.popleft(), self.name, self.spec, self.shape, self.report, known)
        known = known.result() if isinstance(known, Future) else known
        while pending:
            yield _finish_batch(pending.popleft(), self.name, self.spec, self.shape, self.report, known)
        self.report.features = position
        # in the order of the source's features (batches read ahead record their attributes'
        # problems before the geometries of the batches before them)
        self.report.problems.sort(key=lambda p: math.inf if p.position is None else p.position)
        _report_duplicates(self.report, self.spec, self.name, known)


def _report_duplicates(report: SourceReport, spec: LayerSpec, name: str, known: LiveDigests | None,
                       limit: int = 50) -> None:
    """Keys the source holds more than once: among the features that are not a live feature as
    it is, and, on a re-import, live features the source holds as they are and again (as they
    are, or otherwise). Counting only those keeps a re-import from counting every key."""
    counts = pc.value_counts(report.other_keys())
    values, n = counts.field("values"), counts.field("counts").to_numpy(zero_copy_only=False)
    repeated = dict(zip(values.filter(pa.array(n > 1)).to_pylist(), n[n > 1].tolist(), strict=True))
    if known is not None and len(known):
        repeated.update(known.repeated(values, n))
    for key in sorted(repeated)[:limit]:
        report.problem(f"{name}: feature {key!r}", f"key {spec.feature_key!r} appears {repeated[key]} times; keys "
                       "must be unique", key, spec.feature_key)


def match_fields(attributes, fields: list[str]) -> dict[str, str]:
    """Catalogue attribute -> source field: the same name, else the same name in another case,
    else the name cut to 10 characters as a Shapefile's dBase table stores it."""
    lower = {f.lower(): f for f in fields}
    out = {}
    for attr in attributes:
        if attr in fields:
            out[attr] = attr
        elif attr.lower() in lower:
            out[attr] = lower[attr.lower()]
        elif attr[:10].lower() in lower:
            out[attr] = lower[attr[:10].lower()]
    return out


ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}


def _fast_column(col: pa.Array, typ: str) -> pa.Array | None:
    """The column cast to the catalogue's type when every value is certainly good, else None
    (then the slow path names each bad value)."""
    if col.null_count:
        return None
    t = col.type
    if typ == "str" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        out = pc.utf8_trim_whitespace(col).cast(pa.string())
        return None if pc.any(pc.equal(pc.utf8_length(out), 0)).as_py() else out
    if typ == "float" and (pa.types.is_floating(t) or pa.types.is_integer(t)):
        out = col.cast(pa.float64())
        return out if pc.all(pc.is_finite(out)).as_py() in (True, None) else None
    if typ == "int" and pa.types.is_integer(t):
        return col.cast(pa.int64())
    return None


@dataclass(frozen=True)
class _Shape:
    """What a batch's geometries are checked against and turned into."""

    spec: LayerSpec
    srid: int
    extent: tuple[float, float, float, float]
    transformer: Transformer | None  # source CRS -> storage CRS, when they differ
    options: ImportOptions
    to_web: Transformer  # storage CRS -> web mercator

    @property
    def accepted(self) -> set[str]:
        return ACCEPTED_TYPES[self.spec.geometry_type]


_NUL = pa.scalar(b"\x00", pa.binary())


def _digests(*parts) -> np.ndarray:
    """Each row's content digest (XXH3-128) over ``parts`` joined: its attributes as JSON text,
    a NUL, and its geometry as EWKB, exactly as the import writes them (migration 0010); as an
    (n, 2) uint64 array of the digest's 16 bytes, zeros where a part is null ("not known"). It
    tells a changed feature from an unchanged one; it is not a seal against forgery."""
    message = pc.binary_join_element_wise(*(p.cast(pa.binary()) for p in parts), pa.scalar(b"", pa.binary()))
    out = np.zeros((len(message), 2), dtype="<u8")
    known = message.is_valid().to_numpy(zero_copy_only=False)
    if known.any():
        whole = message if not message.null_count else message.filter(pa.array(known))
        blob = b"".join(map(xxhash.xxh3_128_digest, whole.to_pylist()))
        out[known] = np.frombuffer(blob, dtype="<u8").reshape(-1, 2)
    return out


def digest_array(digests: np.ndarray) -> pa.FixedSizeBinaryArray:
    """Digests (an (n, 2) uint64 array) as Arrow values of their 16 bytes, zeros as they are."""
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(digests), [
        None, pa.py_buffer(np.ascontiguousarray(digests, dtype="<u8"))])


def array_digests(values: pa.FixedSizeBinaryArray) -> np.ndarray:
    """The (n, 2) uint64 array of 16-byte Arrow values (``digest_array``'s inverse, no copy)."""
    start = 2 * values.offset
    return np.frombuffer(values.buffers()[1], dtype="<u8")[start:start + 2 * len(values)].reshape(-1, 2)


def digest_column(digests: np.ndarray) -> pa.Array:
    """Digests as written to the uuid column content_digest: 16 bytes each, null where not known."""
    return pc.if_else(pa.array(digests.any(axis=1)), digest_array(digests),
                      pa.scalar(None, pa.binary(16))).cast(pa.binary())


class LiveDigests:
    """The live features of a layer, compactly: their keys (Arrow) and content digests (an
    (n, 2) uint64 array, zeros where not known), in the same order, and a hash index of the
    known digests' first halves — about 60 bytes a feature, so a city's cadastre fits in a few
    megabytes.

    A feature's digest covers its key (the key is one of its attributes), so a source feature
    whose digest and key are among them is that very feature as the layer holds it: it is
    found by its digest, and no key is hashed or looked up (only the match's key compared).
    ``seen`` counts how often the source holds each live feature as it is: only the others
    can have been removed, and a count over one is a repeated key."""

    def __init__(self, keys: pa.Array, digests: np.ndarray):
        self.keys, self.digests = keys, digests
        # the known digests, by their first 64 bits; should two share them (or a digest be
        # there twice), neither is indexed: a source feature matching one is compared in the
        # database instead
        indexed = np.flatnonzero(digests.any(axis=1))
        first_halves = pd.Index(digests[indexed, 0])
        if not first_halves.is_unique:
            alone = ~first_halves.duplicated(keep=False)
            indexed, first_halves = indexed[alone], first_halves[alone]
        self._first_halves, self._indexed = first_halves, indexed  # an entry's live feature: ``_indexed``
        self.seen = np.zeros(len(keys), dtype=np.int32)  # how often the source held each as it is

    @classmethod
    def from_aggregates(cls, rows) -> LiveDigests:
        """From rows of (the keys run together in UTF-8, each key's length in bytes as a
        big-endian int4, each key's digest as 16 bytes or 16 zeros), as the database
        aggregates them from layer_features (gisapproval.layerversions); a row of nulls
        (aggregates over no feature) holds none."""
        keys, digests = [], []
        for text, lengths, blob in rows:
            if lengths is None:
                continue
            size = np.frombuffer(lengths, dtype=">i4")
            offsets = np.zeros(len(size) + 1, dtype=np.int32)
            np.cumsum(size, out=offsets[1:])
            keys.append(pa.StringArray.from_buffers(len(size), pa.py_buffer(offsets), pa.py_buffer(text)))
            digests.append(np.frombuffer(blob, dtype="<u8").reshape(-1, 2))
        return cls(pa.chunked_array(keys, type=pa.string()).combine_chunks(),
                   np.concatenate(digests) if digests else np.empty((0, 2), dtype="<u8"))

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, digests: np.ndarray, keys: pa.Array) -> np.ndarray:
        """Each row's position among the live features with its (known) digest and its key,
        else -1. Looked up by the digest's first 64 bits, then the second compared. The key is
        checked too: the digest covers the key's value, not which attribute is the key (the
        catalogue may have named another)."""
        at = np.full(len(digests), -1)
        if not len(self._indexed) or not len(digests):
            return at
        entry = self._first_halves.get_indexer(digests[:, 0])
        rows = np.flatnonzero(entry >= 0)
        at[rows] = self._indexed[entry[rows]]
        rows = rows[self.digests[at[rows], 1] == digests[rows, 1]]
        match = np.zeros(len(digests), dtype=bool)
        if len(rows):
            same_key = pc.equal(self.keys.take(pa.array(at[rows], type=pa.int64())),
                                keys.take(pa.array(rows, type=pa.int64())))
            match[rows] = pc.fill_null(same_key, False).to_numpy(zero_copy_only=False)
        return np.where(match, at, -1)

    def saw(self, at: np.ndarray) -> None:
        """Note that source features were the live features at these positions (``find``), as they are."""
        if len(at):
            self.seen += np.bincount(at, minlength=len(self.seen)).astype(np.int32)

    def removed(self, other_keys: pa.ChunkedArray) -> list[str]:
        """The live keys a source no longer holds: of the live features it did not hold as they
        are, those whose key is none of its other features' keys (``other_keys``)."""
        unseen = self.keys.filter(pa.array(self.seen == 0))
        if not len(unseen) or not len(other_keys):
            return unseen.to_pylist()
        held = np.zeros(len(unseen), dtype=bool)
        at = pc.index_in(other_keys, value_set=unseen).combine_chunks().drop_null()
        held[at.to_numpy(zero_copy_only=False).astype(np.int64)] = True
        return unseen.filter(pa.array(~held)).to_pylist()

    def repeated(self, other_keys: pa.Array, other_counts: np.ndarray) -> dict[str, int]:
        """Keys of live features the source held as they are more than once, or as they are and
        also otherwise (``other_keys``, distinct, held ``other_counts`` times): key -> times."""
        also = pc.fill_null(pc.index_in(self.keys, value_set=other_keys), -1).to_numpy().astype(np.int64)
        times = self.seen + np.where(also >= 0, np.append(other_counts, 0)[also], 0)
        twice = np.flatnonzero((self.seen > 0) & (times > 1))
        return dict(zip(self.keys.take(pa.array(twice, type=pa.int64())).to_pylist(), times[twice].tolist(),
                        strict=True))


@dataclass
class _Read:
    """A batch read, its attributes checked and, on a re-import, its rows' digests computed as
    they would be stored if their shapes are (the half of a batch's work that needs no live
    digests)."""

    start: int
    good: np.ndarray
    keys: pa.Array
    attrs: pa.Array
    raw: pa.Array
    key_at: Callable[[int], str]
    digests: np.ndarray | None = None
    as_is: np.ndarray | None = None  # which source WKB are stored with only their header rewritten


def _read_batch(rb, mapping, geom_col, start, name, spec, shape: _Shape, report: SourceReport,
                reimport: bool) -> _Read:
    n = rb.num_rows
    good = np.ones(n, dtype=bool)
    raw_keys = rb.column(mapping[spec.feature_key])
    key_cache: list[str] | None = None

    def key_at(i: int) -> str:
        nonlocal key_cache
        if key_cache is None:
            key_cache = [str(v).strip() if v is not None else "" for v in raw_keys.to_pylist()]
        return key_cache[i] or f"#{start + i + 1}"

    columns: dict[str, pa.Array] = {}
    for attr, typ in spec.attributes.items():
        col = rb.column(mapping[attr])
        fast = _fast_column(col, typ)
        if fast is None:  # name every bad value of this column
            values = []
            for i, value in enumerate(col.to_pylist()):
                try:
                    values.append(_cast(value, typ))
                except ValueError as exc:
                    report.problem(f"{_label(name, key_at(i), start + i)}, field {attr!r}", f"value {exc}",
                                   key_at(i), attr, start + i)
                    good[i] = False
                    values.append(None)
            fast = pa.array(values, type=ARROW_TYPES[typ])
        allowed = spec.allowed.get(attr)
        if allowed:
            inside = pc.fill_null(pc.is_in(fast, value_set=pa.array(allowed, type=ARROW_TYPES[typ])), True)
            for i in np.flatnonzero(~inside.to_numpy(zero_copy_only=False)):
                value = fast[i].as_py()
                report.problem(f"{_label(name, key_at(i), start + i)}, field {attr!r}",
                               f"value {value!r} is not one of {', '.join(map(str, allowed))}", key_at(i), attr,
                               start + i)
                good[i] = False
        columns[attr] = fast
    raw = rb.column(geom_col)
    if not pa.types.is_binary(raw.type):
        raw = raw.cast(pa.binary())
    read = _Read(start, good, columns[spec.feature_key].cast(pa.string()),
                 attrs_json(columns, spec.attributes), raw, key_at)  # attrs: null where a value was bad
    if reimport and shape.transformer is None:
        head, prefix = _ewkb_heads(spec.geometry_type, shape.srid)
        read.as_is = _stored_as_is(raw, head)
        read.digests = _digests(read.attrs, pa.scalar(b"\x00" + prefix.as_py(), pa.binary()),
                                pc.binary_slice(raw, 5, _TO_END))
    return read


def _finish_batch(read: _Read, name, spec, shape: _Shape, report: SourceReport, known: LiveDigests | None) -> Batch:
    good, keys, attrs, raw, key_at, start = read.good, read.keys, read.attrs, read.raw, read.key_at, read.start
    n = len(good)
    unchanged = np.zeros(n, dtype=bool)
    if known and read.digests is not None:  # a live feature as it is needs no second check
        at = known.find(read.digests, keys)
        unchanged = good & read.as_is & (at >= 0)
        known.saw(at[unchanged])
    todo = np.flatnonzero(~unchanged)
    raw = raw.take(pa.array(todo, type=pa.int64())) if len(todo) < n else raw
    # the stored EWKB straight from the source's WKB where its header allows (untouched shapes)
    if shape.transformer is None:
        ewkb, as_stored = _ewkb_from_source(raw, spec.geometry_type, shape.srid)
    else:
        ewkb, as_stored = pa.nulls(len(todo), pa.binary()), np.zeros(len(todo), dtype=bool)
    shapes, changed = _check_geometries(raw.to_numpy(zero_copy_only=False), todo, name, key_at, start, shape,
                                        report, good)
    # written from the checked shape: reprojected, repaired, or not in the layer's form in the source
    anew = good[todo] & (changed | ~as_stored)
    if anew.any():
        values = ewkb.to_pylist()
        for j, value in zip(np.flatnonzero(anew), _ewkb_from_shapes(shapes[anew], spec.geometry_type, shape.srid),
                            strict=True):
            values[j] = value
        ewkb = pa.array(values, type=pa.binary())
    rows = np.flatnonzero(good & ~unchanged)  # all among ``todo``
    at = np.searchsorted(todo, rows)
    take = pa.array(rows, type=pa.int64())
    out = {"feature_key": keys.take(take), "attrs": attrs.take(take), "geom": ewkb.take(pa.array(at, type=pa.int64()))}
    out_shapes = shapes[at]
    digests = _digests(out["attrs"], _NUL, out["geom"])
    if report.content is not None:
        content = np.zeros((n, 2), dtype="<u8")
        if unchanged.any():  # found as they were read
            content[unchanged] = read.digests[unchanged]
        content[rows] = digests
        report.content(keys.filter(pa.array(good)), content[good])
    if known:  # reprojected or rewritten features can still be the live ones
        at = known.find(digests, out["feature_key"])
        same = at >= 0
        known.saw(at[same])
        if same.any():
            keep = pa.array(~same)
            out = {k: pc.filter(v, keep) for k, v in out.items()}
            out_shapes, digests = out_shapes[~same], digests[~same]
            unchanged[rows[same]] = True
    report.valid += int(np.count_nonzero(good))
    report.keys.append(pc.filter(keys, pa.array(good & ~unchanged)))
    report.unchanged += int(np.count_nonzero(unchanged))
    return Batch(pa.table({**out, "content_digest": digest_column(digests),
                           "centre_web": _centres_web(out_shapes, shape.to_web),
                           "geom_web": _web_ewkb(out["geom"], out_shapes, spec.geometry_type, shape.to_web)}))


# Bytes before the coordinates in the EWKB (with SRID) of a shape with one part and one ring
# (most features): after them the coordinates follow each other, 16 bytes per point.
EWKB_HEAD_OF_SIMPLE = {"Point": 9, "LineString": 13, "Polygon": 17, "MultiLineString": 22, "MultiPolygon": 26}


def _web_ewkb(ewkb: pa.Array, shapes: np.ndarray, geometry_type: str, to_web: Transformer) -> pa.Array:
    """The shapes in web mercator (EPSG:3857) as EWKB, the copy vector tiles are cut from. A
    shape of one part and one ring (most features) is reprojected in its stored EWKB, its
    coordinates read, transformed and written back in place for the whole batch at once; any
    other goes through shapely."""
    n = len(ewkb)
    offsets = value_offsets(ewkb).astype(np.int64)
    data = np.frombuffer(ewkb.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].copy() if n else \
        np.empty(0, dtype=np.uint8)
    start = offsets[:-1] - offsets[0]
    points = shapely.get_num_coordinates(shapes).astype(np.int64)
    head = EWKB_HEAD_OF_SIMPLE.get(geometry_type)
    simple = np.diff(offsets) == (head or 0) + 16 * points if head else np.zeros(n, dtype=bool)
    if simple.any():
        counts = points[simple]
        # where each point's x begins: its shape's coordinates follow its head, 16 bytes a point
        before = np.cumsum(counts) - counts  # points of the shapes before it
        x_at = np.repeat(start[simple] + head - 16 * before, counts) + 16 * np.arange(counts.sum())
        doubles, words = _at_every_byte(data, "<f8"), _at_every_byte(data, "<u4")
        doubles[x_at], doubles[x_at + 8] = to_web.transform(doubles[x_at], doubles[x_at + 8])
        words[start[simple] + 5] = 3857  # the SRID, after the byte order and the type
    web = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer((offsets - offsets[0]).astype(np.int32)),
                                                  pa.py_buffer(data)])
    if simple.all():
        return web
    values = web.to_pylist()
    others = np.flatnonzero(~simple)
    for i, value in zip(others, _ewkb_from_shapes(reproject(shapes[others], to_web), geometry_type, 3857),
                        strict=True):
        values[i] = value
    return pa.array(values, type=pa.binary())


def _at_every_byte(data: np.ndarray, dtype: str) -> np.ndarray:
    """A view of ``data`` (bytes) whose item ``k`` is the value of ``dtype`` that begins at byte
    ``k`` (unaligned, overlapping): values at any offsets read and written in bulk, in place."""
    size = np.dtype(dtype).itemsize
    return np.ndarray((max(len(data) - size + 1, 0),), dtype=dtype, buffer=data, strides=(1,))


_POINT_EWKB = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")])


def _centres_web(shapes: np.ndarray, to_web: Transformer) -> pa.Array:
    """The centre of each shape's bounding box in web mercator (EPSG:3857) as point EWKB,
    vectorised: the map's small-scale tiles count parcels by it (migration 0010)."""
    box = shapely.bounds(shapes) if len(shapes) else np.empty((0, 4))
    points = np.empty(len(box), dtype=_POINT_EWKB)
    points["order"], points["type"], points["srid"] = 1, 1 | 0x20000000, 3857
    points["x"], points["y"] = to_web.transform((box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2)
    return pa.array(points.view(f"S{_POINT_EWKB.itemsize}"), type=pa.binary(_POINT_EWKB.itemsize)).cast(pa.binary())


TYPE_NAMES = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
                       "MultiPolygon", "GeometryCollection"])


def _check_geometries(wkb: np.ndarray, rows: np.ndarray, name, key_at, start, shape: _Shape, report: SourceReport,
                      good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check the geometries (``wkb``) of the batch's ``rows`` (vectorised): missing, empty, of the
    wrong type, invalid (repaired when asked) or outside the jurisdiction. Marks bad rows in
    ``good``; returns the shapes (reprojected, repaired) and which of them differ from the source's."""
    changed = np.zeros(len(rows), dtype=bool)
    if not len(rows):
        return np.empty(0, dtype=object), changed
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    if shape.transformer is not None:
        geoms = reproject(geoms, shape.transformer)
        changed[:] = True
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    types = shapely.get_type_id(geoms)
    for j in np.flatnonzero(missing | empty):
        i = rows[j]
        _geom_problem(report, name, key_at(i), start + i, "empty geometry" if empty[j] else "no geometry")
        good[i] = False
    present = ~(missing | empty)
    wrong = present & ~np.isin(TYPE_NAMES[np.clip(types, 0, 7)], list(shape.accepted))
    for j in np.flatnonzero(wrong):
        i = rows[j]
        _geom_problem(report, name, key_at(i), start + i,
                      f"geometry is a {TYPE_NAMES[types[j]]}, the layer takes {shape.spec.geometry_type}")
        good[i] = False
    check = present & ~wrong
    valid = np.ones(len(rows), dtype=bool)
    valid[check] = shapely.is_valid(geoms[check])
    for j in np.flatnonzero(check & ~valid):
        i = rows[j]
        reason = shapely.is_valid_reason(geoms[j])
        if shape.options.repair:
            fixed = _fix(geoms[j], shape.accepted)
            if fixed is None or fixed.is_empty:
                _geom_problem(report, name, key_at(i), start + i, f"invalid geometry ({reason}) and repair left nothing")
                good[i] = False
            else:
                geoms[j] = fixed
                changed[j] = True
                report.repairs.append(Problem(_label(name, key_at(i), start + i), f"repaired: {reason}", key_at(i),
                                              "geometry"))
        else:
            _geom_problem(report, name, key_at(i), start + i,
                          f"invalid geometry: {reason} (import with the repair option to fix it with make_valid)")
            good[i] = False
    ok = check & good[rows]
    if ok.any():
        x0, y0, x1, y1 = shape.extent
        b = shapely.bounds(geoms[ok])
        inside = np.ones(len(rows), dtype=bool)
        inside[ok] = (b[:, 0] >= x0) & (b[:, 1] >= y0) & (b[:, 2] <= x1) & (b[:, 3] <= y1)
        for j in np.flatnonzero(ok & ~inside):
            i = rows[j]
            bx0, by0, bx1, by1 = shapely.bounds(geoms[j])
            _geom_problem(report, name, key_at(i), start + i,
                          f"lies outside the jurisdiction (bounds {bx0:.1f}, {by0:.1f}, {bx1:.1f}, {by1:.1f} in "
                          f"EPSG:{shape.srid})")
            good[i] = False
    return geoms, changed


def value_offsets(arr: pa.Array) -> np.ndarray:
    """Where each value of a binary or string array (large or not) begins in its data buffer,
    and where the last ends: one more offset than values, the array's own slice (no copy)."""
    wide = pa.types.is_large_binary(arr.type) or pa.types.is_large_string(arr.type)
    return np.frombuffer(arr.buffers()[1], dtype=np.int64 if wide else np.int32)[arr.offset:arr.offset + len(arr) + 1]


def utf8_bytes(col: pa.Array) -> np.ndarray:
    """The bytes of a string array's values, run together (no copy)."""
    if not len(col) or col.buffers()[2] is None:
        return np.empty(0, dtype=np.uint8)
    offsets = value_offsets(col)
    return np.frombuffer(col.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]


def attrs_json(columns: dict[str, pa.Array], types: dict[str, str]) -> pa.Array:
    """Each row's attributes as one JSON object (text), in catalogue order, built column-wise
    in one join: the names and quotes are the literal text between the columns' values.
    Numbers are written as Arrow writes a double (shortest round-trip form), which jsonb reads
    as the same number jsonb_build_object makes of the double."""
    parts: list = ["{"]
    for i, (name, typ) in enumerate(types.items()):
        col = columns[name]
        parts[-1] += ("," if i else "") + json.dumps(name, ensure_ascii=False) + ":"
        if typ == "str":
            text = utf8_bytes(col)
            if (text < 0x20).any():  # control characters: as json writes them, quotes and all
                parts += [pa.array([json.dumps(v, ensure_ascii=False) for v in col.to_pylist()], type=pa.string()),
                          ""]
                continue
            if ((text == 0x22) | (text == 0x5C)).any():  # quotes and backslashes
                col = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
            parts[-1] += '"'
            parts += [col, '"']
        else:  # whole or finite numbers, checked above
            parts += [col.cast(pa.string()), ""]
    parts[-1] += "}"
    return pc.binary_join_element_wise(*parts, "")


WKB_TYPE_CODES = {"Point": 1, "LineString": 2, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5, "MultiPolygon": 6}


_TO_END = 2**31 - 1  # binary_slice's stop for "to the end" (without one it fails on nulls)


def _ewkb_heads(geometry_type: str, srid: int) -> tuple[pa.Scalar, pa.Scalar]:
    """The first 5 bytes of a source WKB that can be stored as it is (little-endian, 2D, of the
    layer's type), and the 9 bytes that replace them in the stored EWKB (with the SRID)."""
    code = WKB_TYPE_CODES[geometry_type]
    return (pa.scalar(b"\x01" + struct.pack("<I", code), pa.binary()),
            pa.scalar(b"\x01" + struct.pack("<II", code | 0x20000000, srid), pa.binary()))


def _ewkb_from_source(raw: pa.Array, geometry_type: str, srid: int) -> tuple[pa.Array, np.ndarray]:
    """The stored EWKB of each source WKB that is already little-endian, 2D and of the layer's
    type (only its header is rewritten, to carry the SRID; null for the others), and which
    rows those are."""
    head, prefix = _ewkb_heads(geometry_type, srid)
    fits = _stored_as_is(raw, head)
    joined = pc.binary_join_element_wise(prefix, pc.binary_slice(raw, 5, _TO_END), pa.scalar(b"", pa.binary()))
    ewkb = pc.if_else(pa.array(fits), joined, pa.scalar(None, pa.binary()))
    return ewkb, fits


def _stored_as_is(raw: pa.Array, head: pa.Scalar) -> np.ndarray:
    """Which source WKB begin with ``head`` (``_ewkb_heads``): stored with only their header rewritten."""
    return pc.fill_null(pc.equal(pc.binary_slice(raw, 0, 5), head), False).to_numpy(zero_copy_only=False)


def _ewkb_from_shapes(shapes: np.ndarray, geometry_type: str, srid: int) -> list[bytes]:
    """Shapes' stored EWKB: 2D, in the layer's (multi) type, little-endian, with the storage SRID."""
    if not len(shapes):
        return []
    from .layerstore import to_multi

    multi = shapely.set_srid(to_multi(shapes, geometry_type), srid)
    return list(shapely.to_wkb(multi, include_srid=True, output_dimension=2, byte_order=1))


def _label(name: str, key: str, position: int) -> str:
    return f"{name}: feature {key!r}" if not key.startswith("#") else f"{name}: feature #{position + 1}"


def _geom_problem(report: SourceReport, name: str, key: str, position: int, message: str) -> None:
    report.problem(_label(name, key, position), message, key, "geometry", position)
