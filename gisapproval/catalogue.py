"""The layer catalogue (layers/catalogue.toml), read and validated at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .config import LAYERS_DIR, read_toml
from .errors import ConfigurationError

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
ATTRIBUTE_TYPES = {"str": str, "int": int, "float": float}
GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


@dataclass(frozen=True)
class LayerSpec:
    name: str
    title_zh: str
    title_en: str
    department: str
    kind: str
    coverage: str
    geometry_type: str | None = None
    feature_key: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    allowed: dict[str, tuple] = field(default_factory=dict)
    used_by: tuple[str, ...] = ()
    source_layer: str | None = None
    source_file: str | None = None
    impact_distance_m: float = 0.0  # a project this close to a changed feature is affected by the change


def _spec(entry: dict, index: int, where: str, departments: set[str] | None) -> LayerSpec:
    name = entry.get("name")
    label = f"{where}: layer #{index + 1}" + (f" ({name})" if name else "")
    for key in ("name", "title_zh", "title_en", "department", "kind", "coverage"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigurationError(f"missing or empty {key!r}", where=label)
    if entry["kind"] not in ("vector", "raster"):
        raise ConfigurationError(f"kind must be 'vector' or 'raster', not {entry['kind']!r}", where=label)
    if departments is not None and entry["department"] not in departments:
        raise ConfigurationError(f"unknown department {entry['department']!r}", where=label)
    attributes = dict(entry.get("attributes", {}))
    for attr, typ in attributes.items():
        if not IDENTIFIER.fullmatch(attr):
            raise ConfigurationError(f"attribute name {attr!r} must be letters, digits and '_' (not first a digit)",
                                     where=label)
        if typ not in ATTRIBUTE_TYPES:
            raise ConfigurationError(f"attribute {attr!r} has unknown type {typ!r} (str, int, float)", where=label)
    allowed = {k: tuple(v) for k, v in entry.get("allowed", {}).items()}
    for attr in allowed:
        if attr not in attributes:
            raise ConfigurationError(f"allowed values given for undeclared attribute {attr!r}", where=label)
    if entry["kind"] == "vector":
        if entry.get("geometry_type") not in GEOMETRY_TYPES:
            raise ConfigurationError(
                f"geometry_type must be one of {sorted(GEOMETRY_TYPES)}, not {entry.get('geometry_type')!r}", where=label)
        key = entry.get("feature_key")
        if not key or key not in attributes:
            raise ConfigurationError(f"feature_key {key!r} must be one of the declared attributes", where=label)
    return LayerSpec(
        name=entry["name"], title_zh=entry["title_zh"], title_en=entry["title_en"],
        department=entry["department"], kind=entry["kind"], coverage=entry["coverage"],
        geometry_type=entry.get("geometry_type"), feature_key=entry.get("feature_key"),
        attributes=attributes, allowed=allowed, used_by=tuple(entry.get("used_by", ())),
        source_layer=entry.get("source_layer"), source_file=entry.get("source_file"),
        impact_distance_m=_distance(entry.get("impact_distance_m", 0.0), label),
    )


def _distance(value, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigurationError(f"impact_distance_m must be a distance in metres >= 0, got {value!r}", where=label)
    return float(value)


def load_catalogue(path: Path | None = None, departments: set[str] | None = None) -> dict[str, LayerSpec]:
    path = path or LAYERS_DIR / "catalogue.toml"
    data = read_toml(path, "layer catalogue")
    specs: dict[str, LayerSpec] = {}
    for i, entry in enumerate(data.get("layer", [])):
        spec = _spec(entry, i, str(path), departments)
        if spec.name in specs:
            raise ConfigurationError(f"layer {spec.name!r} is declared twice", where=str(path))
        specs[spec.name] = spec
    if not specs:
        raise ConfigurationError("no layers declared", where=str(path))
    return specs


@lru_cache(maxsize=1)
def default_catalogue() -> dict[str, LayerSpec]:
    return load_catalogue()
