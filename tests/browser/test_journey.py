"""A project's whole journey through the four stages in headless Chromium: the applicant submits
(with a minor material to follow), the window accepts, every department reviews at once, leaders
sign off, a correction notice is answered, each stage ends with its combined approval document,
and the public looks the project up. Screenshots: tests/artifacts/journey_*.png.

The journey commits, so it runs on a database and a server of its own."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon
from sqlalchemy.orm import Session

from gisapproval.accounts import create_user
from gisapproval.db import make_engine
from gisapproval.models import (
    SRID,
    Building,
    Parcel,
    Project,
    StageInstance,
    User,
    project_parcels,
)

PASSWORD = "gisdemo2026"
REVIEWER = {"land": "land_reviewer", "planning": "planning_reviewer", "construction": "construction_reviewer",
            "fire": "fire_reviewer"}
LEADER = {"land": "land_leader", "planning": "leader", "construction": "construction_leader"}


@pytest.fixture(scope="module")
def journey(own_sample_db, serve):
    with own_sample_db("journey") as url:
        yield from _journey(url, serve)


def _journey(url, serve):
    from web import create_app

    engine = make_engine(url, poolclass=sa.pool.NullPool)
    with Session(engine) as s:
        for dept in ("land", "construction"):
            create_user(s, None, username=f"{dept}_leader", password=PASSWORD, display_name=f"{dept}局分管领导",
                        roles=["leader"], department_code=dept)
        applicant = s.scalar(sa.select(User).where(User.username == "applicant1"))
        # a parcel no sample project uses, and a footprint well inside it
        used = sa.select(project_parcels.c.parcel_id)
        parcel = s.scalars(sa.select(Parcel).where(Parcel.id.not_in(used), Parcel.area_m2 > 8000)
                           .order_by(Parcel.id)).first()
        inner = s.scalar(sa.select(sa.func.ST_AsBinary(sa.func.ST_Buffer(sa.func.ST_PointOnSurface(parcel.geom), 12))))
        import shapely

        poly = shapely.from_wkb(bytes(inner))
        project = Project(code="JOURNEY-001", name="滨江人才公寓（旅程测试）", name_en="Riverside talent apartments (journey)",
                          applicant=applicant, applicant_org=applicant.organisation, status="draft", current_stage=1)
        project.parcels = [parcel]
        project.buildings.append(Building(name="1#公寓楼", height_m=33, floors=11, gfa_m2=0.5 * parcel.area_m2,
                                          use="residential", geom=from_shape(MultiPolygon([poly]), srid=SRID)))
        s.add(project)
        s.commit()
        pid = project.id
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "journey", "WTF_CSRF_ENABLED": True})
    with serve(app) as server:
        yield {"url": server.url, "engine": engine, "project_id": pid}
    engine.dispose()
    app.extensions["gisapproval"].engine.dispose()


class Users:
    """One logged-in browser context per user; every request stays on the local server."""

    def __init__(self, browser, base):
        self.browser, self.base, self.pages, self.foreign = browser, base, {}, []

    def page(self, username, lang="zh"):
        key = (username, lang)
        if key not in self.pages:
            ctx = self.browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
            page = ctx.new_page()
            page.on("request", lambda r: self.foreign.append(r.url)
                    if urlsplit(r.url).hostname not in ("127.0.0.1", "localhost") and r.url.startswith("http") else None)
            page.goto(f"{self.base}/login?lang={lang}")
            page.fill("#username", username)
            page.fill("#password", PASSWORD)
            page.click("form.form button[type=submit]")
            page.wait_for_load_state("networkidle")
            self.pages[key] = page
        return self.pages[key]

    def close(self):
        for page in self.pages.values():
            page.context.close()


def _tasks(engine, pid, stage):
    with Session(engine) as s:
        st = s.scalar(sa.select(StageInstance).where(StageInstance.project_id == pid, StageInstance.stage == stage))
        return st.id, {t.department.code: (t.id, t.needs_leader_signoff, t.status) for t in st.tasks}


def _project(engine, pid):
    with Session(engine) as s:
        p = s.get(Project, pid)
        return p.status, p.receipt_no, p.query_code


def _shot(page, artifacts_dir, name):
    page.screenshot(path=str(artifacts_dir / f"journey_{name}.png"), full_page=True)


def _decide(users, base, dept, task_id, decision, opinion, conditions="", items=""):
    page = users.page(REVIEWER[dept])
    page.goto(f"{base}/workflow/tasks/{task_id}")
    # the reviewer's map draws the parcel and the footprint from the app's own Leaflet
    page.wait_for_function("() => document.querySelectorAll('#wf-task-map path').length >= 2", timeout=15_000)
    page.check(f"input[name=decision][value={decision}]")
    page.fill("textarea[name=opinion]", opinion)
    if conditions:
        page.fill("textarea[name=conditions]", conditions)
    if items:
        page.fill("textarea[name=correction_items]", items)
    page.click("#wf-decide button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".flash").count() == 1, page.content()[:2000]
    return page


def _sign(users, base, dept):
    page = users.page(LEADER[dept])
    page.goto(f"{base}/workflow/leader")
    page.locator(".wf-signoff button[name=approve][value='1']").first.click()
    page.wait_for_load_state("networkidle")
    return page


def test_journey_through_four_stages(browser, journey, artifacts_dir):
    base, engine, pid = journey["url"], journey["engine"], journey["project_id"]
    users = Users(browser, base)
    try:
        _run(users, base, engine, pid, artifacts_dir)
        assert not users.foreign, users.foreign[:5]
    finally:
        users.close()


def _run(users, base, engine, pid, artifacts_dir):
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    for stage in (1, 2, 3, 4):
        # the applicant submits; in stage 1 the business licence (minor) is to follow
        app = users.page("applicant1")
        app.goto(f"{base}/workflow/projects/{pid}")
        if stage == 1:
            app.uncheck("input[name=materials][value=business_licence]")
            _shot(app, artifacts_dir, "01_applicant_submits")
        app.click("#wf-submit")
        app.wait_for_load_state("networkidle")
        assert _project(engine, pid)[0] == "submitted"

        # the window accepts, giving the minor item a due date (容缺受理)
        clerk = users.page("clerk")
        clerk.goto(f"{base}/workflow/window")
        stage_id, tasks = _tasks(engine, pid, stage)
        box = clerk.locator(f"section.wf-intake[data-stage='{stage_id}']")
        if stage == 1:
            box.locator("input[name=due_business_licence]").fill((today + dt.timedelta(days=14)).isoformat())
            _shot(clerk, artifacts_dir, "02_window_intake")
        box.locator("button.wf-accept").click()
        clerk.wait_for_load_state("networkidle")
        status, receipt, code = _project(engine, pid)
        assert status == "in_review" and receipt and code
        assert {t[2] for t in _tasks(engine, pid, stage)[1].values()} == {"in_review"}  # all at once

        # every department decides; in stage 2 fire first asks for a correction
        for dept, (task_id, signoff, _status) in tasks.items():
            if stage == 2 and dept == "fire":
                page = _decide(users, base, dept, task_id, "correction_requested", "消防车道宽度需复核",
                               items="补充消防车道平面图\n补充消防救援场地说明")
                continue
            if stage == 1 and dept == "land":
                page = users.page(REVIEWER[dept])
                page.goto(f"{base}/workflow/tasks/{task_id}")
                page.wait_for_function("() => document.querySelectorAll('#wf-task-map path').length >= 2")
                page.check("input[name=decision][value=approved_with_conditions]")
                page.fill("textarea[name=opinion]", "原则同意。")
                page.fill("textarea[name=conditions]", "动工前缴清土地出让价款")
                _shot(page, artifacts_dir, "03_reviewer_decides")
                page = _decide(users, base, dept, task_id, "approved_with_conditions", "原则同意。",
                               conditions="动工前缴清土地出让价款")
            else:
                page = _decide(users, base, dept, task_id, "approved", f"{dept}：经审查，符合要求，同意。")
            if signoff:
                page = _sign(users, base, dept)
                if stage == 1 and dept == "land":
                    _shot(page, artifacts_dir, "04_leader_signs_off")
        if stage == 2:
            assert _project(engine, pid)[0] == "in_correction"
            app.goto(f"{base}/workflow/projects/{pid}")
            assert "补充消防车道平面图" in app.content()
            _shot(app, artifacts_dir, "05_correction_notice")
            app.click("#wf-submit")  # resubmission goes straight back to the department that asked
            app.wait_for_load_state("networkidle")
            task_id = tasks["fire"][0]
            _decide(users, base, "fire", task_id, "approved", "复核后符合要求，同意。")

        # the stage is approved: its combined document (一章通), HTML and PDF
        with Session(engine) as s:
            st = s.get(StageInstance, stage_id)
            assert st.status == "approved", (stage, st.status)
        app.goto(f"{base}/workflow/stages/{stage_id}/document")
        assert "一章通" in app.content()
        if stage == 1:
            assert "动工前缴清土地出让价款" in app.content()
            _shot(app, artifacts_dir, "06_combined_document")
        pdf = app.request.get(f"{base}/workflow/stages/{stage_id}/document.pdf")
        assert pdf.ok and pdf.body().startswith(b"%PDF")

    assert _project(engine, pid)[0] == "completed"
    app.goto(f"{base}/workflow/projects/{pid}")
    assert app.locator(".wf-timeline li").count() > 20
    _shot(app, artifacts_dir, "07_timeline")

    # the public: status by receipt number + query code, no personal data
    _, receipt, code = _project(engine, pid)
    ctx = users.browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    public = ctx.new_page()
    public.goto(f"{base}/public/status")
    public.fill("input[name=receipt_no]", receipt)
    public.fill("input[name=query_code]", code)
    public.click("form button[type=submit]")
    public.wait_for_load_state("networkidle")
    result = public.locator("#wf-status-result").inner_text()
    assert "已办结" in result and "李明" not in result
    _shot(public, artifacts_dir, "08_public_status")
    public.goto(f"{base}/public/catalogue?lang=en")
    _shot(public, artifacts_dir, "09_public_catalogue_en")
    ctx.close()

    sup = users.page("supervisor")
    sup.goto(f"{base}/workflow/supervision")
    sup.wait_for_function("() => document.querySelector('#chart-dept canvas') !== null")
    _shot(sup, artifacts_dir, "10_supervision")
    rev = users.page("planning_reviewer", "en")
    rev.goto(f"{base}/workflow/tasks?lang=en")
    _shot(rev, artifacts_dir, "11_reviewer_tasks_en")
