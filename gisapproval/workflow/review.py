"""Simultaneous review (同步审批): each department decides its own task; the leader signs off
where the stage says so (两级审批) and approves extensions (art. 42); reviewers stop the clock for
expert review, hearings and inspections (art. 45). Each decision settles the stage when it is the
last one open (base.settle_stage: most severe wins, corrections merged into one notice).

A review task changes by a guarded state machine (TRANSITIONS); two reviewers deciding the same
task at once: the row version lets one win and gives the other a ConflictError."""

from __future__ import annotations

import datetime as dt
import functools

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ..audit import record_event
from ..errors import ConflictError, InputError, NotFoundError
from ..models import (
    DECISIONS,
    ClockEvent,
    ExtensionRequest,
    ReviewTask,
    TaskDecision,
    User,
)
from .base import (
    get_stage,
    get_task,
    process,
    require_department_role,
    require_role,
    settle_stage,
    today_in_china,
)

STOP_KINDS = ("expert_review", "hearing", "inspection")
# (state, event) -> new state; anything else is refused
TRANSITIONS = {
    ("pending", "accept"): "in_review",
    ("in_review", "approved"): "approved",
    ("in_review", "approved_with_conditions"): "approved_with_conditions",
    ("in_review", "correction_requested"): "correction_requested",
    ("in_review", "rejected"): "rejected",
    ("in_review", "propose"): "awaiting_signoff",
    ("in_review", "deem"): "deemed_approved",
    ("awaiting_signoff", "approved"): "approved",
    ("awaiting_signoff", "approved_with_conditions"): "approved_with_conditions",
    ("awaiting_signoff", "correction_requested"): "correction_requested",
    ("awaiting_signoff", "rejected"): "rejected",
    ("awaiting_signoff", "return"): "in_review",
    ("correction_requested", "resubmit"): "in_review",
}
MAX_TEXT = 4000


def transition(task: ReviewTask, event: str) -> str:
    new = TRANSITIONS.get((task.status, event))
    if new is None:
        raise ConflictError(f"a task that is {task.status} cannot be {event}", where=f"task {task.id}")
    task.status = new
    return new


def _text(value: str | None, field: str, required: bool) -> str | None:
    value = (value or "").strip()
    if required and not value:
        raise InputError(f"{field} is required", where=field)
    if len(value) > MAX_TEXT:
        raise InputError(f"{field} is longer than {MAX_TEXT} characters", where=field)
    return value or None


def _flush(session: Session, task: ReviewTask) -> None:
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError("someone else decided this task first; reload it", where=f"task {task.id}") from None


def guarded(use_case):
    """A concurrent change of the same task (row version moved on) becomes a ConflictError,
    wherever in the use case the ORM flushes."""

    @functools.wraps(use_case)
    def wrapper(session, actor, task_id, *args, **kwargs):
        try:
            return use_case(session, actor, task_id, *args, **kwargs)
        except StaleDataError:
            raise ConflictError("someone else decided this task first; reload it", where=f"task {task_id}") from None

    return wrapper


def _check_version(task: ReviewTask, row_version: int | None) -> None:
    if row_version is not None and row_version != task.row_version:
        raise ConflictError("the task changed since you opened it (someone else acted first); reload it",
                            where=f"task {task.id}")


