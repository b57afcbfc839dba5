"""The sweep (`gisapproval sweep`): art. 32 deemed acceptances, deemed approvals on timeout and
yellow/red warnings. Idempotent, and safe with two sweeps at once: rows are taken with
``FOR UPDATE SKIP LOCKED`` and re-checked after locking; warnings insert ON CONFLICT DO NOTHING."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ..audit import record_event
from ..models import ClockEvent, ReviewTask, StageInstance, TaskWarning
from .base import process, today_in_china
from .calendar import load_calendar
from .clock import task_clock
from .intake import _accept
from .review import _finalize


def _task_events(session: Session, task_id: int) -> list[ClockEvent]:
    return session.scalars(sa.select(ClockEvent).where(ClockEvent.review_task_id == task_id)).all()


def clock_of(session: Session, calendar, task: ReviewTask, today: dt.date, stage: StageInstance | None = None):
    stage = stage or task.stage_instance
    spec = process().stages[stage.stage].task(task.department.code) if stage.stage in process().stages else None
    signoff = spec.signoff_limit_days if (spec and task.needs_leader_signoff) else 0
    return task_clock(calendar, status=task.status, accepted_on=stage.accepted_on,
                      committed_days=task.committed_limit_days, legal_days=task.legal_limit_days,
                      signoff_days=min(signoff, task.committed_limit_days - 1),
                      events=_task_events(session, task.id), today=today, warning_days=process().warning_days)


def sweep(session: Session, today: dt.date | None = None) -> dict[str, int]:
    today = today or today_in_china()
    calendar = load_calendar(session)
    proc = process()
    counts = {"deemed_accepted": 0, "deemed_approved": 0, "warnings": 0}

    # 1. art. 32: no notice within the acceptance limit -> accepted from the day of receipt
    stages = session.scalars(sa.select(StageInstance).where(StageInstance.status == "intake")
                             .order_by(StageInstance.id).with_for_update(skip_locked=True, of=StageInstance)
                             .execution_options(populate_existing=True)).all()
    for stage in stages:
        if stage.status != "intake":
            continue
        if calendar.add(stage.received_on, proc.acceptance_limit_days).day < today:
            _accept(session, None, stage, stage.received_on, [], deemed=True)
            counts["deemed_accepted"] += 1

    # 2. deemed approval when a configured task's committed deadline has passed
    tasks = session.scalars(sa.select(ReviewTask).where(ReviewTask.status == "in_review",
                                                        ReviewTask.is_deemed_on_timeout.is_(True))
                            .order_by(ReviewTask.id).with_for_update(skip_locked=True, of=ReviewTask)
                            .execution_options(populate_existing=True)).all()
    for task in tasks:
        if task.status != "in_review":
            continue
        clock = clock_of(session, calendar, task, today)
        if clock.committed is None or clock.committed.is_stopped or clock.due_on >= today:
            continue
        due = clock.due_on
        task.opinion = (f"该部门未在{task.committed_limit_days}个工作日承诺时限内（{due}前）出具意见，"
                        f"系统按超时默认同意处理。")
        _finalize(session, None, task, None, "deem", due)
        counts["deemed_approved"] += 1

    # 3. warnings: yellow when few working days are left, red when overdue (once per deadline)
    open_tasks = session.scalars(sa.select(ReviewTask).where(ReviewTask.status.in_(("in_review", "awaiting_signoff")))
                                 .order_by(ReviewTask.id)).all()
    for task in open_tasks:
        clock = clock_of(session, calendar, task, today)
        if clock.colour not in ("yellow", "red"):
            continue
        stmt = (insert(TaskWarning).values(review_task_id=task.id, level=clock.colour, due_on=clock.due_on,
                                           raised_on=today, raised_at=dt.datetime.now(dt.UTC))
                .on_conflict_do_nothing(index_elements=["review_task_id", "level", "due_on"])
                .returning(TaskWarning.id))
        if session.execute(stmt).scalar() is not None:
            record_event(session, None, f"review_task.warned_{clock.colour}", task,
                         {"due_on": clock.due_on.isoformat(), "days_left": clock.days_left,
                          "department": task.department.code,
                          "provisional": clock.is_provisional},
                         project_id=task.stage_instance.project_id)
            counts["warnings"] += 1
    session.flush()
    return counts
