"""The joint-approval pages and API: who may see and do what, the public look-up, the document."""

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from gisapproval.db import make_engine
from gisapproval.models import Project, ReviewTask, StageInstance, User


def _sample_project(web_db, **where):
    with Session(web_db) as s:
        q = sa.select(Project).order_by(Project.id)
        for k, v in where.items():
            q = q.where(getattr(Project, k) == v)
        p = s.scalars(q).first()
        return p.id, p.receipt_no, p.query_code, p.applicant.username, p.applicant.display_name


@pytest.mark.parametrize("user,path", [
    ("clerk", "/workflow/window"), ("planning_reviewer", "/workflow/tasks"), ("leader", "/workflow/leader"),
    ("supervisor", "/workflow/supervision"), ("admin", "/workflow/admin/calendar"), ("applicant1", "/workflow/projects"),
    ("fire_reviewer", "/workflow/tasks?all=1"),
])
def test_pages_render_for_their_roles_in_both_languages(client, web, user, path):
    web.login(client, user)
    for lang in ("zh", "en"):
        resp = client.get(path + ("&" if "?" in path else "?") + f"lang={lang}")
        assert resp.status_code == 200, (path, resp.status_code)
    html = client.get(path + ("&" if "?" in path else "?") + "lang=zh").get_data(as_text=True)
    assert "<html" in html


@pytest.mark.parametrize("user,path", [
    ("applicant1", "/workflow/window"), ("applicant1", "/workflow/tasks"), ("planning_reviewer", "/workflow/window"),
    ("clerk", "/workflow/leader"), ("applicant1", "/workflow/supervision"), ("supervisor", "/workflow/admin/calendar"),
])
def test_pages_refuse_other_roles(client, web, user, path):
    web.login(client, user)
    assert client.get(path).status_code == 403


def test_supervision_dashboard_figures_and_api(client, web):
    web.login(client, "supervisor")
    data = client.get("/api/workflow/supervision").get_json()
    assert data["total"]["handled"] > 0 and {d["department"] for d in data["departments"]} >= {"land", "planning"}
    assert 0 <= data["total"]["on_time_rate"] <= 1
    assert data["total"]["deemed"] >= 1  # the sample has deemed approvals
    html = client.get("/workflow/supervision").get_data(as_text=True)
    assert 'id="chart-dept"' in html and "vendor/echarts/echarts.min.js" in html and "cdn" not in html.lower()
    assert f'<b id="kpi-handled">{data["total"]["handled"]}</b>' in html


def test_applicant_sees_only_own_projects(client, web, web_db):
    pid, *_rest, owner, _name = _sample_project(web_db)
    other = "applicant2" if owner == "applicant1" else "applicant1"
    web.login(client, other)
    assert client.get(f"/workflow/projects/{pid}").status_code == 404
    assert client.get(f"/api/workflow/projects/{pid}").status_code == 404
    assert client.get(f"/api/workflow/projects/{pid}/timeline").status_code == 404
    web.login(client, owner)
    page = client.get(f"/workflow/projects/{pid}")
    assert page.status_code == 200 and "办理过程" in page.get_data(as_text=True)
    listing = client.get("/workflow/projects").get_data(as_text=True)
    with Session(web_db) as s:
        foreign = s.scalars(sa.select(Project.code).join(User, User.id == Project.applicant_id)
                            .where(User.username == other)).all()
    assert foreign and not any(code in listing for code in foreign)


def test_public_catalogue_and_status_lookup_show_no_personal_data(client, web_db):
    cat = client.get("/api/public/catalogue").get_json()
    assert [s["number"] for s in cat["stages"]] == [1, 2, 3, 4]
    s1 = cat["stages"][0]
    assert s1["legal_basis_zh"] and s1["fee_zh"] and s1["materials"]
    assert all(d["committed_limit_days"] <= d["legal_limit_days"] for s in cat["stages"] for d in s["departments"])
    assert "行政许可法" in client.get("/public/catalogue").get_data(as_text=True)
    _pid, receipt, code, _user, name = _sample_project(web_db, status="completed")
    resp = client.get(f"/api/public/status?receipt_no={receipt}&query_code={code}")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert resp.get_json()["status"] == "completed" and name not in body and "reviewer" not in body
    assert client.get(f"/api/public/status?receipt_no={receipt}&query_code=000000").status_code == 404
    page = client.post("/public/status", data={"receipt_no": receipt, "query_code": code,
                                              "csrf_token": _csrf(client, "/public/status")})
    assert page.status_code == 200 and "wf-status-result" in page.get_data(as_text=True)


