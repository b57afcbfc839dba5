"""Map data: parcels coloured by the approval status of the project on them, as GeoJSON.

For now this lives in ``web/``; it is a read model over the core's tables (parcels,
projects, project_parcels) with no Flask in it, so it can move to the core's map builders
unchanged. One SQL query builds the whole FeatureCollection (PostGIS simplifies and
transforms to EPSG:4326); Python never loops over parcels to query them.

Values are returned raw (not HTML-escaped): escaping belongs to whoever puts them into HTML
(``web.mapview`` does, before handing them to folium).
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON, aggregate_order_by
from sqlalchemy.orm import Session

from gisapproval.models import Parcel, Project, User, project_parcels

try:  # SQLAlchemy 2.1 spells DISTINCT ON as an extension; 2.0 as .distinct(expr)
    from sqlalchemy.dialects.postgresql import distinct_on
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    distinct_on = None

# Display categories, in legend order. "none": no (visible) project on the parcel.
CATEGORIES = ("none", "draft", "intake", "in_review", "in_correction", "approved", "completed", "rejected")

# Project status -> display category. Withdrawn projects are not shown at all.
STATUS_CATEGORY: Mapping[str, str] = {
    "draft": "draft",
    "submitted": "intake",
    "in_review": "in_review",
    "in_correction": "in_correction",
    "approved": "approved",
    "completed": "completed",
    "rejected": "rejected",
}

# When several visible projects stand on one parcel, the one shown is the most "live":
# work in progress first, then finished, then drafts; among equals the newest.
STATUS_PRIORITY: Mapping[str, int] = {
    "in_correction": 0,
    "in_review": 1,
    "submitted": 2,
    "approved": 3,
    "completed": 4,
    "rejected": 5,
    "draft": 6,
}

# Roles that see every project on the map; anyone else (an applicant) sees only their own.
PORTFOLIO_ROLES = frozenset({"clerk", "reviewer", "leader", "layer_editor", "supervisor", "admin"})

# Simplification tolerance in storage-CRS units (metres): invisible at street zoom.
SIMPLIFY_TOLERANCE_M = 0.5
COORDINATE_DECIMALS = 6  # ~0.1 m at this latitude


def sees_all_projects(user: User) -> bool:
    return bool(user.role_codes & PORTFOLIO_ROLES)


def _key(name: str) -> sa.ColumnElement:
    """A constant JSON key (our own identifiers only, so no user input reaches the SQL text)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain JSON key: {name!r}")
    return sa.literal_column(f"'{name}'")


def _json_object(**fields: sa.ColumnElement) -> sa.ColumnElement:
    args: list[sa.ColumnElement] = []
    for name, value in fields.items():
        args += [_key(name), value]
    return sa.func.json_build_object(*args)


