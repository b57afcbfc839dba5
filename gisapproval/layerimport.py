"""Reading and validating a layer source before anything in the database changes.

Vector sources (GeoPackage, GeoJSON, zipped Shapefile) are streamed in Arrow batches through
pyogrio, so memory stays bounded whatever the file's size. Each batch is checked column by
column (Arrow compute and shapely's vectorised predicates; a Python loop runs only over the
rows of a column that needs one, to name each bad value) and handed on as an Arrow table —
key, attributes as JSON, geometry as hex EWKB — that COPY reads as CSV. Every problem is
reported with the feature's key (or its position) and the field; nothing is written while any
problem remains.
"""

from __future__ import annotations

import io
import json
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyogrio
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from .catalogue import LayerSpec
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


@dataclass
class Batch:
    """Valid rows of one source batch: feature_key, attrs (JSON text) and geom (hex EWKB in the
    layer's type and the storage SRID) — as layer_features stores them."""

    table: pa.Table

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def csv(self, **constants) -> bytes:
        """The rows as CSV for ``COPY ... (FORMAT csv)`` (no header; strings quoted), after a
        column per ``constants`` item holding that value in every row."""
        table = self.table
        for i, (name, value) in enumerate(constants.items()):
            table = table.add_column(i, name, pa.repeat(pa.scalar(value), table.num_rows))
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
        return buf.getvalue()


@dataclass
class SourceReport:
    features: int = 0
    repairs: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0
    source_crs: str | None = None

    def problem(self, where: str, message: str, feature: str | None = None, field: str | None = None) -> None:
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(Problem(where, message, feature, field))
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


def read_vector(
    path: Path, name: str, spec: LayerSpec, srid: int, extent: tuple[float, float, float, float],
    options: ImportOptions, report: SourceReport, batch_size: int = 50_000,
) -> Iterator[Batch]:
    """Stream validated, normalised batches from a vector source; problems go to ``report``.

    A file-level problem (no CRS, missing attribute columns, unreadable file) raises at once.
    """
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
            raise InputError(f"the file holds several layers ({', '.join(names)}) and none is named {wanted!r}",
                             where=name)
        layer_name = wanted
    try:
        ctx = pyogrio.raw.open_arrow(path, layer=layer_name, use_pyarrow=True, batch_size=batch_size)
        meta, reader = ctx.__enter__()
    except Exception as exc:
        raise InputError(f"cannot be read as a vector file: {exc}", where=name) from None
    try:
        fields = list(meta["fields"])
        mapping = match_fields(spec.attributes, fields)
        missing = [a for a in spec.attributes if a not in mapping]
        if missing:
            raise InputError(f"missing attribute field(s) {', '.join(missing)}; the file has "
                             f"{', '.join(fields) or 'none'}", where=name)
        src_crs = resolve_crs(meta.get("crs"), options.crs, name)
        report.source_crs = src_crs.to_string()
        target = CRS.from_epsg(srid)
        transformer = None if src_crs.equals(target) else Transformer.from_crs(src_crs, target, always_xy=True)
        geom_col = meta.get("geometry_name") or "wkb_geometry"
        accepted = ACCEPTED_TYPES[spec.geometry_type]
        position = 0
        for rb in reader:
            yield _batch(rb, mapping, geom_col, position, name, spec, srid, extent, transformer, accepted, options,
                         report)
            position += rb.num_rows
        report.features = position
    finally:
        ctx.__exit__(None, None, None)


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


