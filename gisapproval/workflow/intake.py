"""One-stop intake (一站受理): the applicant submits a stage; the window accepts it (receipt
number and query code; minor items may follow, 容缺受理) or issues ONE correction notice listing
every missing material and every failed check (一次性告知). Administrative Licensing Law art. 32:
without a notice within the acceptance limit the application counts as accepted from receipt
(applied by the sweep, see sweep.py)."""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..audit import record_event
from ..errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from ..models import (
    ClockEvent,
    CorrectionNotice,
    OutstandingItem,
    ReviewTask,
    StageInstance,
    StageSubmission,
    User,
)
from .base import (
    department_by_code,
    failed_check_items,
    get_project,
    get_stage,
    merge_items,
    new_query_code,
    new_receipt_no,
    open_early_notices,
    process,
    require_role,
    today_in_china,
)
from .calendar import load_calendar
from .review import transition

log = logging.getLogger(__name__)


def _run_checks(session: Session, actor: User, project, stage: StageInstance) -> None:
    try:
        from ..checks.engine import run_project_checks
    except ImportError:
        log.info("no check engine installed: stage %s goes to review without automatic checks", stage.id)
        return
    run_project_checks(session, actor, project, purpose="review", stage_instance=stage)


def submit_project(session: Session, actor: User, project_id: int, materials: list[str] | None = None,
                   *, today: dt.date | None = None) -> StageInstance:
    """The applicant submits the project's current stage: the first submission, the next stage
    after an approval, or a resubmission after a correction notice. ``materials``: the codes of
    the stage's materials handed in (None: all of them)."""
    today = today or today_in_china()
    project = get_project(session, project_id, lock=True)
    if actor is None or project.applicant_id != actor.id:
        raise PermissionDeniedError("only the project's own applicant may submit it", where=f"project {project_id}")
    if not project.buildings:
        raise InputError("the project has no building: draw or upload at least one footprint first",
                         where="buildings")
    proc = process()
    stages = {s.stage: s for s in session.scalars(sa.select(StageInstance).where(
        StageInstance.project_id == project.id).execution_options(populate_existing=True))}
    current = stages.get(project.current_stage)
    if project.status == "draft" and not stages:
        number, mode = 1, "first"
    elif project.status == "approved" and current is not None and current.status == "approved":
        number, mode = current.stage + 1, "next"
        if number not in proc.stages:
            raise ConflictError("every stage is approved; nothing left to submit", where=f"project {project_id}")
    elif project.status == "in_correction" and current is not None and current.status == "in_correction":
        number, mode = current.stage, "resubmission"
    else:
        raise ConflictError(f"the project is {project.status}: there is nothing to submit now",
                            where=f"project {project_id}")
    spec = proc.stages[number]
    known = [m.code for m in spec.materials]
    given = list(dict.fromkeys(known if materials is None else materials))
    unknown = [m for m in given if m not in known]
    if unknown:
        raise InputError(f"unknown material {unknown[0]!r}; stage {number} lists {', '.join(known)}",
                         where="materials")
    resubmission = mode == "resubmission"
    if mode in ("first", "next"):
        stage = StageInstance(project_id=project.id, stage=number, status="intake", received_on=today)
        session.add(stage)
        session.flush()
        depts = department_by_code(session)
        for t in spec.tasks:
            session.add(ReviewTask(stage_instance_id=stage.id, department_id=depts[t.department].id,
                                   status="pending", legal_limit_days=t.legal_limit_days,
                                   committed_limit_days=proc.committed_days(t, project.is_green_channel),
                                   needs_leader_signoff=t.needs_leader_signoff,
                                   is_deemed_on_timeout=t.is_deemed_on_timeout))
        session.add(ClockEvent(stage_instance_id=stage.id, kind="received", on=today))
        project.status = "submitted"
    else:
        stage = get_stage(session, current.id, lock=True)
        for notice in session.scalars(sa.select(CorrectionNotice).where(
                CorrectionNotice.stage_instance_id == stage.id, CorrectionNotice.status == "open")):
            notice.status, notice.answered_at = "answered", dt.datetime.now(dt.UTC)
        session.add(ClockEvent(stage_instance_id=stage.id, kind="resume", on=today,
                               reason="补正材料已提交 / corrections submitted"))
        if stage.accepted_on is None:
            stage.status, stage.received_on = "intake", today  # back to the window; art. 32 runs again
            project.status = "submitted"
        else:
            # corrections asked for in review go straight back to the departments that asked
            for task in stage.tasks:
                if task.status == "correction_requested":
                    transition(task, "resubmit")
                    task.decided_by_id, task.decided_at = None, None
                    session.add(ClockEvent(stage_instance_id=stage.id, review_task_id=task.id, kind="resume",
                                           on=today, reason="补正材料已提交 / corrections submitted"))
            stage.status = "in_review"
            project.status = "in_review"
    project.current_stage = number
    session.add(StageSubmission(stage_instance_id=stage.id, submitted_by_id=actor.id, submitted_on=today,
                                materials=given, is_resubmission=resubmission))
    session.flush()
    _run_checks(session, actor, project, stage)
    record_event(session, actor, "stage.submitted", stage,
                 {"stage": number, "materials": given, "resubmission": resubmission}, project_id=project.id)
    session.flush()
    return stage


