"""The planners' map page: tiled (no parcel embedded), the legend, the layer switcher, no foreign
hosts, escaping, language, and what each viewer may see (popup details)."""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin, urlsplit

import pytest
import sqlalchemy as sa

from gisapproval.mapdata import STATUS_CATEGORY, STATUS_PRIORITY
from gisapproval.models import Layer, Parcel, Project, User, project_parcels
from web.mapview import CATEGORY_COLOURS

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
STATUS_LABELS_ZH = {"none": "无在办项目", "intake": "已提交·待受理", "in_review": "审查中", "in_correction": "补正中",
                    "approved": "已批准", "completed": "已办结", "rejected": "不予许可", "draft": "草稿（未提交）"}
STATUS_LABELS_EN = {"none": "No project", "intake": "Submitted, awaiting intake", "in_review": "In review",
                    "in_correction": "Correction requested", "approved": "Approved", "completed": "Completed",
                    "rejected": "Rejected", "draft": "Draft (not submitted)"}


@pytest.fixture
def map_html(client, web):
    def get(username: str = "supervisor", query: str = "") -> str:
        web.login(client, username)
        response = client.get("/map" + query)
        assert response.status_code == 200
        return response.get_data(as_text=True)

    return get


def web_config(html: str) -> dict:
    """The configuration the page hands to GisMap.init (tile URLs, labels, colours)."""
    match = re.search(r"GisMap\.init\(\w+, ", html)
    assert match, "the page does not start the tiled map"
    return json.JSONDecoder().raw_decode(html, match.end())[0]


def _count(conn, table) -> int:
    return conn.scalar(sa.select(sa.func.count()).select_from(table))


def _expected_counts(conn, username: str) -> dict[str, int]:
    """Legend counts computed independently: the most live visible project on each parcel."""
    user_id, roles = conn.execute(sa.text(
        "SELECT u.id, array_agg(r.role) FROM users u JOIN user_roles r ON r.user_id = u.id "
        "WHERE u.username = :u GROUP BY u.id"), {"u": username}).one()
    staff = set(roles) - {"applicant"}
    rows = conn.execute(sa.select(project_parcels.c.parcel_id, Project.status, Project.applicant_id)
                        .join(Project, Project.id == project_parcels.c.project_id)
                        .where(Project.status != "withdrawn")).all()
    best: dict[int, str] = {}
    for parcel_id, status, applicant_id in rows:
        if status == "draft" and applicant_id != user_id:
            continue
        if not staff and applicant_id != user_id:
            continue
        if parcel_id not in best or STATUS_PRIORITY[status] < STATUS_PRIORITY[best[parcel_id]]:
            best[parcel_id] = status
    counts = dict.fromkeys(STATUS_LABELS_ZH, 0)
    for status in best.values():
        counts[STATUS_CATEGORY[status]] += 1
    counts["none"] = _count(conn, Parcel) - len(best)
    return counts


def test_the_map_loads_tiles_and_embeds_no_parcels(map_html, web, web_db):
    html = map_html()
    assert web.collections(html) == {}  # no GeoJSON FeatureCollection in the page
    config = web_config(html)
    assert config["tiles"]["parcels"] == "/tiles/parcels/{z}/{x}/{y}.pbf"
    assert config["tiles"]["footprints"] == "/tiles/footprints/{z}/{x}/{y}.pbf"
    assert config["detailsUrl"] == "/api/map/parcels/"
    (south, west), (north, east) = config["bounds"]
    assert 73 < west < east < 136 and 3 < south < north < 54
    with web_db.connect() as conn:
        vector = set(conn.scalars(sa.select(Layer.name).where(Layer.kind == "vector",
                                                              Layer.current_version_id.is_not(None))))
    assert {spec["name"] for spec in config["layers"]} == vector
    for spec in config["layers"]:
        assert spec["url"] == f"/tiles/layers/{spec['name']}/{{z}}/{{x}}/{{y}}.pbf"
    assert config["colours"] == CATEGORY_COLOURS
    assert len(html) < 200_000, "the page's weight does not grow with the parcels"


