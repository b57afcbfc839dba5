"""Read models of the workflow for the pages and the JSON API: queues, tasks with their clocks,
a project's stages and timeline. Every deadline is derived here, at read time, from the clock
events and the calendar as it is now."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from ..errors import NotFoundError, PermissionDeniedError
from ..models import (
    CheckResult,
    CheckRun,
    ClockEvent,
    CorrectionNotice,
    Department,
    EarlyNotice,
    Event,
    ExtensionRequest,
    OutstandingItem,
    Project,
    ReviewTask,
    StageInstance,
    TaskDecision,
    TaskWarning,
    User,
)
from .base import can_view_project, process, visible_project
from .calendar import load_calendar
from .intake import completeness
from .sweep import clock_of


def _users(session: Session, ids) -> dict[int, User]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(ids)))}


def clock_dict(clock) -> dict:
    c, l = clock.committed, clock.legal
    return {
        "accepted_on": clock.start_on, "committed_due_on": c.due_on if c else None,
        "legal_due_on": l.due_on if l else None, "review_step_due_on": clock.review_step_due_on,
        "days_left": clock.days_left, "colour": clock.colour, "is_stopped": bool(c and c.is_stopped),
        "days_remaining_at_stop": c.days_remaining_at_stop if c else None,
        "stop_kind": clock.stop_kind, "stop_reason": clock.stop_reason, "stop_on": clock.stop_on,
        "extension_days": clock.extension_days, "extension_reasons": list(clock.extension_reasons),
        "is_provisional": clock.is_provisional, "unknown_years": list(clock.unknown_years),
        "used_days": clock.used_days, "finished_on": clock.finished_on, "is_on_time": clock.is_on_time,
        "is_legal_overdue": clock.is_legal_overdue,
    }


def task_row(session: Session, calendar, task: ReviewTask, today: dt.date) -> dict:
    stage = task.stage_instance
    project = stage.project
    spec = process().stages[stage.stage]
    return {
        "id": task.id, "row_version": task.row_version, "status": task.status,
        "department": task.department.code, "department_zh": task.department.name_zh,
        "department_en": task.department.name_en,
        "stage": stage.stage, "stage_id": stage.id, "stage_zh": spec.name_zh, "stage_en": spec.name_en,
        "stage_status": stage.status,
        "project_id": project.id, "project_code": project.code, "project_name": project.name,
        "project_name_en": project.name_en, "receipt_no": project.receipt_no,
        "is_green_channel": project.is_green_channel,
        "legal_limit_days": task.legal_limit_days, "committed_limit_days": task.committed_limit_days,
        "needs_leader_signoff": task.needs_leader_signoff, "is_deemed_on_timeout": task.is_deemed_on_timeout,
        "opinion": task.opinion, "conditions": task.conditions, "decided_at": task.decided_at,
        "clock": clock_dict(clock_of(session, calendar, task, today, stage)),
    }


def department_tasks(session: Session, department_id: int, today: dt.date, *, open_only: bool = True) -> list[dict]:
    calendar = load_calendar(session)
    q = (sa.select(ReviewTask).join(StageInstance).where(ReviewTask.department_id == department_id)
         .options(selectinload(ReviewTask.stage_instance).selectinload(StageInstance.project))
         .order_by(ReviewTask.id))
    if open_only:
        q = q.where(ReviewTask.status.in_(("in_review", "awaiting_signoff")))
    else:
        q = q.where(ReviewTask.status != "pending")
    rows = [task_row(session, calendar, t, today) for t in session.scalars(q)]
    order = {"red": 0, "yellow": 1, "green": 2, "stopped": 3, "waiting": 4, "done": 5}
    rows.sort(key=lambda r: (order.get(r["clock"]["colour"], 9), r["clock"]["committed_due_on"] or dt.date.max))
    return rows


def early_notices(session: Session, department_id: int) -> list[dict]:
    """Projects whose current stage is in review and whose next stage includes this department
    (提前介入, read-only). Derived from the stages, so projects loaded before the notices existed
    are included; ``early_notices`` rows record when the notice was first given."""
    dept = session.get(Department, department_id)
    proc = process()
    stages_for = [n for n, s in proc.stages.items() if n > 1 and dept is not None and dept.code in s.departments]
    if not stages_for:
        return []
    rows = session.execute(
        sa.select(StageInstance, Project).join(Project, Project.id == StageInstance.project_id)
        .where(StageInstance.status.in_(("in_review", "in_correction")), Project.current_stage == StageInstance.stage,
               StageInstance.stage.in_([n - 1 for n in stages_for]))
        .order_by(StageInstance.accepted_on.desc(), StageInstance.id.desc())).all()
    given = dict(session.execute(sa.select(EarlyNotice.stage_instance_id, EarlyNotice.created_at)
                                 .where(EarlyNotice.department_id == department_id)).all())
    return [{"next_stage": s.stage + 1, "stage": s.stage, "stage_status": s.status, "project_id": p.id,
             "project_code": p.code, "project_name": p.name, "project_name_en": p.name_en,
             "accepted_on": s.accepted_on, "created_at": given.get(s.id)} for s, p in rows]


def intake_queue(session: Session, today: dt.date) -> list[dict]:
    calendar = load_calendar(session)
    out = []
    stages = session.scalars(sa.select(StageInstance).where(StageInstance.status == "intake")
                             .options(selectinload(StageInstance.project)).order_by(StageInstance.received_on))
    for stage in stages:
        spec = process().stages[stage.stage]
        deadline = calendar.add(stage.received_on, process().acceptance_limit_days)
        comp = completeness(session, stage)
        left = calendar.between(today, deadline.day)[0]
        out.append({"stage_id": stage.id, "stage": stage.stage, "stage_zh": spec.name_zh, "stage_en": spec.name_en,
                    "project_id": stage.project_id, "project_code": stage.project.code,
                    "project_name": stage.project.name, "project_name_en": stage.project.name_en,
                    "applicant_org": stage.project.applicant_org, "is_green_channel": stage.project.is_green_channel,
                    "received_on": stage.received_on, "art32_due_on": deadline.day,
                    "art32_days_left": left, "is_provisional": deadline.is_provisional,
                    "colour": "red" if left < 0 else ("yellow" if left <= process().warning_days else "green"),
                    "materials": [m.code for m in comp["given"]],
                    "missing_required": [{"code": m.code, "name_zh": m.name_zh, "name_en": m.name_en}
                                         for m in comp["missing_required"]],
                    "missing_minor": [{"code": m.code, "name_zh": m.name_zh, "name_en": m.name_en}
                                      for m in comp["missing_minor"]],
                    "failed_checks": _failed_checks(session, stage)})
    return out


def _failed_checks(session: Session, stage: StageInstance) -> list[dict]:
    from .base import failed_check_items

    return failed_check_items(session, stage)


def outstanding_items(session: Session, *, open_only: bool = True, stage_id: int | None = None) -> list[dict]:
    q = (sa.select(OutstandingItem, StageInstance, Project)
         .join(StageInstance, StageInstance.id == OutstandingItem.stage_instance_id)
         .join(Project, Project.id == StageInstance.project_id).order_by(OutstandingItem.due_on))
    if open_only:
        q = q.where(OutstandingItem.received_on.is_(None))
    if stage_id is not None:
        q = q.where(OutstandingItem.stage_instance_id == stage_id)
    return [{"id": i.id, "material_code": i.material_code, "name_zh": i.name_zh, "name_en": i.name_en,
             "due_on": i.due_on, "received_on": i.received_on, "stage": s.stage, "project_id": p.id,
             "project_code": p.code, "project_name": p.name} for i, s, p in session.execute(q)]


def check_results(session: Session, stage: StageInstance, department_id: int | None = None) -> list[dict]:
    run = session.scalar(sa.select(CheckRun).where(CheckRun.stage_instance_id == stage.id)
                         .order_by(CheckRun.id.desc()).limit(1))
    if run is None:
        return []
    q = (sa.select(CheckResult, Department.code).join(Department, Department.id == CheckResult.department_id)
         .where(CheckResult.check_run_id == run.id).order_by(Department.code, CheckResult.rule_id))
    if department_id is not None:
        q = q.where(CheckResult.department_id == department_id)
    return [{"rule_id": r.rule_id, "department": code, "outcome": r.outcome, "measured": r.measured,
             "limit": r.limit_value, "unit": r.unit, "message_zh": r.message_zh, "message_en": r.message_en}
            for r, code in session.execute(q)]


def task_map(session: Session, stage: StageInstance, department_id: int) -> dict:
    """The project's footprints and parcels and this department's check evidence, as GeoJSON in
    EPSG:4326 for the reviewer's map."""
    from ..models import Building, Parcel, project_parcels

    def fc(rows):
        import json

        return {"type": "FeatureCollection",
                "features": [{"type": "Feature", "geometry": json.loads(g), "properties": props} for g, props in rows
                             if g]}

    wgs = lambda col: sa.func.ST_AsGeoJSON(sa.func.ST_Transform(col, 4326), 7)
    buildings = session.execute(sa.select(wgs(Building.geom), Building.name, Building.height_m)
                                .where(Building.project_id == stage.project_id)).all()
    parcels = session.execute(sa.select(wgs(Parcel.geom), Parcel.parcel_code).join(
        project_parcels, project_parcels.c.parcel_id == Parcel.id).where(
        project_parcels.c.project_id == stage.project_id)).all()
    run_id = session.scalar(sa.select(CheckRun.id).where(CheckRun.stage_instance_id == stage.id)
                            .order_by(CheckRun.id.desc()).limit(1))
    evidence = []
    if run_id is not None:
        evidence = session.execute(sa.select(wgs(CheckResult.evidence), CheckResult.rule_id, CheckResult.outcome,
                                             CheckResult.message_zh, CheckResult.message_en)
                                   .where(CheckResult.check_run_id == run_id, CheckResult.department_id == department_id,
                                          CheckResult.evidence.is_not(None))).all()
    return {"buildings": fc([(g, {"name": n, "height_m": h}) for g, n, h in buildings]),
            "parcels": fc([(g, {"code": c}) for g, c in parcels]),
            "evidence": fc([(g, {"rule_id": r, "outcome": o, "message_zh": mz, "message_en": me})
                            for g, r, o, mz, me in evidence])}


