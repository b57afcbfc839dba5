"""Every spatial predicate of the checks, as composable SQLAlchemy / GeoAlchemy2 expressions.

The evaluators (evaluators.py) compose these into one SELECT per rule; the engine unions the
SELECTs of all rules into one statement. Geometries are in the storage SRID (metres), so
areas and distances are true. Comparisons against a limit round the measure to 6 decimals, so
a value exactly at its limit is at the limit (a floor-area ratio of exactly 2.5 where 2.5 is
allowed passes) while 9.9 m short of 10 m fails.
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy import func as F
from sqlalchemy.dialects.postgresql import JSONB

from ..models import SRID, LayerFeature

ROUND_DIGITS = 6


def as_of(f, layer_id: int, number: int):
    """``f`` (an alias of layer_features) as it was in version ``number`` of the layer."""
    return sa.and_(f.layer_id == layer_id, f.valid_from <= number,
                   sa.or_(f.valid_to.is_(None), f.valid_to > number))


def feature_alias(name: str):
    return sa.orm.aliased(LayerFeature, name=name)


def attr(f, name: str):
    return f.attrs[name].astext


def attr_float(f, name: str):
    return sa.cast(f.attrs[name].astext, sa.Float)


def intersects(a, b):
    return F.ST_Intersects(a, b)


def within_distance(a, b, metres: float):
    return F.ST_DWithin(a, b, metres)


def distance(a, b):
    return F.ST_Distance(a, b)


def nearest_first(a, b):
    """KNN ordering (``<->``), answered by the GiST index."""
    return a.op("<->")(b)


def polygonal(geom):
    """Only the polygonal part of an intersection or difference (drops slivers' lines and points)."""
    return F.ST_CollectionExtract(geom, 3)


def overlap(a, b):
    return polygonal(F.ST_Intersection(a, b))


def overlap_area(a, b):
    return F.ST_Area(F.ST_Intersection(a, b))


def outside_area(geom, container):
    return F.ST_Area(F.ST_Difference(geom, container))


def shortest_line(a, b):
    return F.ST_ShortestLine(a, b)


def boundary(geom):
    return F.ST_Boundary(geom)


def covered_by(geom, layer_id: int | None):
    """The footprint lies wholly inside the layer's declared coverage (else: no data)."""
    from ..models import Layer

    if layer_id is None:
        return sa.false()
    coverage = sa.select(Layer.coverage).where(Layer.id == layer_id).scalar_subquery()
    return sa.func.coalesce(F.ST_CoveredBy(geom, coverage), sa.false())


def rounded(x):
    return F.round(sa.cast(x, sa.Numeric), ROUND_DIGITS)


def exceeds(measured, limit):
    return rounded(measured) > rounded(limit)


def short_of(measured, limit):
    return rounded(measured) < rounded(limit)


def tiered(height, tiers: list[dict]):
    """The setback for a building height from tiers of (up_to_height_m, setback_m)."""
    whens = [(height <= t["up_to_height_m"], t["setback_m"]) for t in tiers if not math.isinf(t["up_to_height_m"])]
    default = tiers[-1]["setback_m"]
    return sa.case(*whens, else_=default) if whens else sa.literal(default)


def is_high_rise(height, use, residential_above: float, other_above: float):
    """GB 50016: residential above 27 m, other buildings above 24 m."""
    return sa.case((use == "residential", height > residential_above), else_=height > other_above)


def allowed(mapping: dict[str, list[str]], key, code):
    """``code`` is one of the codes a rule's compatibility table lists for ``key`` (e.g. the
    zoning use codes that allow a building use); an unlisted key allows nothing."""
    from sqlalchemy.dialects.postgresql import ARRAY, array

    codes = sa.case(*[(key == k, array(v or [""])) for k, v in mapping.items()],
                    else_=sa.cast(array([""]), ARRAY(sa.String)))
    return code == sa.any_(codes)


def outcome(covered, broken, severity: str, *, warn=None, missing=None, not_applicable=None):
    """The outcome: no data outside coverage (never pass), then the rule's severity when the
    limit is broken, an optional warning, else pass."""
    whens = [(sa.not_(covered), "no_data")]
    if missing is not None:
        whens.append((missing, "no_data"))
    if not_applicable is not None:
        whens.append((not_applicable, "not_applicable"))
    whens.append((broken, severity))
    if warn is not None:
        whens.append((warn, "warn"))
    return sa.case(*whens, else_="pass")


def no_geometry():
    return sa.cast(sa.null(), Geometry("GEOMETRY", srid=SRID))


def jsonb(**items):
    args = []
    for k, v in items.items():
        args += [sa.literal(k), v]
    return sa.cast(F.jsonb_build_object(*args), JSONB) if args else sa.cast(sa.literal("{}"), JSONB)


RESULT_COLUMNS = ("project_id", "building_id", "measured", "limit_value", "outcome", "evidence", "details")


def result(project_id, building_id, measured, limit_value, outcome_, evidence, details):
    """The uniform columns every vector rule's SELECT returns (so all rules union into one)."""
    return [
        sa.cast(project_id, sa.Integer).label("project_id"),
        sa.cast(building_id, sa.Integer).label("building_id"),
        sa.cast(measured, sa.Float).label("measured"),
        sa.cast(limit_value, sa.Float).label("limit_value"),
        sa.cast(outcome_, sa.String).label("outcome"),
        sa.cast(evidence, Geometry("GEOMETRY", srid=SRID)).label("evidence"),
        sa.cast(details, JSONB).label("details"),
    ]