def latest_submission(session: Session, stage: StageInstance) -> StageSubmission | None:
    return session.scalar(sa.select(StageSubmission).where(StageSubmission.stage_instance_id == stage.id)
                          .order_by(StageSubmission.id.desc()).limit(1))


def completeness(session: Session, stage: StageInstance) -> dict:
    """The stage's materials against the latest submission: what is there, what is missing."""
    spec = process().stages[stage.stage]
    sub = latest_submission(session, stage)
    given = set(sub.materials if sub else [m.code for m in spec.materials])
    return {"given": [m for m in spec.materials if m.code in given],
            "missing_required": [m for m in spec.materials if m.code not in given and not m.is_minor],
            "missing_minor": [m for m in spec.materials if m.code not in given and m.is_minor]}


def acceptance_deadline(session: Session, stage: StageInstance):
    """The art. 32 deadline for the window's notice: the N-th working day after receipt."""
    return load_calendar(session).add(stage.received_on, process().acceptance_limit_days)


def _accept(session: Session, actor: User | None, stage: StageInstance, accepted_on: dt.date,
            deferred: list[tuple[str, dt.date]], deemed: bool) -> StageInstance:
    project = get_project(session, stage.project_id, lock=True)
    stage.status, stage.accepted_on = "in_review", accepted_on
    if project.receipt_no is None:
        project.receipt_no = new_receipt_no(project, accepted_on)
        project.query_code = new_query_code()
    spec = process().stages[stage.stage]
    by_code = {m.code: m for m in spec.materials}
    for code, due in deferred:
        m = by_code[code]
        session.add(OutstandingItem(stage_instance_id=stage.id, material_code=code, name_zh=m.name_zh,
                                    name_en=m.name_en, due_on=due, recorded_by_id=actor.id if actor else None))
    reason = "《行政许可法》第三十二条：逾期未告知，自收到申请之日起即为受理 / deemed accepted (art. 32)" if deemed else None
    session.add(ClockEvent(stage_instance_id=stage.id, kind="accepted", on=accepted_on, reason=reason))
    for task in stage.tasks:
        if task.status == "pending":
            task.status = "in_review"
    open_early_notices(session, stage)
    project.status = "in_review"
    record_event(session, actor, "stage.deemed_accepted" if deemed else "stage.accepted", stage,
                 {"stage": stage.stage, "receipt_no": project.receipt_no, "accepted_on": accepted_on.isoformat(),
                  "outstanding": [{"material": c, "due_on": d.isoformat()} for c, d in deferred]},
                 project_id=project.id)
    session.flush()
    return stage