@pytest.mark.parametrize("username", ["supervisor", "planning_reviewer", "applicant1", "applicant2"])
def test_legend_lists_the_statuses_with_their_counts(map_html, web, web_db, username):
    html = map_html(username)
    legend = web.legend(html)
    with web_db.connect() as conn:
        expected = _expected_counts(conn, username)
    assert "图例" in legend
    for category, n in expected.items():
        if category == "draft" and not n and username.startswith(("supervisor", "planning")):
            assert 'data-category="draft"' not in legend
            continue
        row = re.search(rf'data-category="{category}">(.*?)</li>', legend, re.DOTALL)
        assert row, f"legend lacks {category}"
        assert STATUS_LABELS_ZH[category] in row.group(1)
        assert f'class="legend-count">{n}<' in row.group(1)
        assert CATEGORY_COLOURS[category] in row.group(1)
    assert f"{sum(expected.values())} 宗地" in legend
    scope = "仅显示本单位项目" if username.startswith("applicant") else "显示全部项目"
    assert scope in legend


def test_layer_switcher_offers_the_layers(map_html, web, web_db):
    labels = web_config(map_html())["labels"]
    assert labels["parcels"] == "宗地（按审批状态着色）"
    assert labels["footprints"] == "项目建筑轮廓"
    with web_db.connect() as conn:
        titles = set(conn.scalars(sa.select(Layer.title_zh).where(Layer.kind == "vector")))
    assert {spec["title"] for spec in web_config(map_html())["layers"]} <= titles


def _foreign_hosts(html: str) -> set[str]:
    hosts = {urlsplit(m.group(0)).hostname for m in re.finditer(r"(?i)\bhttps?://[^\s\"'<>()\\]+", html)}
    hosts |= {m.group(1) for m in re.finditer(r"""(?i)(?:src|href|action)\s*=\s*["']//([^/"']+)""", html)}
    return {h for h in hosts if h and h not in LOCAL_HOSTS}


@pytest.mark.parametrize("query", ["", "?lang=en"])
def test_map_page_names_no_other_host(map_html, query):
    html = map_html(query=query)
    assert _foreign_hosts(html) == set()
    assert "cdn" not in html.lower()
    assert "https://" not in html  # not even an attribution link


@pytest.mark.parametrize("path", ["/", "/login", "/?lang=en"])
def test_public_pages_name_no_other_host(client, path):
    html = client.get(path).get_data(as_text=True)
    assert _foreign_hosts(html) == set()


def test_every_referenced_static_asset_is_served(map_html, client):
    html = map_html()
    assets = set(re.findall(r"""(?:src|href)\s*=\s*["'](/static/[^"']+)["']""", html))
    assert "/static/vendor/leaflet/leaflet.js" in assets
    assert "/static/vendor/leaflet/leaflet.css" in assets
    assert "/static/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js" in assets
    assert "/static/js/map.js" in assets and "/static/css/map.css" in assets
    for path in sorted(assets):
        response = client.get(path)
        assert response.status_code == 200, f"{path} -> {response.status_code} (run `python -m web.vendor_assets`?)"
        if path.endswith(".css"):  # and what the stylesheets themselves point to
            css = response.get_data(as_text=True)
            for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", css):
                if ref.startswith("data:"):
                    continue
                target = urljoin(path, ref)
                assert urlsplit(target).netloc == "", f"{path} loads {ref} from another host"
                assert client.get(target).status_code == 200, f"{path} refers to missing {target}"


def test_map_is_served_with_the_security_headers(map_html, client):
    map_html()
    response = client.get("/map")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "img-src 'self' data:" in csp
    assert "http" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "no-store" in response.headers["Cache-Control"]  # a user's map stays out of shared caches


def _free_parcel(conn) -> int:
    return conn.scalar(
        sa.select(Parcel.id).where(~sa.exists().where(project_parcels.c.parcel_id == Parcel.id))
        .order_by(Parcel.id).limit(1)
    )


