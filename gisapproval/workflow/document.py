"""The combined stage approval document (一章通): one document per approved stage listing every
department's opinion and conditions, as data (for the HTML page) and as a PDF with Chinese text."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..config import load_jurisdiction
from ..errors import ConfigurationError, ConflictError
from ..models import TaskDecision, User
from .base import get_stage, process, visible_project

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)
DECISION_ZH = {"approved": "同意", "approved_with_conditions": "有条件同意", "deemed_approved": "超时默认同意"}
DECISION_EN = {"approved": "Approved", "approved_with_conditions": "Approved with conditions",
               "deemed_approved": "Deemed approved (timeout)"}


def stage_document(session: Session, actor: User, stage_id: int) -> dict:
    stage = get_stage(session, stage_id)
    project = visible_project(session, actor, stage.project_id)
    if stage.status != "approved":
        raise ConflictError(f"stage {stage.stage} is {stage.status}: the combined approval is issued once every "
                            "department has approved", where=f"stage {stage_id}")
    spec = process().stages[stage.stage]
    opinions = []
    for t in sorted(stage.tasks, key=lambda t: spec.departments.index(t.department.code)
                    if t.department.code in spec.departments else 99):
        d = session.scalar(sa.select(TaskDecision).where(TaskDecision.review_task_id == t.id,
                                                         TaskDecision.status == "final")
                           .order_by(TaskDecision.id.desc()))
        who = session.get(User, t.decided_by_id) if t.decided_by_id else None
        signer = session.get(User, d.signed_off_by_id) if d and d.signed_off_by_id else None
        opinions.append({"department_zh": t.department.name_zh, "department_en": t.department.name_en,
                         "status": t.status, "decision_zh": DECISION_ZH.get(t.status, t.status),
                         "decision_en": DECISION_EN.get(t.status, t.status), "opinion": t.opinion or "",
                         "conditions": t.conditions or "", "reviewer": who.display_name if who else None,
                         "signed_off_by": signer.display_name if signer else None})
    j = load_jurisdiction()
    return {"number": f"{project.receipt_no}-{stage.stage}", "jurisdiction": j.name, "jurisdiction_en": j.name_en,
            "project": {"code": project.code, "name": project.name, "name_en": project.name_en,
                        "applicant_org": project.applicant_org, "receipt_no": project.receipt_no,
                        "parcels": [p.parcel_code for p in project.parcels],
                        "buildings": len(project.buildings),
                        "gfa_m2": round(sum(b.gfa_m2 for b in project.buildings), 1)},
            "stage": stage.stage, "stage_zh": spec.name_zh, "stage_en": spec.name_en,
            "permit_zh": spec.permit_zh, "permit_en": spec.permit_en, "legal_basis_zh": spec.legal_basis_zh,
            "received_on": stage.received_on, "accepted_on": stage.accepted_on, "decided_on": stage.decided_on,
            "opinions": opinions}


def _font() -> str:
    for path in FONT_CANDIDATES:
        if Path(path).exists():
            return path
    raise ConfigurationError("no CJK font found for the PDF: install fonts-wqy-microhei (./platform does)",
                             where=", ".join(FONT_CANDIDATES))


def render_pdf(doc: dict) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(f"{doc['permit_zh']} {doc['number']}")
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    pdf.add_font("cjk", fname=_font())
    w = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_font("cjk", size=11)
    pdf.cell(w, 7, doc["jurisdiction"], align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=18)
    pdf.cell(w, 12, f"{doc['stage_zh']} 联合审批意见书（一章通）", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=10)
    pdf.cell(w, 6, f"Combined approval: {doc['stage_en']}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(w, 6, f"文号 No. {doc['number']}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    p = doc["project"]
    pdf.set_font("cjk", size=11)
    for label, value in (("项目名称 Project", f"{p['name']}（{p['code']}）"), ("建设单位 Applicant", p["applicant_org"]),
                         ("办件编号 Receipt no.", p["receipt_no"] or ""), ("宗地 Parcels", "、".join(p["parcels"])),
                         ("建筑 Buildings", f"{p['buildings']} 栋，总建筑面积 {p['gfa_m2']} m²"),
                         ("受理日期 Accepted", str(doc["accepted_on"])), ("办结日期 Decided", str(doc["decided_on"])),
                         ("核发 Permit", f"{doc['permit_zh']} / {doc['permit_en']}")):
        pdf.set_x(pdf.l_margin)
        pdf.multi_cell(w, 7, f"{label}：{value}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("cjk", size=13)
    pdf.cell(w, 9, "各部门审查意见 Departments' opinions", new_x="LMARGIN", new_y="NEXT")
    for o in doc["opinions"]:
        pdf.set_font("cjk", size=12)
        pdf.set_fill_color(230, 238, 248)
        pdf.multi_cell(w, 8, f"{o['department_zh']}：{o['decision_zh']}（{o['decision_en']}）", fill=True,
                       new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("cjk", size=10.5)
        pdf.multi_cell(w, 6.5, f"意见：{o['opinion']}", new_x="LMARGIN", new_y="NEXT")
        if o["conditions"]:
            pdf.multi_cell(w, 6.5, f"条件：{o['conditions']}", new_x="LMARGIN", new_y="NEXT")
        signer = f"；签发：{o['signed_off_by']}" if o["signed_off_by"] else ""
        pdf.multi_cell(w, 6.5, f"审查人：{o['reviewer'] or '系统（超时默认）'}{signer}", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    pdf.ln(4)
    pdf.set_font("cjk", size=9)
    pdf.multi_cell(w, 5, f"依据：{doc['legal_basis_zh']}", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(w, 5, "本意见书由各审批部门并联审查意见合并生成，一章通用。", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