def parcel_status_collection(session: Session, viewer: User) -> dict:
    """All parcels as a GeoJSON FeatureCollection (EPSG:4326) with the status of their project.

    ``viewer`` decides what is visible: staff see every submitted project (and no one's
    drafts but their own); an applicant sees only their own projects, every other parcel is
    plain ("none") and shows no holder. Each feature's ``id`` is the parcel id; properties:
    parcel_code, holder, land_use, area_m2, category (one of ``CATEGORIES``), status,
    project_code, project_name, project_name_en, applicant_org, stage, project_count (the project
    fields are null on a parcel without a visible project).
    The collection's ``bbox`` is the parcels' extent, or absent when there are none.
    """
    own_only = not sees_all_projects(viewer)

    visible = sa.select(
        Project.id, Project.code, Project.name, Project.name_en, Project.applicant_org,
        Project.current_stage, Project.status, Project.created_at,
    ).where(
        Project.status != "withdrawn",
        sa.or_(Project.status != "draft", Project.applicant_id == viewer.id),
    )
    if own_only:
        visible = visible.where(Project.applicant_id == viewer.id)
    visible = visible.subquery("visible")

    pp = project_parcels.c
    priority = sa.case(dict(STATUS_PRIORITY), value=visible.c.status, else_=len(STATUS_PRIORITY))
    ranked = (
        sa.select(
            pp.parcel_id,
            visible.c.code, visible.c.name, visible.c.name_en, visible.c.applicant_org,
            visible.c.current_stage, visible.c.status,
            sa.func.count().over(partition_by=pp.parcel_id).label("project_count"),
        )
        .join(visible, visible.c.id == pp.project_id)
        .order_by(pp.parcel_id, priority, visible.c.created_at.desc(), visible.c.id.desc())
    )
    first_per_parcel = ranked.ext(distinct_on(pp.parcel_id)) if distinct_on else ranked.distinct(pp.parcel_id)
    shown = first_per_parcel.subquery("shown")

    category = sa.func.coalesce(sa.case(dict(STATUS_CATEGORY), value=shown.c.status), "none")
    holder = sa.case((shown.c.parcel_id.is_(None), None), else_=Parcel.holder) if own_only else Parcel.holder
    geometry = sa.cast(
        sa.func.ST_AsGeoJSON(
            sa.func.ST_Transform(sa.func.ST_SimplifyPreserveTopology(Parcel.geom, SIMPLIFY_TOLERANCE_M), 4326),
            COORDINATE_DECIMALS,
        ),
        JSON,
    )
    feature = _json_object(
        type=sa.literal_column("'Feature'"),
        id=Parcel.id,
        geometry=geometry,
        properties=_json_object(
            parcel_code=Parcel.parcel_code,
            holder=holder,
            land_use=Parcel.land_use,
            area_m2=sa.func.round(sa.cast(Parcel.area_m2, sa.Numeric), 1),
            category=category,
            status=shown.c.status,
            project_code=shown.c.code,
            project_name=shown.c.name,
            project_name_en=shown.c.name_en,
            applicant_org=shown.c.applicant_org,
            stage=shown.c.current_stage,
            project_count=shown.c.project_count,
        ),
    )
    extent = sa.func.ST_Extent(sa.func.ST_Transform(Parcel.geom, 4326))
    query = (
        sa.select(
            _json_object(
                type=sa.literal_column("'FeatureCollection'"),
                features=sa.func.coalesce(
                    sa.func.json_agg(aggregate_order_by(feature, Parcel.id)), sa.literal_column("'[]'::json")
                ),
                bbox=sa.func.json_build_array(
                    sa.func.ST_XMin(extent), sa.func.ST_YMin(extent), sa.func.ST_XMax(extent), sa.func.ST_YMax(extent)
                ),
            )
        )
        .select_from(Parcel)
        .outerjoin(shown, shown.c.parcel_id == Parcel.id)
    )
    collection = session.execute(query).scalar_one()
    if collection.get("bbox") and None in collection["bbox"]:
        del collection["bbox"]
    return collection


def category_counts(collection: dict) -> dict[str, int]:
    """How many features of ``collection`` fall in each category (every category present)."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for feature in collection["features"]:
        counts[feature["properties"]["category"]] += 1
    return counts


def grid_collection(session: Session, extent: tuple[float, float, float, float], srid: int,
                    step_m: float = 1000.0) -> dict:
    """A reference grid over ``extent`` (storage CRS) every ``step_m`` metres, as EPSG:4326 lines."""
    minx, miny, maxx, maxy = extent

    def series(start, stop, name):
        args = (sa.cast(v, sa.Numeric) for v in (start, stop, step_m))
        return sa.func.generate_series(*args).table_valued("value").render_derived(name=name)

    x, y = series(minx, maxx, "x"), series(miny, maxy, "y")

    def line(x1, y1, x2, y2):
        return sa.func.ST_Transform(
            sa.func.ST_SetSRID(
                sa.func.ST_MakeLine(sa.func.ST_MakePoint(x1, y1), sa.func.ST_MakePoint(x2, y2)), srid
            ),
            4326,
        )

    verticals = sa.select(line(x.c.value, miny, x.c.value, maxy).label("g")).select_from(x)
    horizontals = sa.select(line(minx, y.c.value, maxx, y.c.value).label("g")).select_from(y)
    lines = sa.union_all(verticals, horizontals).subquery("lines")
    query = sa.select(
        _json_object(
            type=sa.literal_column("'Feature'"),
            properties=sa.literal_column("'{}'::json"),
            geometry=sa.cast(sa.func.ST_AsGeoJSON(sa.func.ST_Collect(lines.c.g), COORDINATE_DECIMALS), JSON),
        )
    )
    feature = session.execute(query).scalar_one()
    return {"type": "FeatureCollection", "features": [feature] if feature["geometry"] else []}
