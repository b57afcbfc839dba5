"""The domain model (DESIGN section 3) as SQLAlchemy 2 typed mappings.

Geometries are stored in the jurisdiction's projected metric SRID (``SRID``) so that areas
and distances are true metres. Status and kind columns are text guarded by CHECK
constraints whose allowed values live in the tuples below, next to the model that uses them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, WriteOnlyMapped, deferred, mapped_column, relationship

from .config import load_jurisdiction

SRID = load_jurisdiction().srid

ROLES = ("applicant", "clerk", "reviewer", "leader", "layer_editor", "supervisor", "admin")
LAYER_KINDS = ("vector", "raster")
LAYER_VERSION_STATES = ("importing", "live", "failed")
PROJECT_STATES = ("draft", "submitted", "in_review", "in_correction", "approved", "rejected", "completed", "withdrawn")
# projects still being prepared or decided: layer changes re-check them, overlaps are reported between them
IN_FLIGHT = ("draft", "submitted", "in_review", "in_correction")
STAGE_STATES = ("intake", "in_review", "in_correction", "approved", "rejected")
TASK_STATES = (
    "pending", "in_review", "approved", "approved_with_conditions",
    "correction_requested", "rejected", "deemed_approved", "awaiting_signoff",
)
CHECK_OUTCOMES = ("pass", "fail", "warn", "no_data", "not_applicable")
CLOCK_KINDS = ("received", "accepted", "stop", "resume", "extension", "decided", "deemed")
NOTICE_STATES = ("open", "answered", "withdrawn")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: sa.DateTime(timezone=True), dict[str, Any]: JSONB}


class Department(Base):
    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(sa.String(200))
    name_en: Mapped[str] = mapped_column(sa.String(200))
    is_reviewing: Mapped[bool] = mapped_column(default=False)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    display_name: Mapped[str] = mapped_column(sa.String(200))
    organisation: Mapped[str | None] = mapped_column(sa.String(200))
    department_id: Mapped[int | None] = mapped_column(sa.ForeignKey("departments.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    department: Mapped[Department | None] = relationship(lazy="joined")
    roles: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def role_codes(self) -> set[str]:
        return {r.role for r in self.roles}


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (sa.CheckConstraint(_in("role", ROLES), name="ck_user_roles_role"),)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(32), primary_key=True)


class Layer(Base):
    __tablename__ = "layers"
    __table_args__ = (sa.CheckConstraint(_in("kind", LAYER_KINDS), name="ck_layers_kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title_zh: Mapped[str] = mapped_column(sa.String(200))
    title_en: Mapped[str] = mapped_column(sa.String(200))
    department_id: Mapped[int] = mapped_column(sa.ForeignKey("departments.id"))
    kind: Mapped[str] = mapped_column(sa.String(16))
    geometry_type: Mapped[str | None] = mapped_column(sa.String(32))
    feature_key: Mapped[str | None] = mapped_column(sa.String(64))
    coverage: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=True), nullable=True)
    current_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("layer_versions.id", use_alter=True, name="fk_layers_current_version"))

    department: Mapped[Department] = relationship(lazy="joined")


class LayerVersion(Base):
    __tablename__ = "layer_versions"
    __table_args__ = (
        sa.UniqueConstraint("layer_id", "number"),
        sa.CheckConstraint(_in("state", LAYER_VERSION_STATES), name="ck_layer_versions_state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    layer_id: Mapped[int] = mapped_column(sa.ForeignKey("layers.id"))
    number: Mapped[int]
    state: Mapped[str] = mapped_column(sa.String(16), default="importing")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source_name: Mapped[str] = mapped_column(sa.String(500))
    checksum: Mapped[str] = mapped_column(sa.String(64))
    count_added: Mapped[int] = mapped_column(default=0)
    count_changed: Mapped[int] = mapped_column(default=0)
    count_removed: Mapped[int] = mapped_column(default=0)
    count_unchanged: Mapped[int] = mapped_column(default=0)
    raster_path: Mapped[str | None] = mapped_column(sa.String(1000))
    affected_project_ids: Mapped[list[int]] = mapped_column(sa.ARRAY(sa.Integer), default=list)
    note: Mapped[str | None] = mapped_column(sa.Text)
    # names the file its import kept its content digests in (gisapproval.digestcache, migration 0014)
    content_token: Mapped[uuid.UUID] = mapped_column(sa.Uuid, default=uuid.uuid4,
                                                     server_default=sa.text("gen_random_uuid()"))


class LayerFeature(Base):
    """A feature valid from version ``valid_from`` up to, not including, ``valid_to`` (NULL: still valid).

    The table is partitioned by layer (migration 0009): each layer's features are a partition
    of their own, ``layer_features_p<layer id>``, created at the layer's first import.
    ``ident`` names the feature across versions (a changed feature keeps its key's ident).
    ``content_digest`` lets a re-import skip the features it already holds (migration 0010); the
    live index carries it, so a re-import reads the live digests from that index (migration 0012)."""

    __tablename__ = "layer_features"
    __table_args__ = (
        # within a layer's partition layer_id is one value; a unique index must still hold it
        sa.Index("ix_layer_features_key", "feature_key", "valid_from"),
        sa.Index("ix_layer_features_live", "layer_id", "feature_key", unique=True,
                 postgresql_where=sa.text("valid_to IS NULL"), postgresql_include=["content_digest"]),
        sa.Index("ix_layer_features_ident", "ident"),
        {"postgresql_partition_by": "LIST (layer_id)"},
    )
    __mapper_args__ = {"primary_key": ["id"]}  # the table's key is (id, layer_id): a partition key must be in it
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=True)
    layer_id: Mapped[int] = mapped_column(sa.ForeignKey("layers.id"), primary_key=True)
    feature_key: Mapped[str] = mapped_column(sa.String(200, collation="C"))  # compared by bytes (migration 0015)
    valid_from: Mapped[int]
    valid_to: Mapped[int | None]
    attrs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=True))
    # EPSG:3857 copy (EWKB) for vector tiles (migration 0007), computed by the importer (0010)
    geom_web: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    ident: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("nextval('layer_features_id_seq')"))
    # XXH3-128 of the content as the import wrote it; NULL: not known (migration 0010)
    content_digest: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, deferred=True)
    # its bounding box's centre in web mercator, computed by the importer, for small-scale tiles (0010)
    centre_web: Mapped[Any] = mapped_column(Geometry("POINT", srid=3857, spatial_index=False), deferred=True)


# Views, kept out of Base.metadata: the schema comparison with the migrations covers tables.
views = sa.MetaData()

parcels_view = sa.Table(
    "parcels", views,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("parcel_code", sa.String(200, collation="C")),
    sa.Column("holder", sa.String),
    sa.Column("land_use", sa.String),
    sa.Column("area_m2", sa.Float),
    sa.Column("geom", Geometry("GEOMETRY", srid=SRID, spatial_index=False)),
    sa.Column("is_retired", sa.Boolean),
    sa.Column("geom_web", sa.LargeBinary),
    sa.Column("centre_web", Geometry("POINT", srid=3857, spatial_index=False)),
)


class Parcel(Base):
    """A cadastral parcel (宗地): a feature of the cadastre layer, through the ``parcels`` view
    (migration 0009) — its live features, and each retired parcel as its last version had it.
    ``id`` is the feature's ident, stable while the parcel changes. Read-only."""

    __table__ = parcels_view
    id: Mapped[int]
    parcel_code: Mapped[str]
    holder: Mapped[str]
    land_use: Mapped[str]
    area_m2: Mapped[float]
    geom: Mapped[Any]
    is_retired: Mapped[bool]
    geom_web = deferred(parcels_view.c.geom_web)  # EPSG:3857 EWKB, for vector tiles
    centre_web = deferred(parcels_view.c.centre_web)  # its bounding box's centre, for small-scale tiles


project_parcels = sa.Table(
    "project_parcels",
    Base.metadata,
    sa.Column("project_id", sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    # a parcel's id (the cadastre feature's ident); a constraint trigger checks it (migration 0009)
    sa.Column("parcel_id", sa.BigInteger, primary_key=True),
)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (sa.CheckConstraint(_in("status", PROJECT_STATES), name="ck_projects_status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    receipt_no: Mapped[str | None] = mapped_column(sa.String(40), unique=True)
    query_code: Mapped[str | None] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(300))
    name_en: Mapped[str | None] = mapped_column(sa.String(300))
    applicant_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    applicant_org: Mapped[str] = mapped_column(sa.String(200))
    is_green_channel: Mapped[bool] = mapped_column(default=False)
    coordinator_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    current_stage: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(sa.String(20), default="draft")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    applicant: Mapped[User] = relationship(foreign_keys=[applicant_id])
    parcels: Mapped[list[Parcel]] = relationship(
        secondary=project_parcels, primaryjoin="Project.id == project_parcels.c.project_id",
        secondaryjoin="Parcel.id == foreign(project_parcels.c.parcel_id)")
    buildings: Mapped[list[Building]] = relationship(back_populates="project", cascade="all, delete-orphan")
    stages: Mapped[list[StageInstance]] = relationship(
        back_populates="project", order_by="StageInstance.stage", cascade="all, delete-orphan")
    events: WriteOnlyMapped[Event] = relationship(passive_deletes=True)


class Building(Base):
    __tablename__ = "buildings"
    __table_args__ = (
        sa.CheckConstraint("height_m > 0", name="ck_buildings_height"),
        sa.CheckConstraint("floors > 0", name="ck_buildings_floors"),
        sa.CheckConstraint("gfa_m2 > 0", name="ck_buildings_gfa"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    height_m: Mapped[float]
    floors: Mapped[int]
    gfa_m2: Mapped[float]
    use: Mapped[str] = mapped_column(sa.String(32))
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=True))
    geom_web: Mapped[bytes | None] = mapped_column(  # EPSG:3857 copy for vector tiles (migration 0007)
        sa.LargeBinary, sa.Computed("ST_AsEWKB(ST_Transform(geom, 3857))", persisted=True), deferred=True)

    project: Mapped[Project] = relationship(back_populates="buildings")


class StageInstance(Base):
    __tablename__ = "stage_instances"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "stage"),
        sa.CheckConstraint(_in("status", STAGE_STATES), name="ck_stage_instances_status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"))
    stage: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(20), default="intake")
    received_on: Mapped[dt.date]
    accepted_on: Mapped[dt.date | None]
    decided_on: Mapped[dt.date | None]

    project: Mapped[Project] = relationship(back_populates="stages")
    tasks: Mapped[list[ReviewTask]] = relationship(back_populates="stage_instance", cascade="all, delete-orphan")