def _finalize(session: Session, actor: User | None, task: ReviewTask, decision: TaskDecision | None,
              event: str, today: dt.date) -> None:
    transition(task, event)
    if decision is not None:
        task.opinion, task.conditions = decision.opinion, decision.conditions
        task.decided_by_id = decision.decided_by_id
    task.decided_at = dt.datetime.now(dt.UTC)
    stage_id, pid = task.stage_instance_id, task.stage_instance.project_id
    if event == "deem":
        session.add(ClockEvent(stage_instance_id=stage_id, review_task_id=task.id, kind="deemed", on=today,
                               reason="超时默认同意 / deemed approved on timeout"))
    else:
        session.add(ClockEvent(stage_instance_id=stage_id, review_task_id=task.id, kind="decided", on=today))
    if task.status == "correction_requested":
        session.add(ClockEvent(stage_instance_id=stage_id, review_task_id=task.id, kind="stop",
                               stop_kind="correction", on=today, reason="补正材料 / awaiting corrections"))
    record_event(session, actor, "review_task.deemed_approved" if event == "deem" else "review_task.decided", task,
                 {"department": task.department.code, "decision": task.status, "opinion": task.opinion,
                  "conditions": task.conditions,
                  "correction_items": decision.correction_items if decision else [],
                  "signed_off_by": decision.signed_off_by_id if decision else None}, project_id=pid)
    _flush(session, task)
    settle_stage(session, actor, task.stage_instance, today)


@guarded
def decide_review_task(session: Session, actor: User, task_id: int, decision: str, opinion: str,
                       conditions: str | None = None, correction_items: list[str] | None = None,
                       *, row_version: int | None = None, today: dt.date | None = None) -> ReviewTask:
    """A reviewer of the task's department decides: approve, approve with conditions, request
    correction (listing the items), or reject with reasons. Where the leader must sign off, the
    decision waits for the sign-off."""
    today = today or today_in_china()
    task = get_task(session, task_id)
    require_department_role(actor, task, "reviewer")
    _check_version(task, row_version)
    if decision not in DECISIONS:
        raise InputError(f"unknown decision {decision!r}; one of {', '.join(DECISIONS)}", where="decision")
    if task.status != "in_review":
        raise ConflictError(f"the task is {task.status}, not in review", where=f"task {task.id}")
    opinion = _text(opinion, "opinion", True)
    conditions = _text(conditions, "conditions", decision == "approved_with_conditions")
    items = [i.strip() for i in (correction_items or []) if i and i.strip()]
    if decision == "correction_requested" and not items:
        raise InputError("list at least one item the applicant must correct", where="correction_items")
    if any(len(i) > MAX_TEXT for i in items):
        raise InputError(f"a correction item is longer than {MAX_TEXT} characters", where="correction_items")
    record = TaskDecision(review_task_id=task.id, decision=decision, opinion=opinion,
                          conditions=conditions if decision == "approved_with_conditions" else None,
                          correction_items=items if decision == "correction_requested" else [],
                          status="proposed" if task.needs_leader_signoff else "final",
                          decided_by_id=actor.id, decided_on=today)
    session.add(record)
    task.assigned_reviewer_id = actor.id
    if task.needs_leader_signoff:
        transition(task, "propose")
        task.opinion, task.conditions = record.opinion, record.conditions
        record_event(session, actor, "review_task.proposed", task,
                     {"department": task.department.code, "decision": decision, "opinion": opinion,
                      "conditions": record.conditions, "correction_items": record.correction_items},
                     project_id=task.stage_instance.project_id)
        _flush(session, task)
        return task
    _finalize(session, actor, task, record, decision, today)
    return task


@guarded
def sign_off(session: Session, actor: User, task_id: int, approve: bool, note: str | None = None,
             *, row_version: int | None = None, today: dt.date | None = None) -> ReviewTask:
    """The leader of the task's department signs the reviewer's decision off, or returns it."""
    today = today or today_in_china()
    task = get_task(session, task_id)
    require_department_role(actor, task, "leader")
    _check_version(task, row_version)
    if task.status != "awaiting_signoff":
        raise ConflictError(f"the task is {task.status}, not awaiting sign-off", where=f"task {task.id}")
    record = session.scalar(sa.select(TaskDecision).where(
        TaskDecision.review_task_id == task.id, TaskDecision.status == "proposed").order_by(TaskDecision.id.desc()))
    note = _text(note, "note", not approve)
    record.signed_off_by_id, record.signed_off_at, record.signoff_note = (
        actor.id, dt.datetime.now(dt.UTC), note)
    if not approve:
        record.status = "returned"
        transition(task, "return")
        record_event(session, actor, "review_task.signoff_returned", task,
                     {"department": task.department.code, "note": note},
                     project_id=task.stage_instance.project_id)
        _flush(session, task)
        return task
    record.status = "final"
    record_event(session, actor, "review_task.signed_off", task,
                 {"department": task.department.code, "decision": record.decision, "note": note},
                 project_id=task.stage_instance.project_id)
    _finalize(session, actor, task, record, record.decision, today)
    return task