def _csrf(client, path):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_combined_document_html_and_pdf(client, web, web_db):
    with Session(web_db) as s:
        stage = s.scalars(sa.select(StageInstance).where(StageInstance.status == "approved")
                          .order_by(StageInstance.id)).first()
        owner = stage.project.applicant.username
        opinion = next(t.opinion for t in stage.tasks if t.opinion)
        sid = stage.id
        pending = s.scalars(sa.select(StageInstance.id).where(StageInstance.status == "in_review")).first()
    web.login(client, owner)
    html = client.get(f"/workflow/stages/{sid}/document").get_data(as_text=True)
    assert opinion in html and "一章通" in html
    pdf = client.get(f"/workflow/stages/{sid}/document.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    from io import BytesIO

    from pypdf import PdfReader

    text = "".join(p.extract_text() for p in PdfReader(BytesIO(pdf.data)).pages)
    assert opinion[:10] in text
    web.login(client, "supervisor")
    assert client.get(f"/workflow/stages/{pending}/document").status_code == 409


# --- decisions through the API, on a database of their own (they commit) -----------------

@pytest.fixture(scope="module")
def own_client(own_sample_db):
    from web import create_app

    with own_sample_db("wfweb") as url:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True})
        yield app.test_client(), engine
        engine.dispose()
        app.extensions["gisapproval"].engine.dispose()


def _token(engine, username):
    from gisapproval.accounts import create_api_token

    with Session(engine) as s:
        user = s.scalar(sa.select(User).where(User.username == username))
        token = create_api_token(s, user, user, "test")
        s.commit()
    return {"Authorization": f"Bearer {token}"}


def _open_task(engine, dept):
    with Session(engine) as s:
        t = s.scalars(sa.select(ReviewTask).join(ReviewTask.department).where(
            ReviewTask.status == "in_review", ReviewTask.needs_leader_signoff.is_(False))
            .where(sa.text("departments.code = :d")).params(d=dept).order_by(ReviewTask.id)).first()
        return t.id, t.row_version


def test_only_the_departments_reviewers_decide_through_the_api(own_client):
    client, engine = own_client
    task_id, version = _open_task(engine, "fire")
    body = {"decision": "approved", "opinion": "同意", "row_version": version}
    for user in ("planning_reviewer", "applicant1", "clerk", "supervisor"):
        resp = client.post(f"/api/workflow/tasks/{task_id}/decision", json=body, headers=_token(engine, user))
        assert resp.status_code == 403, user
    anonymous = client.post(f"/api/workflow/tasks/{task_id}/decision", json=body)
    assert anonymous.status_code in (400, 401)  # no token and no session: refused (CSRF check, then login)
    assert client.post(f"/api/workflow/tasks/{task_id}/decision", json=body,
                       headers={"Authorization": "Bearer gat_nobody"}).status_code == 401
    resp = client.post(f"/api/workflow/tasks/{task_id}/decision", json={**body, "opinion": ""},
                       headers=_token(engine, "fire_reviewer"))
    assert resp.status_code == 422 and resp.get_json()["error"]["where"] == "opinion"
    ok = client.post(f"/api/workflow/tasks/{task_id}/decision", json=body, headers=_token(engine, "fire_reviewer"))
    assert ok.status_code == 200 and ok.get_json()["status"] == "approved"
    stale = client.post(f"/api/workflow/tasks/{task_id}/decision", json=body, headers=_token(engine, "fire_reviewer"))
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "conflict"


