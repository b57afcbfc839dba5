"""Rule sets are data, validated at start-up with errors naming the file and the rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gisapproval.checks.registry import EVALUATORS, UnknownRuleTypeError, get_evaluator
from gisapproval.checks.rules import RULES_DIR, default_rules, load_rules
from gisapproval.errors import ConfigurationError


def test_shipped_rule_sets_cover_every_department_and_design_check():
    rules = default_rules()
    assert {r.department for r in rules.values()} == {"land", "planning", "construction", "fire", "heritage"}
    assert {"parcel_containment", "parcel_land_use", "farmland_overlap", "eco_redline_overlap", "zoning_use",
            "floor_area_ratio", "building_coverage", "green_ratio", "height_limit", "road_setback",
            "boundary_setback", "geohazard", "slope", "flood_depth", "fire_station_distance", "fire_separation",
            "fire_access", "heritage_zone", "project_overlap"} <= set(rules)
    assert rules["heritage_zone"].adds_department == "heritage"
    for rule in rules.values():
        assert callable(get_evaluator(rule.type))


@pytest.fixture()
def rules_dir(tmp_path):
    for f in RULES_DIR.glob("*.toml"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("file,old,new,message", [
    ("fire.toml", 'type = "nearest_distance"', 'type = "teleport"', "unknown rule type 'teleport'"),
    ("land.toml", 'layers = ["basic_farmland"]', 'layers = ["moon"]', "unknown layer 'moon'"),
    ("land.toml", 'severity = "fail"', 'severity = "maybe"', "severity must be one of"),
    ("fire.toml", "max_distance_m = 3000.0", "max_distance_m = -1.0", "must be a number >= 0"),
    ("fire.toml", "max_distance_m = 3000.0", 'max_distance_m = "far"', "wrong type"),
    ("fire.toml", "max_distance_m = 3000.0", "", "parameter 'max_distance_m' is missing"),
    ("heritage.toml", 'adds_department = "heritage"', 'adds_department = "police"', "unknown department 'police'"),
    ("land.toml", 'id = "farmland_overlap"', 'id = "parcel_containment"', "used twice"),
    ("land.toml", "（允许 {limit} m²）{detail}", "{oops}", "unknown placeholder"),
    ("planning.toml", "branch = [{ up_to_height_m = 24.0, setback_m = 3.0 }, { up_to_height_m = inf, setback_m = 5.0 }]",
     "branch = [{ up_to_height_m = 24.0, setback_m = 3.0 }]", "last tier must be up_to_height_m = inf"),
    ("construction.toml", 'layers = ["dem"]', 'layers = ["zoning"]', "raster rule reads exactly raster layers"),
])
def test_a_broken_rule_set_is_refused_naming_file_and_rule(rules_dir, file, old, new, message):
    _edit(rules_dir / file, old, new)
    with pytest.raises(ConfigurationError, match=message) as info:
        load_rules(rules_dir)
    assert file in str(info.value)


def test_unknown_rule_type_has_its_own_error(rules_dir):
    _edit(rules_dir / "fire.toml", 'type = "nearest_distance"', 'type = "teleport"')
    with pytest.raises(UnknownRuleTypeError):
        load_rules(rules_dir)
    assert "teleport" not in EVALUATORS


def test_an_empty_rules_directory_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="no rule sets"):
        load_rules(tmp_path)