def _open_events(session: Session, task: ReviewTask) -> list[ClockEvent]:
    return session.scalars(sa.select(ClockEvent).where(ClockEvent.review_task_id == task.id)
                           .order_by(ClockEvent.on, ClockEvent.id)).all()


def _is_stopped(session: Session, task: ReviewTask) -> bool:
    stopped = False
    for e in _open_events(session, task):
        if e.kind == "stop":
            stopped = True
        elif e.kind == "resume":
            stopped = False
    return stopped


def stop_clock(session: Session, actor: User, task_id: int, stop_kind: str, reason: str,
               *, today: dt.date | None = None) -> ClockEvent:
    """Stop the task's clock for an expert review, a hearing or an inspection (art. 45); the
    reason is shown to the applicant."""
    today = today or today_in_china()
    task = get_task(session, task_id)
    require_department_role(actor, task, "reviewer")
    if stop_kind not in STOP_KINDS:
        raise InputError(f"unknown stop {stop_kind!r}; one of {', '.join(STOP_KINDS)}", where="stop_kind")
    reason = _text(reason, "reason", True)
    if task.status != "in_review":
        raise ConflictError(f"the task is {task.status}; only a task in review has a running clock",
                            where=f"task {task.id}")
    if _is_stopped(session, task):
        raise ConflictError("the clock is already stopped", where=f"task {task.id}")
    event = ClockEvent(stage_instance_id=task.stage_instance_id, review_task_id=task.id, kind="stop",
                       stop_kind=stop_kind, on=today, reason=reason)
    session.add(event)
    record_event(session, actor, "review_task.clock_stopped", task,
                 {"stop_kind": stop_kind, "reason": reason, "on": today.isoformat()},
                 project_id=task.stage_instance.project_id)
    session.flush()
    return event


def resume_clock(session: Session, actor: User, task_id: int, *, today: dt.date | None = None) -> ClockEvent:
    today = today or today_in_china()
    task = get_task(session, task_id)
    require_department_role(actor, task, "reviewer")
    events = _open_events(session, task)
    if not _is_stopped(session, task) or task.status != "in_review":
        raise ConflictError("the clock is not stopped", where=f"task {task.id}")
    stop = [e for e in events if e.kind == "stop"][-1]
    if today < stop.on:
        raise InputError("a resume cannot be before its stop", where="on")
    event = ClockEvent(stage_instance_id=task.stage_instance_id, review_task_id=task.id, kind="resume", on=today,
                       stop_kind=stop.stop_kind, reason=stop.reason)
    session.add(event)
    record_event(session, actor, "review_task.clock_resumed", task,
                 {"stop_kind": stop.stop_kind, "on": today.isoformat()}, project_id=task.stage_instance.project_id)
    session.flush()
    return event


