"""The planners' map as a read model: who sees which project, the category a parcel is drawn
in, the legend counts, a parcel's details for its popup, and in-flight projects whose
footprints overlap.

Visibility is one rule, expressed once (``visible_projects``) and reused by the vector tiles
(``gisapproval.tiles``), the popup details and the legend: staff see every submitted project
(and no one's drafts but their own); an applicant sees only their own projects.

Values are returned raw (not HTML-escaped): escaping belongs to whoever puts them into HTML.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.orm import Session, aliased

from .errors import NotFoundError
from .models import (
    SRID,
    Building,
    ClockEvent,
    Department,
    Layer,
    Parcel,
    Project,
    ReviewTask,
    StageInstance,
    User,
    project_parcels,
)
from .workdays import Calendar
from .workflow.clock import ClockFact, compute_deadline
from .workflow.stages import load_process

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

# Projects "in flight": submitted and not yet decided. Their footprints are compared for overlaps.
IN_FLIGHT = ("submitted", "in_review", "in_correction")
# Review tasks still open (their clock runs or is stopped).
OPEN_TASKS = ("pending", "in_review", "correction_requested")

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

PG_INT_MAX = 2**31 - 1  # the largest id an integer column holds
PG_BIGINT_MAX = 2**63 - 1  # a bigint's (parcel ids are cadastre features' idents)

# Roles that see every project on the map; anyone else (an applicant) sees only their own.
PORTFOLIO_ROLES = frozenset({"clerk", "reviewer", "leader", "layer_editor", "supervisor", "admin"})


def sees_all_projects(user: User | None) -> bool:
    return user is not None and bool(user.role_codes & PORTFOLIO_ROLES)


@dataclass(frozen=True)
class Scope:
    """What a viewer may see on the map: ``kind`` 'public' (no one logged in: approved and
    completed projects), 'all' (staff: every project except others' drafts) or 'own' (an
    applicant: their own projects). ``viewer_id`` is the user's id, or a bind parameter when a
    statement is prepared once for every viewer of a kind (``gisapproval.tiles``)."""

    kind: str
    viewer_id: object = None

    @classmethod
    def of(cls, user: User | None) -> Scope:
        if user is None:
            return cls("public")
        return cls("all" if sees_all_projects(user) else "own", user.id)

    @property
    def key(self) -> str:
        """A short key (same key, same tiles): 'public', 'all' or 'user:<id>'."""
        return f"user:{self.viewer_id}" if self.kind == "own" else self.kind


def visible_projects(viewer: User | Scope | None) -> sa.Select:
    """The projects ``viewer`` may see on the map (None: the public sees approved/completed ones)."""
    scope = viewer if isinstance(viewer, Scope) else Scope.of(viewer)
    query = sa.select(Project).where(Project.status != "withdrawn")
    if scope.kind == "public":
        return query.where(Project.status.in_(("approved", "completed")))
    query = query.where(sa.or_(Project.status != "draft", Project.applicant_id == scope.viewer_id))
    if scope.kind == "own":
        query = query.where(Project.applicant_id == scope.viewer_id)
    return query


def category_of(status: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.coalesce(sa.case(dict(STATUS_CATEGORY), value=status), "none")


def shown_project_per_parcel(viewer: User | Scope | None) -> sa.Subquery:
    """One row per parcel that carries a visible project: the project shown on it (the most live)
    and how many visible projects stand on it. Columns: parcel_id, project_id, code, status,
    current_stage, category, project_count."""
    visible = visible_projects(viewer).subquery("visible")
    pp = project_parcels.c
    priority = sa.case(dict(STATUS_PRIORITY), value=visible.c.status, else_=len(STATUS_PRIORITY))
    ranked = (
        sa.select(
            pp.parcel_id, visible.c.id.label("project_id"), visible.c.code, visible.c.status,
            visible.c.current_stage, category_of(visible.c.status).label("category"),
            sa.func.count().over(partition_by=pp.parcel_id).label("project_count"),
        )
        .join(visible, visible.c.id == pp.project_id)
        .order_by(pp.parcel_id, priority, visible.c.created_at.desc(), visible.c.id.desc())
    )
    first = ranked.ext(distinct_on(pp.parcel_id)) if distinct_on else ranked.distinct(pp.parcel_id)
    return first.subquery("shown")


def category_counts(session: Session, viewer: User | None) -> dict[str, int]:
    """How many (live) parcels the map draws in each category, every category present."""
    shown = shown_project_per_parcel(viewer)
    category = sa.func.coalesce(shown.c.category, "none")
    rows = session.execute(
        sa.select(category, sa.func.count()).select_from(Parcel)
        .outerjoin(shown, shown.c.parcel_id == Parcel.id)
        .where(Parcel.is_retired.is_(False)).group_by(category)
    ).all()
    counts = dict.fromkeys(CATEGORIES, 0)
    counts.update({c: n for c, n in rows})
    return counts


def map_layers(session: Session) -> list[tuple[str, str, str]]:
    """(name, title_zh, title_en) of every vector layer with a published version, in catalogue order."""
    return [tuple(r) for r in session.execute(
        sa.select(Layer.name, Layer.title_zh, Layer.title_en)
        .where(Layer.kind == "vector", Layer.current_version_id.is_not(None)).order_by(Layer.id))]


def parcels_extent_4326(session: Session) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of the live parcels, or None when there are none."""
    extent = sa.cast(sa.func.ST_Extent(Parcel.geom), Geometry)
    env = sa.select(sa.func.ST_Transform(sa.func.ST_SetSRID(extent, SRID), 4326).label("g")) \
        .where(Parcel.is_retired.is_(False)).subquery()
    g = env.c.g
    row = session.execute(sa.select(sa.func.ST_XMin(g), sa.func.ST_YMin(g), sa.func.ST_XMax(g),
                                    sa.func.ST_YMax(g))).one()
    return None if row[0] is None else tuple(float(v) for v in row)