@pytest.fixture
def draft_project(web_db):
    """An unsubmitted project of applicant1 on a parcel with no project."""
    with web_db.begin() as conn:
        applicant_id = conn.scalar(sa.select(User.id).where(User.username == "applicant1"))
        parcel_id = _free_parcel(conn)
        project_id = conn.scalar(sa.insert(Project).values(
            code="TEST-DRAFT-0001", name="未提交的草稿项目", applicant_id=applicant_id, applicant_org="测试",
            current_stage=1, status="draft").returning(Project.id))
        conn.execute(sa.insert(project_parcels).values(project_id=project_id, parcel_id=parcel_id))
    yield parcel_id
    with web_db.begin() as conn:
        conn.execute(sa.delete(Project).where(Project.id == project_id))


@pytest.mark.parametrize(("username", "shown"), [("applicant1", True), ("applicant2", False), ("supervisor", False),
                                                 ("clerk", False)])
def test_a_draft_is_visible_to_its_owner_only(client, web, web_db, draft_project, username, shown):
    web.login(client, username)
    codes = {p["code"] for p in client.get(f"/api/map/parcels/{draft_project}").get_json()["projects"]}
    assert ("TEST-DRAFT-0001" in codes) == shown
    with web_db.connect() as conn:
        drafts = _expected_counts(conn, username)["draft"]  # other tests may have left drafts of their own
    legend = web.legend(client.get("/map").get_data(as_text=True))
    draft_row = re.search(r'data-category="draft">(.*?)</li>', legend, re.S)
    if shown:
        assert drafts >= 1 and f'class="legend-count">{drafts}<' in draft_row.group(1)
    else:
        assert drafts == 0
        assert draft_row is None or 'class="legend-count">0<' in draft_row.group(1)


@pytest.fixture
def hostile_project(web_db):
    """A project whose name, English name and organisation are markup, on a parcel with no project."""
    with web_db.begin() as conn:
        applicant_id = conn.scalar(sa.select(User.id).where(User.username == "applicant2"))
        parcel_id = _free_parcel(conn)
        project_id = conn.scalar(
            sa.insert(Project).values(
                code="TEST-XSS-0001",
                name="<script>alert(1)</script>",
                name_en='<img src=x onerror="alert(2)">',
                applicant_id=applicant_id,
                applicant_org="<b>Evil & Co</b>",
                current_stage=1,
                status="in_review",
            ).returning(Project.id)
        )
        conn.execute(sa.insert(project_parcels).values(project_id=project_id, parcel_id=parcel_id))
    yield parcel_id
    with web_db.begin() as conn:
        conn.execute(sa.delete(Project).where(Project.id == project_id))


def test_markup_in_project_names_stays_text(map_html, client, web, hostile_project):
    for query in ("", "?lang=en"):
        html = map_html(query=query)
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html
        assert "<b>Evil" not in html
    details = client.get(f"/api/map/parcels/{hostile_project}")
    assert details.mimetype == "application/json"  # never rendered as HTML by the server
    project = next(p for p in details.get_json()["projects"] if p["code"] == "TEST-XSS-0001")
    assert project["name"] == "<script>alert(1)</script>"  # raw: map.js sets it as text
    assert project["applicant_org"] == "<b>Evil & Co</b>"
    script = client.get("/static/js/map.js").get_data(as_text=True)
    assert "innerHTML" not in script and "textContent" in script


def _project_parcel(conn, username: str | None = None, other_than: str | None = None) -> tuple[int, str]:
    query = (sa.select(project_parcels.c.parcel_id, Project.code).join(Project, Project.id == project_parcels.c.project_id)
             .join(User, User.id == Project.applicant_id).where(Project.status.notin_(["draft", "withdrawn"]))
             .order_by(project_parcels.c.parcel_id))
    if username:
        query = query.where(User.username == username)
    if other_than:
        query = query.where(User.username != other_than)
    return conn.execute(query.limit(1)).one()


