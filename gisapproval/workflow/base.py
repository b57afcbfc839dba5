"""What the workflow's use cases share: today's date in China, loading with row locks, who may
do what, and the stage's merged outcome (most severe wins)."""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..audit import record_event
from ..errors import NotFoundError, PermissionDeniedError
from ..models import (
    CheckResult,
    CheckRun,
    ClockEvent,
    CorrectionNotice,
    Department,
    EarlyNotice,
    Project,
    ReviewTask,
    StageInstance,
    TaskDecision,
    User,
)
from .clock import OPEN_TASK_STATES
from .stages import ProcessSettings, default_process

CHINA = dt.timezone(dt.timedelta(hours=8))
STAFF_ROLES = frozenset({"clerk", "reviewer", "leader", "supervisor", "admin"})
APPROVED_STATES = ("approved", "approved_with_conditions", "deemed_approved")


def today_in_china() -> dt.date:
    return dt.datetime.now(CHINA).date()


def process() -> ProcessSettings:
    return default_process()


def require_role(actor: User | None, *roles: str) -> User:
    if actor is None or not (set(roles) & actor.role_codes):
        raise PermissionDeniedError(f"this needs one of the roles: {', '.join(roles)}")
    return actor


def can_view_project(actor: User | None, project: Project) -> bool:
    if actor is None:
        return False
    return bool(actor.role_codes & STAFF_ROLES) or project.applicant_id == actor.id


def get_project(session: Session, project_id: int, *, lock: bool = False) -> Project:
    project = session.get(Project, project_id, with_for_update=lock or None)
    if project is None:
        raise NotFoundError(f"no project {project_id}", where="project_id")
    return project


def visible_project(session: Session, actor: User | None, project_id: int) -> Project:
    """The project if the actor may see it; otherwise 'not found' (an applicant does not learn
    that another's project exists)."""
    project = session.get(Project, project_id)
    if project is None or not can_view_project(actor, project):
        raise NotFoundError(f"no project {project_id}", where="project_id")
    return project


def get_stage(session: Session, stage_id: int, *, lock: bool = False) -> StageInstance:
    stage = session.get(StageInstance, stage_id, with_for_update=lock or None, populate_existing=lock)
    if stage is None:
        raise NotFoundError(f"no stage instance {stage_id}", where="stage_id")
    return stage


def get_task(session: Session, task_id: int) -> ReviewTask:
    task = session.get(ReviewTask, task_id)
    if task is None:
        raise NotFoundError(f"no review task {task_id}", where="task_id")
    return task


def department_by_code(session: Session) -> dict[str, Department]:
    return {d.code: d for d in session.scalars(sa.select(Department))}


def require_department_role(actor: User | None, task: ReviewTask, role: str) -> User:
    """The actor holds ``role`` in the task's own department."""
    require_role(actor, role)
    if actor.department_id != task.department_id:
        raise PermissionDeniedError(
            f"only a {role} of the {task.department.code} department may act on this task", where=f"task {task.id}")
    return actor


def new_receipt_no(project: Project, on: dt.date) -> str:
    return f"BJ{on:%Y%m%d}{project.id:05d}"


def new_query_code() -> str:
    return f"{secrets.randbelow(900000) + 100000}"


def open_early_notices(session: Session, stage: StageInstance) -> None:
    """Tell the next stage's departments early (read-only)."""
    proc = process()
    nxt = proc.stages.get(stage.stage + 1)
    if nxt is None:
        return
    depts = department_by_code(session)
    have = set(session.scalars(sa.select(EarlyNotice.department_id).where(EarlyNotice.stage_instance_id == stage.id)))
    for code in nxt.departments:
        if depts[code].id not in have:
            session.add(EarlyNotice(stage_instance_id=stage.id, department_id=depts[code].id, next_stage=nxt.number))


