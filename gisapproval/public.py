"""Open government (政务公开): the catalogue of approval items — materials, legal and committed
limits, legal basis, fees — and the status look-up by receipt number + query code, which shows
no personal data (no applicant, no reviewer names, no opinions beyond the stage outcome)."""

from __future__ import annotations

import datetime as dt
import hmac

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .errors import InputError, NotFoundError
from .models import Department, Project
from .workflow.base import process
from .workflow.calendar import load_calendar
from .workflow.views import stage_view


def catalogue(session: Session) -> dict:
    proc = process()
    depts = {d.code: d for d in session.scalars(sa.select(Department))}
    stages = []
    for n, s in sorted(proc.stages.items()):
        stages.append({
            "number": n, "code": s.code, "name_zh": s.name_zh, "name_en": s.name_en,
            "permit_zh": s.permit_zh, "permit_en": s.permit_en, "legal_basis_zh": s.legal_basis_zh,
            "legal_basis_en": s.legal_basis_en, "fee_zh": s.fee_zh, "fee_en": s.fee_en,
            "intake_limit_days": s.intake_limit_days,
            "materials": [{"code": m.code, "name_zh": m.name_zh, "name_en": m.name_en, "minor": m.is_minor}
                          for m in s.materials],
            "departments": [{"code": t.department, "name_zh": depts[t.department].name_zh,
                             "name_en": depts[t.department].name_en, "legal_limit_days": t.legal_limit_days,
                             "committed_limit_days": t.committed_limit_days,
                             "green_channel_days": proc.committed_days(t, True),
                             "deemed_on_timeout": t.is_deemed_on_timeout, "leader_signoff": t.needs_leader_signoff}
                            for t in s.tasks],
            "committed_limit_days": max(t.committed_limit_days for t in s.tasks),
            "legal_limit_days": max(t.legal_limit_days for t in s.tasks),
        })
    return {"acceptance_limit_days": proc.acceptance_limit_days, "extension_days": proc.extension_days,
            "joint_legal_limit_days": proc.joint_legal_limit_days, "joint_extension_days": proc.joint_extension_days,
            "whole_process_limit_days": proc.whole_process_limit_days, "stages": stages}


def status_lookup(session: Session, receipt_no: str, query_code: str, today: dt.date) -> dict:
    receipt_no, query_code = (receipt_no or "").strip(), (query_code or "").strip()
    if not receipt_no or not query_code:
        raise InputError("enter both the receipt number and the query code", where="receipt_no")
    if len(receipt_no) > 40 or len(query_code) > 16:
        raise InputError("receipt number or query code too long", where="receipt_no")
    project = session.scalar(sa.select(Project).where(Project.receipt_no == receipt_no))
    if project is None or not project.query_code or not hmac.compare_digest(project.query_code, query_code):
        raise NotFoundError("no application with this receipt number and query code", where="receipt_no")
    calendar = load_calendar(session)
    stages = []
    for s in project.stages:
        v = stage_view(session, calendar, s, today, public=True)
        stages.append({
            "stage": v["stage"], "name_zh": v["name_zh"], "name_en": v["name_en"], "status": v["status"],
            "received_on": v["received_on"], "accepted_on": v["accepted_on"], "decided_on": v["decided_on"],
            "departments": [{"department_zh": t["department_zh"], "department_en": t["department_en"],
                             "status": t["status"], "due_on": t["clock"]["committed_due_on"],
                             "is_provisional": t["clock"]["is_provisional"], "is_stopped": t["clock"]["is_stopped"],
                             "stop_kind": t["clock"]["stop_kind"], "stop_reason": t["clock"]["stop_reason"],
                             "extension_days": t["clock"]["extension_days"],
                             "extension_reasons": t["clock"]["extension_reasons"]} for t in v["tasks"]],
            "open_notice_items": [i.get("text_zh") or i.get("text") for n in v["notices"] if n["status"] == "open"
                                  for i in n["items"]],
        })
    return {"receipt_no": project.receipt_no, "project_name": project.name, "project_name_en": project.name_en,
            "status": project.status, "current_stage": project.current_stage, "stages": stages}