def task_detail(session: Session, actor: User, task_id: int, today: dt.date) -> dict:
    task = session.get(ReviewTask, task_id)
    if task is None:
        raise NotFoundError(f"no review task {task_id}", where="task_id")
    project = task.stage_instance.project
    if not can_view_project(actor, project):
        raise NotFoundError(f"no review task {task_id}", where="task_id")
    calendar = load_calendar(session)
    stage = task.stage_instance
    row = task_row(session, calendar, task, today)
    decisions = session.scalars(sa.select(TaskDecision).where(TaskDecision.review_task_id == task.id)
                                .order_by(TaskDecision.id)).all()
    exts = session.scalars(sa.select(ExtensionRequest).where(ExtensionRequest.review_task_id == task.id)
                           .order_by(ExtensionRequest.id)).all()
    events = session.scalars(sa.select(ClockEvent).where(ClockEvent.review_task_id == task.id)
                             .order_by(ClockEvent.on, ClockEvent.id)).all()
    users = _users(session, [d.decided_by_id for d in decisions] + [d.signed_off_by_id for d in decisions]
                   + [e.requested_by_id for e in exts] + [e.decided_by_id for e in exts])
    name = lambda i: users[i].display_name if i in users else None
    siblings = [task_row(session, calendar, t, today) for t in stage.tasks if t.id != task.id]
    row.update({
        "project": project_summary(project),
        "buildings": [{"name": b.name, "height_m": b.height_m, "floors": b.floors, "gfa_m2": b.gfa_m2, "use": b.use}
                      for b in project.buildings],
        "parcels": [{"code": p.parcel_code, "holder": p.holder, "land_use": p.land_use, "area_m2": p.area_m2}
                    for p in project.parcels],
        "checks": check_results(session, stage, task.department_id),
        "map": task_map(session, stage, task.department_id),
        "coordinator": (session.get(User, project.coordinator_id).display_name
                        if project.is_green_channel and project.coordinator_id else None),
        "decisions": [{"id": d.id, "decision": d.decision, "opinion": d.opinion, "conditions": d.conditions,
                       "correction_items": d.correction_items, "status": d.status, "decided_by": name(d.decided_by_id),
                       "decided_on": d.decided_on, "signed_off_by": name(d.signed_off_by_id),
                       "signoff_note": d.signoff_note} for d in decisions],
        "extensions": [{"id": e.id, "days": e.days, "reason": e.reason, "status": e.status,
                        "requested_by": name(e.requested_by_id), "requested_on": e.requested_on,
                        "decided_by": name(e.decided_by_id), "note": e.decision_note} for e in exts],
        "clock_events": [{"kind": e.kind, "on": e.on, "stop_kind": e.stop_kind, "reason": e.reason, "days": e.days}
                         for e in events],
        "siblings": siblings,
        "warnings": [{"level": w.level, "due_on": w.due_on, "raised_on": w.raised_on} for w in session.scalars(
            sa.select(TaskWarning).where(TaskWarning.review_task_id == task.id).order_by(TaskWarning.id))],
    })
    return row