def accept_stage(session: Session, actor: User, stage_id: int, deferred: dict[str, dt.date] | None = None,
                 *, today: dt.date | None = None) -> StageInstance:
    """The window accepts a submitted stage. Every required material must be there; a missing
    minor material may follow later when listed in ``deferred`` with its due date (容缺受理)."""
    require_role(actor, "clerk")
    today = today or today_in_china()
    stage = get_stage(session, stage_id, lock=True)
    if stage.status != "intake":
        raise ConflictError(f"stage is {stage.status}, not awaiting intake", where=f"stage {stage_id}")
    deferred = dict(deferred or {})
    state = completeness(session, stage)
    if state["missing_required"]:
        names = "、".join(m.name_zh for m in state["missing_required"])
        raise InputError(f"required materials missing ({names}): issue a correction notice instead",
                         where="materials")
    minor = {m.code for m in state["missing_minor"]}
    for code, due in deferred.items():
        if code not in minor:
            raise InputError(f"{code!r} is not a missing minor material", where=f"deferred.{code}")
        if not isinstance(due, dt.date) or due <= today:
            raise InputError("the due date of a material to follow must be after today", where=f"deferred.{code}")
    left = minor - set(deferred)
    if left:
        raise InputError(f"missing minor materials need a due date to follow later: {', '.join(sorted(left))}",
                         where="deferred")
    if acceptance_deadline(session, stage).day < today:
        raise ConflictError("the art. 32 acceptance limit has passed: the sweep records the deemed acceptance",
                            where=f"stage {stage_id}")
    return _accept(session, actor, stage, today, sorted(deferred.items()), deemed=False)


def issue_intake_notice(session: Session, actor: User, stage_id: int, extra_items: list[str] | None = None,
                        *, today: dt.date | None = None) -> CorrectionNotice:
    """The window's one-time notice (一次性告知): every missing required material, every failed
    check of every department (merged, de-duplicated) and the clerk's own items, at once."""
    require_role(actor, "clerk")
    today = today or today_in_china()
    stage = get_stage(session, stage_id, lock=True)
    if stage.status != "intake":
        raise ConflictError(f"stage is {stage.status}, not awaiting intake", where=f"stage {stage_id}")
    if acceptance_deadline(session, stage).day < today:
        raise ConflictError("the art. 32 limit for a notice has passed: the application counts as accepted",
                            where=f"stage {stage_id}")
    items = [{"source": "material", "code": m.code, "text_zh": f"缺少材料：{m.name_zh}",
              "text_en": f"Missing material: {m.name_en}"} for m in completeness(session, stage)["missing_required"]]
    items += failed_check_items(session, stage)
    for i, text in enumerate(extra_items or []):
        text = (text or "").strip()
        if len(text) > 1000:
            raise InputError("an item is longer than 1000 characters", where=f"items[{i}]")
        if text:
            items.append({"source": "window", "department": "window", "text_zh": text, "text_en": text})
    items = merge_items(items)
    if not items:
        raise InputError("nothing to notify: no material is missing and no check failed; accept instead",
                         where="items")
    notice = CorrectionNotice(stage_instance_id=stage.id, issued_by_id=actor.id, items=items, status="open")
    session.add(notice)
    session.add(ClockEvent(stage_instance_id=stage.id, kind="stop", stop_kind="correction", on=today,
                           reason="一次性补正告知 / one-time correction notice"))
    stage.status = "in_correction"
    project = get_project(session, stage.project_id, lock=True)
    project.status = "in_correction"
    record_event(session, actor, "correction_notice.issued", stage,
                 {"stage": stage.stage, "items": items, "kind": "intake"}, project_id=project.id)
    session.flush()
    return notice


def receive_outstanding_item(session: Session, actor: User, item_id: int, *, today: dt.date | None = None):
    """The window records that a minor material accepted to follow has arrived."""
    require_role(actor, "clerk")
    item = session.get(OutstandingItem, item_id, with_for_update=True)
    if item is None:
        raise NotFoundError(f"no outstanding item {item_id}", where="item_id")
    if item.received_on is not None:
        raise ConflictError(f"already received on {item.received_on}", where=f"item {item_id}")
    item.received_on = today or today_in_china()
    stage = session.get(StageInstance, item.stage_instance_id)
    record_event(session, actor, "outstanding_item.received", item,
                 {"material": item.material_code, "due_on": item.due_on.isoformat(),
                  "received_on": item.received_on.isoformat(), "late": item.received_on > item.due_on},
                 project_id=stage.project_id)
    session.flush()
    return item