def failed_check_items(session: Session, stage: StageInstance, departments: set[int] | None = None) -> list[dict]:
    """The failed checks of the stage's latest check run, one item per distinct defect."""
    run_id = session.scalar(sa.select(CheckRun.id).where(CheckRun.stage_instance_id == stage.id)
                            .order_by(CheckRun.id.desc()).limit(1))
    if run_id is None:
        return []
    overridden = sa.select(CheckResult.overrides_result_id).where(
        CheckResult.check_run_id == run_id, CheckResult.overrides_result_id.is_not(None))
    q = (sa.select(CheckResult, Department.code).join(Department, Department.id == CheckResult.department_id)
         .where(CheckResult.check_run_id == run_id, CheckResult.outcome == "fail",
                CheckResult.id.not_in(overridden)).order_by(CheckResult.id))
    if departments is not None:
        q = q.where(CheckResult.department_id.in_(departments))
    return [{"source": "check", "department": code, "code": r.rule_id, "text_zh": r.message_zh,
             "text_en": r.message_en} for r, code in session.execute(q)]


def merge_items(items: list[dict]) -> list[dict]:
    """De-duplicate notice items across departments: one line per distinct text, naming every
    department that raised it."""
    out: dict[tuple, dict] = {}
    for item in items:
        key = (item.get("code") or "", (item.get("text_zh") or item.get("text") or "").strip())
        if key in out:
            dept = item.get("department")
            if dept and dept not in out[key]["departments"]:
                out[key]["departments"].append(dept)
            continue
        merged = dict(item)
        merged["departments"] = [item["department"]] if item.get("department") else []
        out[key] = merged
    return list(out.values())


def settle_stage(session: Session, actor: User | None, stage: StageInstance, today: dt.date) -> str | None:
    """When no task of the stage is open, compute its outcome (most severe wins) and act on it.
    Returns the new stage status, or None while tasks are still open."""
    stage = get_stage(session, stage.id, lock=True)
    if stage.status not in ("in_review",):
        return None
    session.flush()
    session.refresh(stage, ["tasks"])
    tasks = session.scalars(sa.select(ReviewTask).where(ReviewTask.stage_instance_id == stage.id)
                            .execution_options(populate_existing=True)).all()
    if any(t.status in OPEN_TASK_STATES for t in tasks):
        return None
    project = get_project(session, stage.project_id, lock=True)
    pid = project.id
    statuses = {t.status for t in tasks}
    if "rejected" in statuses:
        stage.status, stage.decided_on = "rejected", today
        project.status = "rejected"
        record_event(session, actor, "stage.rejected", stage, {"stage": stage.stage}, project_id=pid)
        return "rejected"
    if "correction_requested" in statuses:
        items: list[dict] = []
        fixing = [t for t in tasks if t.status == "correction_requested"]
        for t in fixing:
            decision = session.scalar(sa.select(TaskDecision).where(
                TaskDecision.review_task_id == t.id, TaskDecision.status == "final").order_by(TaskDecision.id.desc()))
            for text in (decision.correction_items if decision else []) or [t.opinion or ""]:
                items.append({"source": "department", "department": t.department.code, "text_zh": text,
                              "text_en": text})
        items += failed_check_items(session, stage, {t.department_id for t in fixing})
        items = merge_items(items)
        session.add(CorrectionNotice(stage_instance_id=stage.id, issued_by_id=actor.id if actor else None,
                                     items=items, status="open"))
        session.add(ClockEvent(stage_instance_id=stage.id, kind="stop", stop_kind="correction", on=today,
                               reason="一次性补正告知 / one-time correction notice"))
        stage.status = "in_correction"
        project.status = "in_correction"
        record_event(session, actor, "correction_notice.issued", stage,
                     {"stage": stage.stage, "items": items, "kind": "review"}, project_id=pid)
        return "in_correction"
    stage.status, stage.decided_on = "approved", today
    last = max(process().stages)
    project.status = "completed" if stage.stage == last else "approved"
    record_event(session, actor, "stage.approved", stage, {"stage": stage.stage}, project_id=pid)
    if stage.stage < last:
        record_event(session, actor, "stage.opened", project, {"stage": stage.stage + 1})
    return "approved"