def _batch(rb, mapping, geom_col, start, name, spec, srid, extent, transformer, accepted, options, report) -> Batch:
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
                                   key_at(i), attr)
                    good[i] = False
                    values.append(None)
            fast = pa.array(values, type=ARROW_TYPES[typ])
        allowed = spec.allowed.get(attr)
        if allowed:
            inside = pc.fill_null(pc.is_in(fast, value_set=pa.array(allowed, type=ARROW_TYPES[typ])), True)
            for i in np.flatnonzero(~inside.to_numpy(zero_copy_only=False)):
                value = fast[i].as_py()
                report.problem(f"{_label(name, key_at(i), start + i)}, field {attr!r}",
                               f"value {value!r} is not one of {', '.join(map(str, allowed))}", key_at(i), attr)
                good[i] = False
        columns[attr] = fast
    # geometry checks, vectorised
    wkb = rb.column(geom_col)
    geoms = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False), on_invalid="ignore")
    changed = transformer is not None
    if transformer is not None:
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    types = shapely.get_type_id(geoms)
    type_names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
                           "MultiPolygon", "GeometryCollection"])
    for i in np.flatnonzero(missing | empty):
        _geom_problem(report, name, key_at(i), start + i, "empty geometry" if empty[i] else "no geometry")
        good[i] = False
    present = ~(missing | empty)
    wrong = present & ~np.isin(type_names[np.clip(types, 0, 7)], list(accepted))
    for i in np.flatnonzero(wrong):
        _geom_problem(report, name, key_at(i), start + i,
                      f"geometry is a {type_names[types[i]]}, the layer takes {spec.geometry_type}")
        good[i] = False
    check = present & ~wrong
    valid = np.ones(n, dtype=bool)
    valid[check] = shapely.is_valid(geoms[check])
    for i in np.flatnonzero(check & ~valid):
        reason = shapely.is_valid_reason(geoms[i])
        if options.repair:
            fixed = _fix(geoms[i], accepted)
            if fixed is None or fixed.is_empty:
                _geom_problem(report, name, key_at(i), start + i, f"invalid geometry ({reason}) and repair left nothing")
                good[i] = False
            else:
                geoms[i] = fixed
                changed = True
                report.repairs.append(Problem(_label(name, key_at(i), start + i), f"repaired: {reason}", key_at(i),
                                              "geometry"))
        else:
            _geom_problem(report, name, key_at(i), start + i,
                          f"invalid geometry: {reason} (import with the repair option to fix it with make_valid)")
            good[i] = False
    ok = check & good
    if ok.any():
        b = shapely.bounds(geoms[ok])
        inside = np.ones(n, dtype=bool)
        inside[ok] = (b[:, 0] >= extent[0]) & (b[:, 1] >= extent[1]) & (b[:, 2] <= extent[2]) & (b[:, 3] <= extent[3])
        for i in np.flatnonzero(ok & ~inside):
            x0, y0, x1, y1 = shapely.bounds(geoms[i])
            _geom_problem(report, name, key_at(i), start + i,
                          f"lies outside the jurisdiction (bounds {x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f} in EPSG:{srid})")
            good[i] = False
    mask = pa.array(good)
    keys = pc.filter(columns[spec.feature_key], mask).cast(pa.string())
    attrs = attrs_json({a: pc.filter(columns[a], mask) for a in spec.attributes}, spec.attributes)
    raw = None if changed else pc.filter(wkb, mask)
    return Batch(pa.table({"feature_key": keys, "attrs": attrs,
                           "geom": _ewkb_hex(raw, geoms[good], spec.geometry_type, srid)}))


def attrs_json(columns: dict[str, pa.Array], types: dict[str, str]) -> pa.Array:
    """Each row's attributes as one JSON object (text), in catalogue order, built column-wise.
    Numbers are written as Arrow writes a double (shortest round-trip form), which jsonb reads
    as the same number jsonb_build_object makes of the double."""
    parts: list = []
    for i, (name, typ) in enumerate(types.items()):
        col = columns[name]
        if typ == "str":
            if pc.any(pc.match_substring_regex(col, r"[\x00-\x1f]")).as_py():  # control characters: json escapes
                value = pa.array([json.dumps(v, ensure_ascii=False) for v in col.to_pylist()], type=pa.string())
            else:
                escaped = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
                value = pc.binary_join_element_wise('"', escaped, '"', "")
        else:  # whole or finite numbers, checked above
            value = col.cast(pa.string())
        parts += [("{" if i == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":", value]
    return pc.binary_join_element_wise(*parts, "}", "")


WKB_TYPE_CODES = {"Point": 1, "LineString": 2, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5, "MultiPolygon": 6}


def _ewkb_hex(raw: pa.Array | None, geoms: np.ndarray, geometry_type: str, srid: int) -> pa.Array:
    """The geometries as hex EWKB, 2D, in the layer's (multi) type, with the storage SRID.
    ``raw``: the source's own WKB when the shapes are untouched — when every one is already
    little-endian 2D of the layer's type, only its header is rewritten."""
    code = WKB_TYPE_CODES[geometry_type]
    if raw is not None:
        values = raw.to_pylist()
        head = b"\x01" + struct.pack("<I", code)
        if all(v[:5] == head for v in values):
            prefix = (b"\x01" + struct.pack("<II", code | 0x20000000, srid)).hex()
            return pa.array([prefix + v[5:].hex() for v in values], type=pa.string())
    from .layerstore import to_multi

    shapes = shapely.set_srid(to_multi(geoms, geometry_type), srid)
    return pa.array(shapely.to_wkb(shapes, hex=True, include_srid=True, output_dimension=2), type=pa.string())


def _label(name: str, key: str, position: int) -> str:
    return f"{name}: feature {key!r}" if not key.startswith("#") else f"{name}: feature #{position + 1}"


def _geom_problem(report: SourceReport, name: str, key: str, position: int, message: str) -> None:
    report.problem(_label(name, key, position), message, key, "geometry")