class ReviewTask(Base):
    __tablename__ = "review_tasks"
    __table_args__ = (
        sa.UniqueConstraint("stage_instance_id", "department_id"),
        sa.CheckConstraint(_in("status", TASK_STATES), name="ck_review_tasks_status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    stage_instance_id: Mapped[int] = mapped_column(sa.ForeignKey("stage_instances.id", ondelete="CASCADE"))
    department_id: Mapped[int] = mapped_column(sa.ForeignKey("departments.id"))
    status: Mapped[str] = mapped_column(sa.String(32), default="pending")
    legal_limit_days: Mapped[int]
    committed_limit_days: Mapped[int]
    needs_leader_signoff: Mapped[bool] = mapped_column(default=False)
    is_deemed_on_timeout: Mapped[bool] = mapped_column(default=False)
    assigned_reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None]
    opinion: Mapped[str | None] = mapped_column(sa.Text)
    conditions: Mapped[str | None] = mapped_column(sa.Text)
    row_version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": row_version}

    stage_instance: Mapped[StageInstance] = relationship(back_populates="tasks")
    department: Mapped[Department] = relationship(lazy="joined")


class CheckRun(Base):
    __tablename__ = "check_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    stage_instance_id: Mapped[int | None] = mapped_column(sa.ForeignKey("stage_instances.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(sa.String(20))  # self_check, review, recheck
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    layer_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CheckResult(Base):
    __tablename__ = "check_results"
    __table_args__ = (sa.CheckConstraint(_in("outcome", CHECK_OUTCOMES), name="ck_check_results_outcome"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    check_run_id: Mapped[int] = mapped_column(sa.ForeignKey("check_runs.id", ondelete="CASCADE"), index=True)
    building_id: Mapped[int | None] = mapped_column(sa.ForeignKey("buildings.id", ondelete="CASCADE"))
    rule_id: Mapped[str] = mapped_column(sa.String(64))
    department_id: Mapped[int] = mapped_column(sa.ForeignKey("departments.id"))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    measured: Mapped[float | None]
    limit_value: Mapped[float | None]
    unit: Mapped[str | None] = mapped_column(sa.String(16))
    message_zh: Mapped[str] = mapped_column(sa.Text)
    message_en: Mapped[str] = mapped_column(sa.Text)
    evidence: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=True), nullable=True)
    layer_version_ids: Mapped[list[int]] = mapped_column(sa.ARRAY(sa.Integer), default=list)
    overrides_result_id: Mapped[int | None] = mapped_column(sa.ForeignKey("check_results.id"))
    override_reason: Mapped[str | None] = mapped_column(sa.Text)
    overridden_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class CorrectionNotice(Base):
    """One-time notice (一次性告知): every missing item and defect at once."""

    __tablename__ = "correction_notices"
    __table_args__ = (sa.CheckConstraint(_in("status", NOTICE_STATES), name="ck_correction_notices_status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    stage_instance_id: Mapped[int] = mapped_column(sa.ForeignKey("stage_instances.id", ondelete="CASCADE"), index=True)
    issued_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    answered_at: Mapped[dt.datetime | None]


class ClockEvent(Base):
    """An immutable fact about a task's or stage's clock; deadlines are derived from these."""

    __tablename__ = "clock_events"
    __table_args__ = (sa.CheckConstraint(_in("kind", CLOCK_KINDS), name="ck_clock_events_kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    stage_instance_id: Mapped[int] = mapped_column(sa.ForeignKey("stage_instances.id", ondelete="CASCADE"), index=True)
    review_task_id: Mapped[int | None] = mapped_column(sa.ForeignKey("review_tasks.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    on: Mapped[dt.date]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    stop_kind: Mapped[str | None] = mapped_column(sa.String(32))  # correction, expert_review, hearing, inspection
    days: Mapped[int | None]  # extension length in working days
    approved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Event(Base):
    """Append-only audit record. The database refuses UPDATE, DELETE and TRUNCATE on it."""

    __tablename__ = "events"
    __table_args__ = (sa.Index("ix_events_subject", "subject_type", "subject_id"),)
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    is_automated: Mapped[bool] = mapped_column(default=False)
    type: Mapped[str] = mapped_column(sa.String(64))
    subject_type: Mapped[str] = mapped_column(sa.String(32))
    subject_id: Mapped[str | None] = mapped_column(sa.String(64))
    project_id: Mapped[int | None] = mapped_column(sa.ForeignKey("projects.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MapRevision(Base):
    """One row: a counter that a deferred trigger on events bumps when a transaction that wrote
    a map-changing event commits (migration 0008); the map's state for tiles and their ETags."""

    __tablename__ = "map_revision"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_map_revision_one_row"),)
    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(sa.BigInteger)


class ApiToken(Base):
    """A machine client's bearer token. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


# --- workflow models (issue 5: intake, decisions, clocks, calendar) go below this line ---

DECISIONS = ("approved", "approved_with_conditions", "correction_requested", "rejected")
DECISION_STATES = ("proposed", "final", "returned")
EXTENSION_STATES = ("pending", "approved", "refused")
WARNING_LEVELS = ("yellow", "red")


class CalendarOverride(Base):
    """A day whose status the admin entered (the library lacks its year, or gets it wrong)."""

    __tablename__ = "calendar_overrides"
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    is_workday: Mapped[bool]
    note: Mapped[str | None] = mapped_column(sa.Text)
    entered_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CalendarYear(Base):
    """A year whose whole schedule (State Council notice) was entered: no longer provisional."""

    __tablename__ = "calendar_years"
    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(sa.String(300))
    entered_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StageSubmission(Base):
    """One submission (or resubmission) of a stage's materials by the applicant."""

    __tablename__ = "stage_submissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    stage_instance_id: Mapped[int] = mapped_column(sa.ForeignKey("stage_instances.id", ondelete="CASCADE"), index=True)
    submitted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    submitted_on: Mapped[dt.date]
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    materials: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.String(64)), default=list)
    is_resubmission: Mapped[bool] = mapped_column(default=False)


class OutstandingItem(Base):
    """A minor material accepted to follow later (容缺受理), with its own due date."""

    __tablename__ = "outstanding_items"
    __table_args__ = (sa.UniqueConstraint("stage_instance_id", "material_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    stage_instance_id: Mapped[int] = mapped_column(sa.ForeignKey("stage_instances.id", ondelete="CASCADE"), index=True)
    material_code: Mapped[str] = mapped_column(sa.String(64))
    name_zh: Mapped[str] = mapped_column(sa.String(300))
    name_en: Mapped[str] = mapped_column(sa.String(300))
    due_on: Mapped[dt.date]
    received_on: Mapped[dt.date | None]
    recorded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class TaskDecision(Base):
    """A reviewer's decision on a task: final at once, or proposed until the leader signs off."""

    __tablename__ = "task_decisions"
    __table_args__ = (
        sa.CheckConstraint(_in("decision", DECISIONS), name="ck_task_decisions_decision"),
        sa.CheckConstraint(_in("status", DECISION_STATES), name="ck_task_decisions_status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    review_task_id: Mapped[int] = mapped_column(sa.ForeignKey("review_tasks.id", ondelete="CASCADE"), index=True)
    decision: Mapped[str] = mapped_column(sa.String(32))
    opinion: Mapped[str] = mapped_column(sa.Text)
    conditions: Mapped[str | None] = mapped_column(sa.Text)
    correction_items: Mapped[list[str]] = mapped_column(JSONB, default=list)
    status: Mapped[str] = mapped_column(sa.String(16), default="final")
    decided_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    decided_on: Mapped[dt.date]
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    signed_off_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    signed_off_at: Mapped[dt.datetime | None]
    signoff_note: Mapped[str | None] = mapped_column(sa.Text)


class ExtensionRequest(Base):
    """A reviewer's request for more working days (art. 42), approved or refused by the leader."""

    __tablename__ = "extension_requests"
    __table_args__ = (sa.CheckConstraint(_in("status", EXTENSION_STATES), name="ck_extension_requests_status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    review_task_id: Mapped[int] = mapped_column(sa.ForeignKey("review_tasks.id", ondelete="CASCADE"), index=True)
    days: Mapped[int]
    reason: Mapped[str] = mapped_column(sa.Text)
    requested_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    requested_on: Mapped[dt.date]
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None]
    decision_note: Mapped[str | None] = mapped_column(sa.Text)


class EarlyNotice(Base):
    """A read-only early notice to a department of the next stage (提前介入)."""

    __tablename__ = "early_notices"
    __table_args__ = (sa.UniqueConstraint("stage_instance_id", "department_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    stage_instance_id: Mapped[int] = mapped_column(sa.ForeignKey("stage_instances.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(sa.ForeignKey("departments.id"))
    next_stage: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TaskWarning(Base):
    """A yellow or red warning raised by the sweep, once per task, level and deadline."""

    __tablename__ = "task_warnings"
    __table_args__ = (
        sa.UniqueConstraint("review_task_id", "level", "due_on"),
        sa.CheckConstraint(_in("level", WARNING_LEVELS), name="ck_task_warnings_level"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    review_task_id: Mapped[int] = mapped_column(sa.ForeignKey("review_tasks.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(sa.String(8))
    due_on: Mapped[dt.date]
    raised_on: Mapped[dt.date]
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)



# --- check models (issue 4: rule runs, overrides, re-checks) go below this line ---
# Columns of the check engine on the existing check tables (migration 0006_checks).
CheckRun.previous_run_id = mapped_column(sa.Integer, sa.ForeignKey("check_runs.id", ondelete="SET NULL"),
                                         nullable=True)
CheckRun.trigger_version_id = mapped_column(sa.Integer, sa.ForeignKey("layer_versions.id"), nullable=True)
CheckRun.extra_departments = mapped_column(sa.ARRAY(sa.String(32)), nullable=False, default=list,
                                           server_default="{}")
CheckRun.summary = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
CheckRun.changes = mapped_column(JSONB, nullable=False, default=list, server_default="[]")
CheckResult.details = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
CheckResult.adds_department = mapped_column(sa.String(32), nullable=True)
CheckResult.created_at = mapped_column(sa.DateTime(timezone=True), nullable=False, default=utcnow,
                                       server_default=sa.func.now())
