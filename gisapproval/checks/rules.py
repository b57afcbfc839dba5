"""The department rule sets (layers/rules/*.toml), read and validated at start-up.

Every problem names the file and the rule: an unknown type, department or layer, a missing
or mistyped parameter, a duplicate rule id, an unknown severity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..catalogue import default_catalogue
from ..config import LAYERS_DIR, read_toml
from ..errors import ConfigurationError
from .registry import evaluator_spec

SEVERITIES = ("fail", "warn")
RULES_DIR = LAYERS_DIR / "rules"
TEMPLATE_FIELDS = {"measured", "limit", "unit", "detail"}


@dataclass(frozen=True)
class Rule:
    id: str
    department: str
    type: str
    title_zh: str
    title_en: str
    layers: tuple[str, ...]
    severity: str
    unit: str
    message_zh: str
    message_en: str
    params: dict = field(default_factory=dict)
    adds_department: str | None = None

    @property
    def kind(self) -> str:
        return evaluator_spec(self.type).kind


def _departments() -> set[str]:
    data = read_toml(LAYERS_DIR / "departments.toml", "department list")
    return {d["code"] for d in data.get("department", [])}


def _check_params(rule: dict, label: str) -> dict:
    spec = evaluator_spec(rule["type"], where=label)
    params = dict(rule.get("params", {}))
    for name, (types, required) in spec.params.items():
        if name not in params:
            if required:
                raise ConfigurationError(f"parameter {name!r} is missing", where=label)
            continue
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ConfigurationError(f"parameter {name!r} has the wrong type ({type(value).__name__})", where=label)
        if isinstance(value, (int, float)) and (math.isnan(value) or value < 0):
            raise ConfigurationError(f"parameter {name!r} must be a number >= 0, got {value!r}", where=label)
    unknown = set(params) - set(spec.params)
    if unknown:
        raise ConfigurationError(f"unknown parameter(s) {', '.join(sorted(unknown))} for type {rule['type']!r}",
                                 where=label)
    _check_tables(rule["type"], params, label)
    return params


def _tiers(tiers, label: str, what: str) -> None:
    if not isinstance(tiers, list) or not tiers:
        raise ConfigurationError(f"{what} must be a non-empty list of tiers", where=label)
    last = -1.0
    for t in tiers:
        if not isinstance(t, dict) or set(t) != {"up_to_height_m", "setback_m"}:
            raise ConfigurationError(f"{what}: each tier needs up_to_height_m and setback_m", where=label)
        if t["up_to_height_m"] <= last or t["setback_m"] < 0:
            raise ConfigurationError(f"{what}: tiers must rise in height with setbacks >= 0", where=label)
        last = t["up_to_height_m"]
    if not math.isinf(last):
        raise ConfigurationError(f"{what}: the last tier must be up_to_height_m = inf", where=label)


def _check_tables(type_name: str, params: dict, label: str) -> None:
    for table in ("compatible", "allowed_land_use", "where"):
        for key, values in params.get(table, {}).items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ConfigurationError(f"{table}.{key} must be a list of codes", where=label)
    if type_name == "road_setback":
        for road_class, tiers in params["setbacks"].items():
            _tiers(tiers, label, f"setbacks.{road_class}")
    if type_name == "boundary_setback":
        _tiers(params["tiers"], label, "tiers")
    if type_name == "zoning_ratio":
        if params["measure"] not in ("far", "coverage", "green"):
            raise ConfigurationError("measure must be far, coverage or green", where=label)
        if params["bound"] not in ("max", "min"):
            raise ConfigurationError("bound must be max or min", where=label)
    if type_name == "raster_max" and params["measure"] not in ("value", "slope_deg"):
        raise ConfigurationError("measure must be value or slope_deg", where=label)
    if params.get("holder_mismatch") not in (None, "warn", "fail", "pass"):
        raise ConfigurationError("holder_mismatch must be warn, fail or pass", where=label)


def _rule(entry: dict, department: str, label: str, departments: set[str], layers: dict) -> Rule:
    for key in ("id", "type", "title_zh", "title_en", "severity", "message_zh", "message_en"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigurationError(f"missing or empty {key!r}", where=label)
    if entry["severity"] not in SEVERITIES:
        raise ConfigurationError(f"severity must be one of {', '.join(SEVERITIES)}, not {entry['severity']!r}",
                                 where=label)
    rule_layers = entry.get("layers")
    if not isinstance(rule_layers, list):
        raise ConfigurationError("'layers' must be a list of layer names", where=label)
    for name in rule_layers:
        if name not in layers:
            raise ConfigurationError(f"unknown layer {name!r}; the catalogue has {', '.join(sorted(layers))}",
                                     where=label)
    spec = evaluator_spec(entry["type"], where=label)
    kinds = {layers[n].kind for n in rule_layers}
    if spec.kind == "raster" and kinds != {"raster"}:
        raise ConfigurationError("a raster rule reads exactly raster layers", where=label)
    if spec.kind == "vector" and "raster" in kinds:
        raise ConfigurationError("a vector rule cannot read a raster layer", where=label)
    adds = entry.get("adds_department")
    if adds is not None and adds not in departments:
        raise ConfigurationError(f"adds_department names unknown department {adds!r}", where=label)
    for lang in ("message_zh", "message_en"):
        import string

        names = {f for _, f, _, _ in string.Formatter().parse(entry[lang]) if f}
        if names - TEMPLATE_FIELDS:
            raise ConfigurationError(f"{lang} uses unknown placeholder(s) {', '.join(sorted(names - TEMPLATE_FIELDS))}"
                                     f"; use {', '.join(sorted(TEMPLATE_FIELDS))}", where=label)
    return Rule(id=entry["id"], department=department, type=entry["type"], title_zh=entry["title_zh"],
                title_en=entry["title_en"], layers=tuple(rule_layers), severity=entry["severity"],
                unit=str(entry.get("unit", "")), message_zh=entry["message_zh"], message_en=entry["message_en"],
                params=_check_params(entry, label), adds_department=adds)


def load_rules(directory: Path | None = None) -> dict[str, Rule]:
    """Every rule of every department file in ``directory``, by id (ids are unique)."""
    directory = Path(directory or RULES_DIR)
    files = sorted(p for p in directory.glob("*.toml") if not p.name.startswith("_"))
    if not files:
        raise ConfigurationError("no rule sets found", where=str(directory))
    departments = _departments()
    layers = default_catalogue()
    rules: dict[str, Rule] = {}
    for path in files:
        data = read_toml(path, "rule set")
        dept = data.get("department")
        if dept not in departments:
            raise ConfigurationError(f"unknown or missing department {dept!r}", where=str(path))
        for i, entry in enumerate(data.get("rule", [])):
            label = f"{path}: rule #{i + 1}" + (f" ({entry.get('id')})" if entry.get("id") else "")
            rule = _rule(entry, dept, label, departments, layers)
            if rule.id in rules:
                raise ConfigurationError(f"rule id {rule.id!r} is used twice", where=label)
            rules[rule.id] = rule
    return rules


@lru_cache(maxsize=1)
def default_rules() -> dict[str, Rule]:
    return load_rules()
