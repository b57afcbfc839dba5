"""Loading the sample district (sample_parcels/data) into a migrated database.

The load is one transaction: departments, the sample users (one per role, two applicants),
every catalogue layer as its first version, the parcels, and the sample projects with
their stages, review tasks, clock events and audit history. Loading into a database that
already holds layers does nothing (idempotent).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pyogrio
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from sqlalchemy.orm import Session

from .accounts import create_user, sync_departments
from .audit import record_event
from .catalogue import default_catalogue
from .config import SAMPLE_DIR, Settings
from .errors import InputError
from .layerstore import register_layers, to_multi
from .layerversions import publish_layer_version
from .models import (Building, ClockEvent, CorrectionNotice, Department, Layer, Parcel, Project, ReviewTask,
                     StageInstance, User)
from .workflow.stages import default_process

SAMPLE_PASSWORD = "gisdemo2026"

# (username, display name, roles, department, organisation)
SAMPLE_USERS = [
    ("applicant1", "李明（华南置业）", ["applicant"], None, "华南置业有限公司"),
    ("applicant2", "王芳（广州城建开发）", ["applicant"], None, "广州城建开发集团有限公司"),
    ("clerk", "陈静（综合窗口）", ["clerk"], "window", None),
    ("land_reviewer", "张伟（国土审查）", ["reviewer"], "land", None),
    ("planning_reviewer", "刘洋（规划审查）", ["reviewer"], "planning", None),
    ("construction_reviewer", "赵磊（住建审查）", ["reviewer"], "construction", None),
    ("fire_reviewer", "孙强（消防审查）", ["reviewer"], "fire", None),
    ("heritage_reviewer", "周文（文物审查）", ["reviewer"], "heritage", None),
    ("leader", "黄建国（规划局分管领导）", ["leader"], "planning", None),
    ("land_editor", "吴敏（国土局GIS）", ["layer_editor"], "land", None),
    ("supervisor", "郑洁（电子监察）", ["supervisor"], "supervision", None),
    ("admin", "系统管理员", ["admin"], None, None),
]
REVIEWER_OF = {"land": "land_reviewer", "planning": "planning_reviewer",
               "construction": "construction_reviewer", "fire": "fire_reviewer", "heritage": "heritage_reviewer"}
CHINA = dt.timezone(dt.timedelta(hours=8))


def is_loaded(session: Session) -> bool:
    return bool(session.scalar(sa.select(sa.func.count()).select_from(Layer)))


def load_sample(session: Session, settings: Settings, data_dir: Path | None = None) -> dict:
    """Load the sample district; returns counts. The caller commits."""
    data_dir = Path(data_dir or SAMPLE_DIR)
    gpkg = data_dir / "district.gpkg"
    if not gpkg.exists():
        raise InputError("sample district not found; run `python -m sample_parcels.generate`", where=str(gpkg))
    if is_loaded(session):
        return {"skipped": True}
    srid = settings.jurisdiction.srid
    sync_departments(session)
    users = {}
    for username, name, roles, dept, org in SAMPLE_USERS:
        users[username] = create_user(session, None, username=username, password=SAMPLE_PASSWORD, display_name=name,
                                      roles=roles, department_code=dept, organisation=org)
    boundary = _read(gpkg, "jurisdiction", srid).geometry.union_all()
    specs = default_catalogue()
    register_layers(session, specs, boundary, srid)
    counts = {}
    for name, spec in specs.items():
        source = gpkg if spec.kind == "vector" else data_dir / spec.source_file
        report = publish_layer_version(session, settings, None, name, source,
                                       f"{source.name}:{spec.source_layer}" if spec.kind == "vector" else None,
                                       check_permission=False)
        counts[name] = report.features
    counts["parcels"] = session.scalar(sa.select(sa.func.count()).select_from(Parcel))
    projects_file = data_dir / "projects.json"
    if projects_file.exists():
        projects = json.loads(projects_file.read_text(encoding="utf-8"))
        counts["projects"] = _load_projects(session, projects, users, srid)
    return counts


def _read(path: Path, layer: str, srid: int):
    frame = pyogrio.read_dataframe(path, layer=layer)
    if frame.crs is None:
        raise InputError("layer has no CRS", where=f"{path}:{layer}")
    if frame.crs.to_epsg() != srid:
        frame = frame.to_crs(epsg=srid)
    return frame


def _at(day: str | None, hour: int = 10) -> dt.datetime | None:
    if not day:
        return None
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour, 0), CHINA).astimezone(dt.timezone.utc)


def _query_code(code: str) -> str:
    return str(int(hashlib.sha256(code.encode()).hexdigest(), 16) % 900000 + 100000)


PROJECT_STATUS = {"intake": "submitted", "in_review": "in_review", "in_correction": "in_correction",
                  "approved": "approved", "rejected": "rejected"}


def _load_projects(session: Session, projects: list[dict], users: dict[str, User], srid: int) -> int:
    process = default_process()
    depts = {d.code: d for d in session.scalars(sa.select(Department))}
    parcels = {p.parcel_code: p for p in session.scalars(
        sa.select(Parcel).where(Parcel.parcel_code.in_({c for p in projects for c in p["parcel_codes"]})))}
    clerk = users["clerk"]
    for seq, item in enumerate(projects, start=1):
        where = f"projects.json: {item.get('code', f'#{seq}')}"
        applicant = users[item["applicant"]]
        stages = item["stages"]
        last = stages[-1]
        status = PROJECT_STATUS[last["outcome"]]
        if last["outcome"] == "approved" and last["stage"] == len(process.stages):
            status = "completed"
        first_accept = next((s["accepted_on"] for s in stages if s.get("accepted_on")), None)
        project = Project(
            code=item["code"], name=item["name"], name_en=item.get("name_en"), applicant=applicant,
            applicant_org=item["applicant_org"], is_green_channel=bool(item.get("is_green_channel")),
            coordinator_id=users["clerk"].id if item.get("is_green_channel") else None,
            current_stage=last["stage"], status=status, created_at=_at(stages[0]["received_on"], 9),
            receipt_no=f"BJ{first_accept.replace('-', '')}{seq:04d}" if first_accept else None,
            query_code=_query_code(item["code"]) if first_accept else None,
        )
        try:
            project.parcels = [parcels[c] for c in item["parcel_codes"]]
        except KeyError as exc:
            raise InputError(f"unknown parcel {exc.args[0]}", where=where) from None
        for b in item["buildings"]:
            geom = to_multi(np.array([shapely.from_wkt(b["footprint_wkt"])]), "MultiPolygon")[0]
            project.buildings.append(Building(name=b["name"], height_m=b["height_m"], floors=b["floors"],
                                              gfa_m2=b["gfa_m2"], use=b["use"], geom=from_shape(geom, srid=srid)))
        session.add(project)
        session.flush()
        record_event(session, applicant, "project.created", project, {"name": project.name},
                     occurred_at=_at(stages[0]["received_on"], 9))
        for st in stages:
            _load_stage(session, project, st, process, depts, users, clerk)
    return len(projects)


def _load_stage(session, project, st, process, depts, users, clerk) -> None:
    spec = process.stages[st["stage"]]
    stage = StageInstance(project=project, stage=st["stage"], status=st["outcome"],
                          received_on=dt.date.fromisoformat(st["received_on"]),
                          accepted_on=dt.date.fromisoformat(st["accepted_on"]) if st.get("accepted_on") else None)
    session.add(stage)
    session.flush()
    pid = project.id
    record_event(session, users[project.applicant.username], "stage.submitted", stage,
                 {"stage": st["stage"]}, project_id=pid, occurred_at=_at(st["received_on"], 9))
    session.add(ClockEvent(stage_instance_id=stage.id, kind="received", on=stage.received_on))
    if stage.accepted_on:
        session.add(ClockEvent(stage_instance_id=stage.id, kind="accepted", on=stage.accepted_on))
        record_event(session, clerk, "stage.accepted", stage, {"stage": st["stage"], "receipt_no": project.receipt_no},
                     project_id=pid, occurred_at=_at(st["accepted_on"], 10))
    decided = []
    for t in st["tasks"]:
        tspec = spec.task(t["department"])
        factor = 0.5 if project.is_green_channel else 1.0
        reviewer = users[REVIEWER_OF[t["department"]]]
        task = ReviewTask(stage_instance_id=stage.id, department=depts[t["department"]], status=t["status"],
                          legal_limit_days=tspec.legal_limit_days,
                          committed_limit_days=max(1, int(-(-tspec.committed_limit_days * factor // 1))),
                          needs_leader_signoff=tspec.needs_leader_signoff,
                          is_deemed_on_timeout=tspec.is_deemed_on_timeout,
                          assigned_reviewer_id=reviewer.id if stage.accepted_on else None,
                          opinion=t.get("opinion"), conditions=t.get("conditions"))
        session.add(task)
        session.flush()
        if t.get("decided_on"):
            decided.append(t["decided_on"])
            if t["status"] == "deemed_approved":
                session.add(ClockEvent(stage_instance_id=stage.id, review_task_id=task.id, kind="deemed",
                                       on=dt.date.fromisoformat(t["decided_on"]), reason="超时默认同意"))
                record_event(session, None, "review_task.deemed_approved", task,
                             {"department": t["department"]}, project_id=pid, occurred_at=_at(t["decided_on"], 1))
            else:
                task.decided_by_id = reviewer.id
                task.decided_at = _at(t["decided_on"], 15)
                session.add(ClockEvent(stage_instance_id=stage.id, review_task_id=task.id, kind="decided",
                                       on=dt.date.fromisoformat(t["decided_on"])))
                if t["status"] == "correction_requested":
                    session.add(ClockEvent(stage_instance_id=stage.id, review_task_id=task.id, kind="stop",
                                           stop_kind="correction", on=dt.date.fromisoformat(t["decided_on"]),
                                           reason="补正材料"))
                record_event(session, reviewer, "review_task.decided", task,
                             {"department": t["department"], "decision": t["status"], "opinion": t.get("opinion"),
                              "conditions": t.get("conditions")}, project_id=pid, occurred_at=_at(t["decided_on"], 15))
    if st.get("correction_items"):
        items = [{"text": text} for text in st["correction_items"]]
        notice_on = max(decided) if decided else st["received_on"]
        session.add(CorrectionNotice(stage_instance_id=stage.id, issued_by_id=clerk.id, items=items,
                                     issued_at=_at(notice_on, 16)))
        record_event(session, clerk, "correction_notice.issued", stage, {"items": items}, project_id=pid,
                     occurred_at=_at(notice_on, 16))
    if st["outcome"] in ("approved", "rejected") and decided:
        stage.decided_on = dt.date.fromisoformat(max(decided))
        record_event(session, None, f"stage.{st['outcome']}", stage, {"stage": st["stage"]}, project_id=pid,
                     occurred_at=_at(max(decided), 17))