def project_summary(project: Project) -> dict:
    return {"id": project.id, "code": project.code, "name": project.name, "name_en": project.name_en,
            "applicant_org": project.applicant_org, "receipt_no": project.receipt_no, "status": project.status,
            "current_stage": project.current_stage, "is_green_channel": project.is_green_channel}


def signoff_queue(session: Session, actor: User, today: dt.date) -> list[dict]:
    if "leader" not in actor.role_codes:
        raise PermissionDeniedError("only a leader signs off")
    calendar = load_calendar(session)
    tasks = session.scalars(sa.select(ReviewTask).where(ReviewTask.status == "awaiting_signoff",
                                                        ReviewTask.department_id == actor.department_id)
                            .order_by(ReviewTask.id)).all()
    out = []
    for t in tasks:
        row = task_row(session, calendar, t, today)
        d = session.scalar(sa.select(TaskDecision).where(TaskDecision.review_task_id == t.id,
                                                         TaskDecision.status == "proposed")
                           .order_by(TaskDecision.id.desc()))
        reviewer = session.get(User, d.decided_by_id) if d else None
        row["proposal"] = {"decision": d.decision, "opinion": d.opinion, "conditions": d.conditions,
                           "correction_items": d.correction_items, "decided_on": d.decided_on,
                           "decided_by": reviewer.display_name if reviewer else None} if d else None
        out.append(row)
    return out