def test_reviewer_decides_on_the_page_and_timeline_says_who_and_why(own_client, web):
    client, engine = own_client
    task_id, version = _open_task(engine, "construction")
    web.login(client, "construction_reviewer")
    page = client.get(f"/workflow/tasks/{task_id}")
    assert page.status_code == 200 and 'id="wf-decide"' in page.get_data(as_text=True)
    token = web.csrf_token(page.get_data(as_text=True))
    resp = client.post(f"/workflow/tasks/{task_id}/decide", data={
        "csrf_token": token, "row_version": version, "decision": "correction_requested",
        "opinion": "<script>alert(1)</script>补充说明", "correction_items": "补充基坑支护方案\n补充基坑支护方案"})
    assert resp.status_code == 302
    with Session(engine) as s:
        task = s.get(ReviewTask, task_id)
        assert task.status == "correction_requested"
        pid = task.stage_instance.project_id
        owner = task.stage_instance.project.applicant.username
    web.login(client, owner)
    html = client.get(f"/workflow/projects/{pid}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "赵磊（住建审查）" in html  # who
    timeline = client.get(f"/api/workflow/projects/{pid}/timeline").get_json()
    decided = [e for e in timeline if e["type"] == "review_task.decided"][-1]
    assert decided["actor"] == "赵磊（住建审查）" and decided["payload"]["correction_items"] == ["补充基坑支护方案"] * 2


def test_calendar_api_enter_a_year_and_only_the_admin(own_client):
    client, engine = own_client
    before = client.get("/api/workflow/calendar?from=2026-12-30&n=5", headers=_token(engine, "clerk")).get_json()
    assert before == {"from": "2026-12-30", "n": 5, "day": "2027-01-06", "is_provisional": True}
    schedule = 'year = 2027\nsource = "test"\nholidays = ["2027-01-01", "2027-01-04", "2027-01-05"]\nworkdays = ["2027-01-09"]\n'
    assert client.post("/api/workflow/calendar/years", json={"schedule": schedule},
                       headers=_token(engine, "clerk")).status_code == 403
    bad = client.post("/api/workflow/calendar/years", json={"schedule": "year = 2027"}, headers=_token(engine, "admin"))
    assert bad.status_code == 422 and bad.get_json()["error"]["where"] == "schedule"
    ok = client.post("/api/workflow/calendar/years", json={"schedule": schedule}, headers=_token(engine, "admin"))
    assert ok.status_code == 201 and ok.get_json()["holidays"] == 3
    after = client.get("/api/workflow/calendar?from=2026-12-30&n=5", headers=_token(engine, "clerk")).get_json()
    assert after["day"] == "2027-01-09" and not after["is_provisional"]
    status = client.get("/api/workflow/calendar", headers=_token(engine, "admin")).get_json()
    assert 2027 in status["entered_years"] and status["library_last_year"] == 2026


def test_supervision_measures_each_post(client, web):
    web.login(client, "supervisor")
    steps = {s["step"]: s for s in client.get("/api/workflow/supervision").get_json()["steps"]}
    assert steps["intake"]["handled"] > 0 and steps["intake"]["avg_limit_days"] >= 1
    assert "按岗位环节" in client.get("/workflow/supervision").get_data(as_text=True)


def test_leader_extends_the_joint_limit_on_the_project_page(own_client, web):
    client, engine = own_client
    with Session(engine) as s:
        stage = s.scalars(sa.select(StageInstance).where(StageInstance.status == "in_review")
                          .order_by(StageInstance.id)).first()
        stage_id, project_id = stage.id, stage.project_id
    web.login(client, "leader")
    page = client.get(f"/workflow/projects/{project_id}").get_data(as_text=True)
    assert f'id="wf-joint-extension-{stage_id}"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post(f"/workflow/stages/{stage_id}/joint-extension",
                       data={"csrf_token": token, "days": "15", "reason": "需组织联合踏勘"})
    assert resp.status_code == 302
    page = client.get(f"/workflow/projects/{project_id}").get_data(as_text=True)
    assert "+15: 需组织联合踏勘" in page and f'id="wf-joint-extension-{stage_id}"' not in page
    web.login(client, "planning_reviewer")
    token = web.csrf_token(client.get("/workflow/tasks").get_data(as_text=True))
    resp = client.post(f"/workflow/stages/{stage_id}/joint-extension",
                       data={"csrf_token": token, "days": "1", "reason": "x"})
    assert resp.status_code == 403