def test_parcel_details_give_project_stage_departments_and_days_left(client, web, web_db):
    with web_db.connect() as conn:
        parcel_id, code = conn.execute(sa.text(
            "SELECT pp.parcel_id, p.code FROM project_parcels pp JOIN projects p ON p.id = pp.project_id "
            "JOIN stage_instances s ON s.project_id = p.id AND s.stage = p.current_stage "
            "JOIN review_tasks t ON t.stage_instance_id = s.id "
            "WHERE p.status = 'in_review' AND s.accepted_on IS NOT NULL AND t.status IN ('pending', 'in_review') "
            "ORDER BY pp.parcel_id LIMIT 1")).one()
        departments = set(conn.scalars(sa.text(
            "SELECT d.code FROM review_tasks t JOIN departments d ON d.id = t.department_id JOIN stage_instances s "
            "ON s.id = t.stage_instance_id JOIN projects p ON p.id = s.project_id AND s.stage = p.current_stage "
            "WHERE p.code = :c"), {"c": code}))
    web.login(client, "supervisor")
    response = client.get(f"/api/map/parcels/{parcel_id}")
    assert response.status_code == 200 and response.mimetype == "application/json"
    details = response.get_json()
    project = next(p for p in details["projects"] if p["code"] == code)
    assert project["status"] == "in_review" and project["category"] == "in_review"
    assert {t["department"] for t in project["tasks"]} == departments
    open_tasks = [t for t in project["tasks"] if t["status"] in ("pending", "in_review")]
    assert open_tasks and all(t["colour"] in ("green", "yellow", "red", "stopped") for t in open_tasks)
    assert all(isinstance(t["days_left"], int) for t in open_tasks if t["colour"] != "stopped")
    assert project["days_left"] == min(t["days_left"] for t in project["tasks"] if t["days_left"] is not None)
    assert details["holder"]
    assert client.get("/api/map/parcels/999999999").status_code == 404


@pytest.mark.parametrize("username", ["applicant1", "applicant2"])
def test_applicants_see_details_of_their_own_projects_only(client, web, web_db, username):
    with web_db.connect() as conn:
        own_parcel, own_code = _project_parcel(conn, username)
        other_parcel, other_code = _project_parcel(conn, other_than=username)
    web.login(client, username)
    own = client.get(f"/api/map/parcels/{own_parcel}").get_json()
    assert own_code in {p["code"] for p in own["projects"]} and own["holder"]
    other = client.get(f"/api/map/parcels/{other_parcel}").get_json()
    assert other_code not in {p["code"] for p in other["projects"]}
    if not other["projects"]:
        assert other["holder"] is None  # no one else's holder either
    assert other_code not in client.get("/map").get_data(as_text=True)


def test_details_need_a_login(client):
    response = client.get("/api/map/parcels/1")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthenticated"


def test_language_switch_changes_the_labels(client, web):
    web.login(client, "supervisor")
    zh = client.get("/map").get_data(as_text=True)
    assert '<html lang="zh-CN">' in zh
    assert "图例：项目审批状态" in zh
    assert 'href="/map?lang=en"' in zh  # the switch in the header

    en = client.get("/map?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in en
    assert "Legend: approval status" in en
    assert web_config(en)["labels"]["parcels"] == "Parcels (by approval status)"
    assert "Joint construction approval platform" in en
    assert "图例" not in en
    legend = web.legend(en)
    for category in ("none", "in_review", "approved", "rejected"):
        assert STATUS_LABELS_EN[category] in legend

    # the choice is remembered in a cookie
    again = client.get("/map").get_data(as_text=True)
    assert '<html lang="en">' in again
    back = client.get("/map?lang=zh").get_data(as_text=True)
    assert '<html lang="zh-CN">' in back


def test_unknown_language_falls_back_to_chinese(client):
    html = client.get("/?lang=fr").get_data(as_text=True)
    assert '<html lang="zh-CN">' in html


@pytest.mark.parametrize("username", ["applicant1", "applicant2"])
def test_applicant_page_names_no_other_project(map_html, web, web_db, username):
    html = map_html(username)
    with web_db.connect() as conn:
        user_id = conn.scalar(sa.select(User.id).where(User.username == username))
        other_codes = set(conn.scalars(sa.select(Project.code).where(Project.applicant_id != user_id)))
    for code in other_codes:
        assert code not in html
    assert "仅显示本单位项目" in web.legend(html)