def extension_queue(session: Session, actor: User, today: dt.date) -> list[dict]:
    if "leader" not in actor.role_codes:
        raise PermissionDeniedError("only a leader approves extensions")
    calendar = load_calendar(session)
    rows = session.execute(sa.select(ExtensionRequest, ReviewTask).join(ReviewTask)
                           .where(ExtensionRequest.status == "pending",
                                  ReviewTask.department_id == actor.department_id)
                           .order_by(ExtensionRequest.id)).all()
    out = []
    for req, task in rows:
        row = task_row(session, calendar, task, today)
        requester = session.get(User, req.requested_by_id)
        row["request"] = {"id": req.id, "days": req.days, "reason": req.reason, "requested_on": req.requested_on,
                          "requested_by": requester.display_name}
        out.append(row)
    return out


def stage_view(session: Session, calendar, stage: StageInstance, today: dt.date, *, public: bool = False) -> dict:
    spec = process().stages[stage.stage]
    tasks = sorted(stage.tasks, key=lambda t: spec.departments.index(t.department.code)
                   if t.department.code in spec.departments else 99)
    notices = session.scalars(sa.select(CorrectionNotice).where(CorrectionNotice.stage_instance_id == stage.id)
                              .order_by(CorrectionNotice.id)).all()
    stage_events = session.scalars(sa.select(ClockEvent).where(ClockEvent.stage_instance_id == stage.id,
                                                               ClockEvent.review_task_id.is_(None))
                                   .order_by(ClockEvent.on, ClockEvent.id)).all()
    joint = None
    if stage.accepted_on:
        from .clock import ClockFact, compute_deadline

        facts = [ClockFact(e.kind, e.on, e.days) for e in stage_events if e.kind in ("stop", "resume", "extension")]
        d = compute_deadline(calendar, stage.accepted_on, process().joint_legal_limit_days, facts)
        extensions = [e for e in stage_events if e.kind == "extension"]
        joint = {"due_on": d.due_on, "is_stopped": d.is_stopped, "is_provisional": d.is_provisional,
                 "limit_days": process().joint_legal_limit_days,
                 "extension_days": sum(e.days or 0 for e in extensions),
                 "extension_reasons": [e.reason for e in extensions if e.reason]}
    art32 = calendar.add(stage.received_on, process().acceptance_limit_days)
    out = {
        "id": stage.id, "stage": stage.stage, "name_zh": spec.name_zh, "name_en": spec.name_en,
        "permit_zh": spec.permit_zh, "permit_en": spec.permit_en, "status": stage.status,
        "received_on": stage.received_on, "accepted_on": stage.accepted_on, "decided_on": stage.decided_on,
        "art32_due_on": art32.day, "joint": joint,
        "deemed_accepted": any(e.kind == "accepted" and e.reason for e in stage_events),
        "tasks": [], "notices": [{"id": n.id, "status": n.status, "issued_at": n.issued_at, "items": n.items}
                                 for n in notices],
        "outstanding": outstanding_items(session, open_only=False, stage_id=stage.id),
        "has_document": stage.status == "approved",
    }
    for t in tasks:
        clock = clock_dict(clock_of(session, calendar, t, today, stage))
        out["tasks"].append({"id": t.id, "department": t.department.code, "department_zh": t.department.name_zh,
                             "department_en": t.department.name_en, "status": t.status,
                             "opinion": t.opinion, "conditions": t.conditions,
                             "committed_limit_days": t.committed_limit_days, "legal_limit_days": t.legal_limit_days,
                             "clock": clock})
    return out


