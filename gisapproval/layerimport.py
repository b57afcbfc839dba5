"""Reading and validating a layer source before anything in the database changes.

Vector sources (GeoPackage, GeoJSON, zipped Shapefile) are streamed in Arrow batches through
pyogrio, so memory stays bounded whatever the file's size. Each batch is normalised once —
reprojected to the storage CRS, promoted to the layer's geometry type, validated — and
handed on as rows ready for COPY. Every problem is reported with the feature's key (or its
position) and the field; nothing is written while any problem remains.
"""

from __future__ import annotations

import json
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from .catalogue import LayerSpec
from .errors import InputError
from .layerstore import content_hash, ewkb_hex, to_multi

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
    keys: list[str]
    attrs_json: list[str]
    hashes: list[str]
    ewkb: np.ndarray


@dataclass
class SourceReport:
    features: int = 0
    repairs: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0
    source_crs: str | None = None

    def problem(self, where: str, message: str) -> None:
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(Problem(where, message))
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


def _batch(rb, mapping, geom_col, start, name, spec, srid, extent, transformer, accepted, options, report) -> Batch:
    n = rb.num_rows
    columns = {a: rb.column(mapping[a]).to_pylist() for a in spec.attributes}
    wkb = rb.column(geom_col).to_numpy(zero_copy_only=False)
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    geoms = shapely.force_2d(geoms)
    if transformer is not None:
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    keys: list[str] = []
    attrs_json: list[str] = []
    good = np.ones(n, dtype=bool)
    key_field = spec.feature_key
    for i in range(n):
        raw_key = columns[key_field][i]
        key = str(raw_key).strip() if raw_key is not None else ""
        label = f"{name}: feature {key!r}" if key else f"{name}: feature #{start + i + 1}"
        record = {}
        for attr, typ in spec.attributes.items():
            try:
                record[attr] = _cast(columns[attr][i], typ)
            except ValueError as exc:
                report.problem(f"{label}, field {attr!r}", f"value {exc}")
                good[i] = False
                continue
            allowed = spec.allowed.get(attr)
            if allowed and record[attr] not in allowed:
                report.problem(f"{label}, field {attr!r}",
                               f"value {record[attr]!r} is not one of {', '.join(map(str, allowed))}")
                good[i] = False
        keys.append(key or f"#{start + i + 1}")
        attrs_json.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
    # geometry checks, vectorised where shapely allows
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    types = shapely.get_type_id(geoms)
    type_names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString",
                           "MultiPolygon", "GeometryCollection"])
    for i in np.flatnonzero(missing | empty):
        report.problem(_label(name, keys[i], start + i), "empty geometry" if empty[i] else "no geometry")
        good[i] = False
    present = ~(missing | empty)
    wrong = present & ~np.isin(type_names[np.clip(types, 0, 7)], list(accepted))
    for i in np.flatnonzero(wrong):
        report.problem(_label(name, keys[i], start + i),
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
                report.problem(_label(name, keys[i], start + i), f"invalid geometry ({reason}) and repair left nothing")
                good[i] = False
            else:
                geoms[i] = fixed
                report.repairs.append(Problem(_label(name, keys[i], start + i), f"repaired: {reason}"))
        else:
            report.problem(_label(name, keys[i], start + i),
                           f"invalid geometry: {reason} (import with the repair option to fix it with make_valid)")
            good[i] = False
    inside = np.ones(n, dtype=bool)
    ok = check & good
    if ok.any():
        b = shapely.bounds(geoms[ok])
        inside[ok] = (b[:, 0] >= extent[0]) & (b[:, 1] >= extent[1]) & (b[:, 2] <= extent[2]) & (b[:, 3] <= extent[3])
    for i in np.flatnonzero(ok & ~inside):
        x0, y0, x1, y1 = shapely.bounds(geoms[i])
        report.problem(_label(name, keys[i], start + i),
                       f"lies outside the jurisdiction (bounds {x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f} in EPSG:{srid})")
        good[i] = False
    idx = np.flatnonzero(good)
    geoms_ok = to_multi(geoms[idx], spec.geometry_type) if len(idx) else geoms[idx]
    hexes = ewkb_hex(geoms_ok, srid) if len(idx) else np.array([], dtype=object)
    out_keys = [keys[i] for i in idx]
    out_attrs = [attrs_json[i] for i in idx]
    return Batch(out_keys, out_attrs, [content_hash(h, a) for h, a in zip(hexes, out_attrs)], hexes)


def _label(name: str, key: str, position: int) -> str:
    return f"{name}: feature {key!r}" if not key.startswith("#") else f"{name}: feature #{position + 1}"