# --- footprints of in-flight projects that overlap one another -------------------------------

def overlapping_building_condition(building: type[Building] | sa.Table = Building) -> sa.ColumnElement:
    """True for a footprint of an in-flight project that overlaps (shares area with) a footprint of
    another in-flight project. A composable expression over ``building`` (GiST on geom)."""
    other, other_project = aliased(Building), aliased(Project)
    return sa.exists().where(
        other.project_id != building.project_id,
        other_project.id == other.project_id,
        other_project.status.in_(IN_FLIGHT),
        sa.func.ST_Intersects(other.geom, building.geom),
        ~sa.func.ST_Touches(other.geom, building.geom),
    )


def overlapping_projects(session: Session, viewer: User | None) -> list[dict]:
    """Pairs of in-flight projects whose footprints overlap, where ``viewer`` may see both:
    [{"a": code, "b": code, "overlap_m2": area}], largest overlap first."""
    a, b = aliased(Building), aliased(Building)
    pa, pb = aliased(Project), aliased(Project)
    visible_ids = visible_projects(viewer).with_only_columns(Project.id).scalar_subquery()
    area = sa.func.sum(sa.func.ST_Area(sa.func.ST_Intersection(a.geom, b.geom)))
    rows = session.execute(
        sa.select(pa.code, pb.code, area.label("m2"))
        .join(pa, pa.id == a.project_id).join(b, sa.func.ST_Intersects(a.geom, b.geom))
        .join(pb, pb.id == b.project_id)
        .where(pa.id < pb.id, pa.status.in_(IN_FLIGHT), pb.status.in_(IN_FLIGHT),
               pa.id.in_(visible_ids), pb.id.in_(visible_ids), ~sa.func.ST_Touches(a.geom, b.geom))
        .group_by(pa.code, pb.code).order_by(sa.desc("m2"))
    ).all()
    return [{"a": r[0], "b": r[1], "overlap_m2": round(float(r[2]), 1)} for r in rows if r[2] and r[2] > 0]


# --- a parcel's details (the popup) -----------------------------------------------------------

@dataclass(frozen=True)
class TaskDeadline:
    department: str
    department_zh: str
    department_en: str
    status: str
    due_on: dt.date | None
    days_left: int | None
    colour: str | None  # green / yellow / red / stopped; None when the task is closed


def task_clocks(session: Session, stage: StageInstance, today: dt.date, calendar: Calendar | None = None,
                warning_days: int | None = None) -> list[TaskDeadline]:
    """The review tasks of ``stage`` with their deadlines, derived from the clock events
    (``workflow.clock``). Closed tasks carry no deadline."""
    calendar = calendar or Calendar()
    if warning_days is None:
        warning_days = load_process().warning_days
    tasks = session.execute(
        sa.select(ReviewTask, Department).join(Department, Department.id == ReviewTask.department_id)
        .where(ReviewTask.stage_instance_id == stage.id).order_by(Department.code)
    ).all()
    events = session.scalars(sa.select(ClockEvent).where(ClockEvent.stage_instance_id == stage.id)).all()
    out = []
    for task, dept in tasks:
        due = left = colour = None
        if task.status in OPEN_TASKS and stage.accepted_on is not None:
            facts = [ClockFact(e.kind, e.on, e.days) for e in events
                     if e.kind in ("stop", "resume", "extension") and e.review_task_id in (None, task.id)]
            deadline = compute_deadline(calendar, stage.accepted_on, task.committed_limit_days, facts)
            due, left = deadline.due_on, deadline.days_left(calendar, today)
            colour = deadline.colour(calendar, today, warning_days)
        out.append(TaskDeadline(dept.code, dept.name_zh, dept.name_en, task.status, due, left, colour))
    return out