def request_extension(session: Session, actor: User, task_id: int, reason: str, days: int | None = None,
                      *, today: dt.date | None = None) -> ExtensionRequest:
    """A reviewer asks for more working days (art. 42: by default once, 10 days)."""
    today = today or today_in_china()
    task = get_task(session, task_id)
    require_department_role(actor, task, "reviewer")
    allowed = process().extension_days
    days = allowed if days is None else days
    if not isinstance(days, int) or days < 1:
        raise InputError("days must be a whole number of at least 1", where="days")
    reason = _text(reason, "reason", True)
    if task.status not in ("in_review", "awaiting_signoff"):
        raise ConflictError(f"the task is {task.status}; only an open task can be extended", where=f"task {task.id}")
    taken = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(ExtensionRequest.days), 0)).where(
        ExtensionRequest.review_task_id == task.id, ExtensionRequest.status.in_(("pending", "approved"))))
    if taken + days > allowed:
        raise InputError(f"extensions may add at most {allowed} working days in all ({taken} already asked)",
                         where="days")
    req = ExtensionRequest(review_task_id=task.id, days=days, reason=reason, requested_by_id=actor.id,
                           requested_on=today)
    session.add(req)
    session.flush()
    record_event(session, actor, "extension.requested", req, {"task": task.id, "days": days, "reason": reason},
                 project_id=task.stage_instance.project_id)
    return req


def decide_extension(session: Session, actor: User, request_id: int, approve: bool, note: str | None = None,
                     *, today: dt.date | None = None) -> ExtensionRequest:
    """The leader of the task's department approves (the clock gains the days) or refuses."""
    today = today or today_in_china()
    req = session.get(ExtensionRequest, request_id, with_for_update=True)
    if req is None:
        raise NotFoundError(f"no extension request {request_id}", where="request_id")
    task = get_task(session, req.review_task_id)
    require_department_role(actor, task, "leader")
    if req.status != "pending":
        raise ConflictError(f"the request is already {req.status}", where=f"extension {request_id}")
    note = _text(note, "note", not approve)
    req.status = "approved" if approve else "refused"
    req.decided_by_id, req.decided_at, req.decision_note = actor.id, dt.datetime.now(dt.UTC), note
    if approve:
        session.add(ClockEvent(stage_instance_id=task.stage_instance_id, review_task_id=task.id, kind="extension",
                               on=today, days=req.days, reason=req.reason, approved_by_id=actor.id))
    record_event(session, actor, f"extension.{req.status}", req,
                 {"task": task.id, "days": req.days, "reason": req.reason, "note": note},
                 project_id=task.stage_instance.project_id)
    session.flush()
    return req


def extend_joint_deadline(session: Session, actor: User, stage_id: int, reason: str, days: int | None = None,
                          *, today: dt.date | None = None) -> ClockEvent:
    """A leader extends a stage's joint-handling limit (art. 42: 45 working days, extendable by 15);
    the reason is shown to the applicant. Extensions of one stage add up to at most the
    configured joint extension."""
    today = today or today_in_china()
    require_role(actor, "leader")
    stage = get_stage(session, stage_id, lock=True)
    if stage.accepted_on is None or stage.status not in ("in_review", "in_correction"):
        raise ConflictError(f"the stage is {stage.status}; only a stage under review can be extended",
                            where=f"stage {stage.id}")
    allowed = process().joint_extension_days
    days = allowed if days is None else days
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise InputError("days must be a whole number of at least 1", where="days")
    reason = _text(reason, "reason", True)
    taken = session.scalar(sa.select(sa.func.coalesce(sa.func.sum(ClockEvent.days), 0)).where(
        ClockEvent.stage_instance_id == stage.id, ClockEvent.review_task_id.is_(None),
        ClockEvent.kind == "extension"))
    if taken + days > allowed:
        raise InputError(f"the joint limit may be extended by at most {allowed} working days in all "
                         f"({taken} already granted)", where="days")
    event = ClockEvent(stage_instance_id=stage.id, review_task_id=None, kind="extension", on=today, days=days,
                       reason=reason, approved_by_id=actor.id)
    session.add(event)
    session.flush()
    record_event(session, actor, "stage.joint_limit_extended", stage, {"days": days, "reason": reason},
                 project_id=stage.project_id)
    return event


def stage_of(session: Session, task: ReviewTask):
    return get_stage(session, task.stage_instance_id)
