"""Electronic supervision (电子监察): per department, per reviewer and per month — items handled,
on-time rate, average working days used against the limit, overdue now, correction (return)
rate, deemed approvals; and the open tasks overdue or in warning now. Computed from the clock
events at read time."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from .errors import PermissionDeniedError
from .models import Department, ReviewTask, StageInstance, User
from .workflow.calendar import load_calendar
from .workflow.clock import OPEN_TASK_STATES
from .workflow.sweep import clock_of

SUPERVISING = frozenset({"supervisor", "admin", "leader"})


def _bucket():
    return {"handled": 0, "on_time": 0, "used_days": 0, "limit_days": 0, "overdue_now": 0, "warning_now": 0,
            "open": 0, "corrections": 0, "rejections": 0, "deemed": 0}


def _finish(b: dict) -> dict:
    h = b["handled"]
    b["on_time_rate"] = round(b["on_time"] / h, 3) if h else None
    b["avg_used_days"] = round(b["used_days"] / h, 1) if h else None
    b["avg_limit_days"] = round(b["limit_days"] / h, 1) if h else None
    b["correction_rate"] = round(b["corrections"] / h, 3) if h else None
    return b


def metrics(session: Session, actor: User, today: dt.date) -> dict:
    if actor is None or not (actor.role_codes & SUPERVISING):
        raise PermissionDeniedError("the supervision figures are for supervisors, leaders and administrators")
    calendar = load_calendar(session)
    tasks = session.scalars(sa.select(ReviewTask).join(StageInstance).where(ReviewTask.status != "pending")
                            .options(selectinload(ReviewTask.stage_instance).selectinload(StageInstance.project))
                            ).all()
    users = {u.id: u for u in session.scalars(sa.select(User))}
    names = {d.code: (d.name_zh, d.name_en) for d in session.scalars(sa.select(Department))}
    by_dept: dict[str, dict] = defaultdict(_bucket)
    by_reviewer: dict[int, dict] = defaultdict(_bucket)
    by_month: dict[str, dict] = defaultdict(_bucket)
    alerts, provisional = [], set()
    for t in tasks:
        clock = clock_of(session, calendar, t, today)
        provisional.update(clock.unknown_years)
        dept = t.department.code
        buckets = [by_dept[dept]]
        if t.decided_by_id:
            buckets.append(by_reviewer[t.decided_by_id])
        if t.status in OPEN_TASK_STATES:
            for b in buckets:
                b["open"] += 1
                b["overdue_now"] += clock.colour == "red"
                b["warning_now"] += clock.colour == "yellow"
            if clock.colour in ("red", "yellow"):
                p = t.stage_instance.project
                alerts.append({"task_id": t.id, "project_id": p.id, "project_code": p.code, "project_name": p.name,
                               "project_name_en": p.name_en, "department": dept, "stage": t.stage_instance.stage,
                               "colour": clock.colour, "due_on": clock.due_on, "days_left": clock.days_left,
                               "is_provisional": clock.is_provisional, "is_legal_overdue": clock.is_legal_overdue})
            continue
        if clock.finished_on is None:
            continue
        buckets.append(by_month[clock.finished_on.strftime("%Y-%m")])
        deemed = t.status == "deemed_approved"
        for b in buckets:
            b["handled"] += 1
            b["on_time"] += bool(clock.is_on_time) and not deemed
            b["used_days"] += clock.used_days or 0
            b["limit_days"] += t.committed_limit_days
            b["corrections"] += t.status == "correction_requested"
            b["rejections"] += t.status == "rejected"
            b["deemed"] += deemed
    steps = _steps(session, calendar)
    alerts.sort(key=lambda a: (a["colour"] != "red", a["days_left"] if a["days_left"] is not None else 0))
    total = _bucket()
    for b in by_dept.values():
        for k in total:
            total[k] += b[k]
    reviewers = []
    for uid, b in by_reviewer.items():
        u = users.get(uid)
        reviewers.append({"reviewer": u.display_name if u else str(uid),
                          "department": u.department.code if u and u.department else None, **_finish(b)})
    return {"today": today, "total": _finish(total),
            "departments": [{"department": k, "name_zh": names.get(k, (k, k))[0], "name_en": names.get(k, (k, k))[1],
                             **_finish(v)} for k, v in sorted(by_dept.items())],
            "reviewers": sorted(reviewers, key=lambda r: (r["department"] or "", r["reviewer"])),
            "months": [{"month": k, **_finish(v)} for k, v in sorted(by_month.items())],
            "steps": steps, "alerts": alerts, "provisional_years": sorted(provisional)}


def _steps(session: Session, calendar) -> list[dict]:
    """Each post's own step (办事时限细化到每一个工作岗位): the window's acceptance (received ->
    accepted, against the stage's intake limit) and the leader's sign-off (proposal -> sign-off,
    against the task's sign-off limit)."""
    from .models import TaskDecision
    from .workflow.base import CHINA, process

    proc = process()
    intake = {"step": "intake", "handled": 0, "on_time": 0, "used_days": 0, "limit_days": 0}
    for st in session.scalars(sa.select(StageInstance).where(StageInstance.accepted_on.is_not(None))):
        spec = proc.stages.get(st.stage)
        if spec is None:
            continue
        used = max(calendar.between(st.received_on, st.accepted_on)[0], 0)
        intake["handled"] += 1
        intake["used_days"] += used
        intake["limit_days"] += spec.intake_limit_days
        intake["on_time"] += used <= spec.intake_limit_days
    signoff = {"step": "signoff", "handled": 0, "on_time": 0, "used_days": 0, "limit_days": 0}
    rows = session.execute(sa.select(TaskDecision, ReviewTask, StageInstance)
                           .join(ReviewTask, ReviewTask.id == TaskDecision.review_task_id)
                           .join(StageInstance, StageInstance.id == ReviewTask.stage_instance_id)
                           .where(TaskDecision.signed_off_at.is_not(None))).all()
    for d, task, st in rows:
        spec = proc.stages.get(st.stage)
        limit = spec.task(task.department.code).signoff_limit_days if spec else 0
        used = max(calendar.between(d.decided_on, d.signed_off_at.astimezone(CHINA).date())[0], 0)
        signoff["handled"] += 1
        signoff["used_days"] += used
        signoff["limit_days"] += limit
        signoff["on_time"] += used <= limit
    out = []
    for b in (intake, signoff):
        h = b["handled"]
        out.append({**b, "on_time_rate": round(b["on_time"] / h, 3) if h else None,
                    "avg_used_days": round(b["used_days"] / h, 1) if h else None,
                    "avg_limit_days": round(b["limit_days"] / h, 1) if h else None})
    return out