CLOCK_SEVERITY = ("red", "yellow", "green", "stopped")  # the worst open task gives a project its colour


def project_clock_colours(session: Session, today: dt.date, calendar: Calendar | None = None) -> dict[int, str]:
    """Project id -> the days-left colour of its worst open review task in its current stage
    (red overdue, yellow due soon, green, stopped), for every in-flight project with an open,
    accepted task. Two queries, whatever the number of projects; nothing is stored."""
    calendar = calendar or Calendar()
    warning_days = load_process().warning_days
    rows = session.execute(
        sa.select(Project.id, StageInstance.id, StageInstance.accepted_on, ReviewTask.id,
                  ReviewTask.committed_limit_days)
        .join(StageInstance, sa.and_(StageInstance.project_id == Project.id,
                                     StageInstance.stage == Project.current_stage))
        .join(ReviewTask, ReviewTask.stage_instance_id == StageInstance.id)
        .where(Project.status.in_(IN_FLIGHT), ReviewTask.status.in_(OPEN_TASKS),
               StageInstance.accepted_on.is_not(None))
    ).all()
    if not rows:
        return {}
    events: dict[int, list[ClockEvent]] = {}
    for e in session.scalars(sa.select(ClockEvent).where(
            ClockEvent.stage_instance_id.in_({r[1] for r in rows}),
            ClockEvent.kind.in_(("stop", "resume", "extension")))):
        events.setdefault(e.stage_instance_id, []).append(e)
    colours: dict[int, str] = {}
    for project_id, stage_id, accepted_on, task_id, limit in rows:
        facts = [ClockFact(e.kind, e.on, e.days) for e in events.get(stage_id, [])
                 if e.review_task_id in (None, task_id)]
        colour = compute_deadline(calendar, accepted_on, limit, facts).colour(calendar, today, warning_days)
        known = colours.get(project_id)
        if known is None or CLOCK_SEVERITY.index(colour) < CLOCK_SEVERITY.index(known):
            colours[project_id] = colour
    return colours


def parcel_details(session: Session, viewer: User | None, parcel_id: int, today: dt.date | None = None) -> dict:
    """What the popup shows for a parcel: the parcel, and each project on it that ``viewer`` may
    see with its stage, stage status, department statuses and days left. Holders are shown to
    staff, and to an applicant only on parcels of their own projects."""
    today = today or dt.date.today()
    parcel = session.get(Parcel, parcel_id) if 0 < parcel_id <= PG_BIGINT_MAX else None
    if parcel is None:
        raise NotFoundError(f"no parcel with id {parcel_id}", where="parcel_id")
    visible = visible_projects(viewer).join(project_parcels, project_parcels.c.project_id == Project.id) \
        .where(project_parcels.c.parcel_id == parcel_id).order_by(Project.created_at.desc(), Project.id.desc())
    projects = session.scalars(visible).all()
    overlapping = set(session.scalars(
        sa.select(Building.project_id).where(Building.project_id.in_([p.id for p in projects]),
                                             overlapping_building_condition())
    )) if projects else set()
    calendar, warning_days = Calendar(), load_process().warning_days
    items = []
    for project in projects:
        stage = next((s for s in project.stages if s.stage == project.current_stage), None)
        tasks = task_clocks(session, stage, today, calendar, warning_days) if stage is not None else []
        open_left = [t.days_left for t in tasks if t.days_left is not None]
        items.append({
            "code": project.code, "name": project.name, "name_en": project.name_en,
            "applicant_org": project.applicant_org, "status": project.status,
            "category": STATUS_CATEGORY.get(project.status, "none"), "stage": project.current_stage,
            "stage_status": stage.status if stage is not None else None,
            "days_left": min(open_left) if open_left else None,
            "is_overlapping": project.id in overlapping,
            "tasks": [{"department": t.department, "department_zh": t.department_zh,
                       "department_en": t.department_en, "status": t.status,
                       "due_on": t.due_on.isoformat() if t.due_on else None, "days_left": t.days_left,
                       "colour": t.colour} for t in tasks],
        })
    shows_holder = sees_all_projects(viewer) or (viewer is not None and bool(projects))
    return {
        "id": parcel.id, "parcel_code": parcel.parcel_code, "land_use": parcel.land_use,
        "area_m2": round(float(parcel.area_m2), 1), "holder": parcel.holder if shows_holder else None,
        "projects": items,
    }
