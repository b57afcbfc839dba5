"""A registry of rule evaluators: rule type name -> dotted path ``module:function``.

An evaluator is loaded on first use. A vector evaluator returns a SELECT with the columns of
``predicates.RESULT_COLUMNS`` for the buildings (or projects) it is given; a raster evaluator
(``kind = "raster"``) computes zonal statistics in Python with rasterio.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigurationError


class UnknownRuleTypeError(ConfigurationError):
    """A rule names a type no evaluator is registered for."""


@dataclass(frozen=True)
class EvaluatorSpec:
    path: str  # "module:function"
    kind: str  # "vector" (one SELECT) or "raster" (rasterio)
    params: dict  # parameter name -> (python type(s), required)


NUM = (int, float)
EVALUATORS: dict[str, EvaluatorSpec] = {
    "outside_parcels": EvaluatorSpec("gisapproval.checks.evaluators:outside_parcels", "vector",
                                     {"tolerance_m2": (NUM, True)}),
    "parcel_use": EvaluatorSpec("gisapproval.checks.evaluators:parcel_use", "vector",
                                {"tolerance_m2": (NUM, True), "allowed_land_use": (dict, True),
                                 "holder_mismatch": (str, False)}),
    "overlap": EvaluatorSpec("gisapproval.checks.evaluators:overlap", "vector",
                             {"max_overlap_m2": (NUM, True), "where": (dict, False)}),
    "zoning_use": EvaluatorSpec("gisapproval.checks.evaluators:zoning_use", "vector",
                                {"tolerance_m2": (NUM, True), "compatible": (dict, True)}),
    "zoning_ratio": EvaluatorSpec("gisapproval.checks.evaluators:zoning_ratio", "vector",
                                  {"measure": (str, True), "attribute": (str, True), "bound": (str, True)}),
    "height_limit": EvaluatorSpec("gisapproval.checks.evaluators:height_limit", "vector",
                                  {"min_share": (NUM, True)}),
    "road_setback": EvaluatorSpec("gisapproval.checks.evaluators:road_setback", "vector",
                                  {"setbacks": (dict, True), "search_distance_m": (NUM, False)}),
    "boundary_setback": EvaluatorSpec("gisapproval.checks.evaluators:boundary_setback", "vector",
                                      {"tiers": (list, True)}),
    "nearest_distance": EvaluatorSpec("gisapproval.checks.evaluators:nearest_distance", "vector",
                                      {"max_distance_m": (NUM, True), "label_attribute": (str, False)}),
    "fire_separation": EvaluatorSpec("gisapproval.checks.evaluators:fire_separation", "vector",
                                     {"high_rise_residential_above_m": (NUM, True),
                                      "high_rise_other_above_m": (NUM, True), "high_high_m": (NUM, True),
                                      "high_other_m": (NUM, True), "other_other_m": (NUM, True),
                                      "search_distance_m": (NUM, False)}),
    "project_overlap": EvaluatorSpec("gisapproval.checks.evaluators:project_overlap", "vector",
                                     {"max_overlap_m2": (NUM, True)}),
    "raster_max": EvaluatorSpec("gisapproval.checks.zonal:raster_max", "raster",
                                {"measure": (str, True), "max_value": (NUM, True)}),
}

_loaded: dict[str, Callable] = {}


def evaluator_spec(type_name: str, where: str | None = None) -> EvaluatorSpec:
    try:
        return EVALUATORS[type_name]
    except KeyError:
        raise UnknownRuleTypeError(f"unknown rule type {type_name!r}; known types: {', '.join(sorted(EVALUATORS))}",
                                   where=where) from None


def get_evaluator(type_name: str) -> Callable:
    if type_name not in _loaded:
        module, _, func = evaluator_spec(type_name).path.partition(":")
        _loaded[type_name] = getattr(importlib.import_module(module), func)
    return _loaded[type_name]