def project_view(session: Session, actor: User, project_id: int, today: dt.date) -> dict:
    project = visible_project(session, actor, project_id)
    calendar = load_calendar(session)
    session.refresh(project, ["stages"])
    stages = [stage_view(session, calendar, s, today) for s in project.stages]
    proc = process()
    can_submit = False
    if actor is not None and actor.id == project.applicant_id and project.buildings:
        cur = next((s for s in project.stages if s.stage == project.current_stage), None)
        can_submit = (project.status == "draft" and not project.stages) or \
            (project.status == "approved" and cur is not None and cur.stage < max(proc.stages)) or \
            (project.status == "in_correction" and cur is not None and cur.status == "in_correction")
    next_stage = project.current_stage if project.status in ("draft", "in_correction") else project.current_stage + 1
    if not project.stages:
        next_stage = 1
    spec = proc.stages.get(next_stage)
    return {"project": project_summary(project), "applicant": project.applicant.display_name,
            "stages": stages, "can_submit": can_submit,
            "submit_stage": next_stage if spec else None,
            "submit_materials": [{"code": m.code, "name_zh": m.name_zh, "name_en": m.name_en, "minor": m.is_minor}
                                 for m in spec.materials] if spec else [],
            "buildings": len(project.buildings)}


def timeline(session: Session, actor: User, project_id: int) -> list[dict]:
    project = visible_project(session, actor, project_id)
    events = session.scalars(sa.select(Event).where(Event.project_id == project.id)
                             .order_by(Event.occurred_at, Event.id)).all()
    users = _users(session, [e.actor_id for e in events])
    return [{"id": e.id, "occurred_at": e.occurred_at, "type": e.type, "is_automated": e.is_automated,
             "actor": users[e.actor_id].display_name if e.actor_id in users else None,
             "actor_department": (users[e.actor_id].department.code if e.actor_id in users
                                  and users[e.actor_id].department else None),
             "subject_type": e.subject_type, "subject_id": e.subject_id, "payload": e.payload} for e in events]


def projects_for(session: Session, actor: User) -> list[Project]:
    q = sa.select(Project).order_by(Project.id.desc())
    if not (actor.role_codes & {"clerk", "reviewer", "leader", "supervisor", "admin"}):
        q = q.where(Project.applicant_id == actor.id)
    return session.scalars(q).all()
