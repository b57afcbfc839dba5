"""The planners' map page: every parcel, the legend, no foreign hosts, escaping, language, scope."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
import sqlalchemy as sa

from gisapproval.models import Parcel, Project, User, project_parcels
from web.mapdata import CATEGORIES, STATUS_CATEGORY
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


def _count(conn, table) -> int:
    return conn.scalar(sa.select(sa.func.count()).select_from(table))


def test_map_embeds_every_parcel_with_its_status(map_html, web, web_db):
    html = map_html()
    layers = web.collections(html)
    parcels = layers["parcels"]["features"]
    with web_db.connect() as conn:
        parcel_rows = _count(conn, Parcel)
        parcel_ids = set(conn.scalars(sa.select(Parcel.id)))
    assert parcel_rows > 0, "the test database has no parcels"
    assert len(parcels) == parcel_rows
    assert {f["id"] for f in parcels} == parcel_ids
    for f in parcels:
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        lon, lat = f["geometry"]["coordinates"][0][0][:2] if f["geometry"]["type"] == "Polygon" \
            else f["geometry"]["coordinates"][0][0][0][:2]
        assert 73 < lon < 136 and 3 < lat < 54, "coordinates must be EPSG:4326 lon/lat in China"
        assert f["properties"]["category"] in CATEGORIES
    # the project-parcels layer holds exactly the coloured parcels
    coloured = {f["id"] for f in parcels if f["properties"]["category"] != "none"}
    assert coloured, "the sample has projects: some parcels must be coloured"
    assert {f["id"] for f in layers["project_parcels"]["features"]} == coloured


def _submitted_projects_by_parcel(conn) -> dict[int, list[str]]:
    """Parcel id -> statuses of the projects on it that staff may see (not drafts, not withdrawn)."""
    rows = conn.execute(
        sa.select(project_parcels.c.parcel_id, Project.status)
        .join(Project, Project.id == project_parcels.c.project_id)
        .where(Project.status.notin_(["draft", "withdrawn"]))
    ).all()
    out: dict[int, list[str]] = {}
    for parcel_id, status in rows:
        out.setdefault(parcel_id, []).append(status)
    return out


@pytest.mark.parametrize("username", ["supervisor", "planning_reviewer", "clerk", "admin"])
def test_staff_see_every_submitted_project_coloured(map_html, web, web_db, username):
    parcels = web.collections(map_html(username))["parcels"]["features"]
    with web_db.connect() as conn:
        expected = _submitted_projects_by_parcel(conn)
    shown = {f["id"]: f["properties"] for f in parcels if f["properties"]["category"] != "none"}
    assert set(shown) == set(expected)
    for parcel_id, props in shown.items():
        assert props["status"] in expected[parcel_id]
        assert props["category"] == STATUS_CATEGORY[props["status"]]
        assert props["project_count"] == len(expected[parcel_id])
        assert props["project_code"] and props["project_name"]
    assert all(f["properties"]["category"] != "draft" for f in parcels)


def test_legend_lists_the_statuses_with_their_counts(map_html, web):
    html = map_html()
    parcels = web.collections(html)["parcels"]["features"]
    legend = web.legend(html)
    counts: dict[str, int] = {}
    for f in parcels:
        counts[f["properties"]["category"]] = counts.get(f["properties"]["category"], 0) + 1
    assert "图例" in legend
    for category, n in counts.items():
        row = re.search(rf'data-category="{category}">(.*?)</li>', legend, re.S)
        assert row, f"legend lacks {category}"
        assert STATUS_LABELS_ZH[category] in row.group(1)
        assert f'class="legend-count">{n}<' in row.group(1)
        assert CATEGORY_COLOURS[category] in row.group(1)
    for category in ("none", "intake", "in_review", "in_correction", "approved", "completed", "rejected"):
        assert STATUS_LABELS_ZH[category] in legend  # every status has its row, even when none has it yet


def test_layer_switcher_offers_the_layers(map_html):
    html = map_html()
    assert "L.control.layers(" in html
    for name in ("宗地（按审批状态着色）", "仅项目宗地"):
        assert name.encode("unicode_escape").decode() in html or name in html


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


@pytest.mark.parametrize(("username", "category"), [("applicant1", "draft"), ("applicant2", "none"),
                                                    ("supervisor", "none"), ("clerk", "none")])
def test_a_draft_is_visible_to_its_owner_only(map_html, web, draft_project, username, category):
    html = map_html(username)
    feature = next(f for f in web.collections(html)["parcels"]["features"] if f["id"] == draft_project)
    assert feature["properties"]["category"] == category
    assert ("TEST-DRAFT-0001" in html) == (category == "draft")


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


def test_markup_in_project_names_is_escaped(map_html, web, hostile_project):
    for query, label in (("", "&lt;script&gt;alert(1)&lt;/script&gt;"),
                         ("?lang=en", "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;")):
        html = map_html(query=query)
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html
        assert "<b>Evil" not in html
        feature = next(f for f in web.collections(html)["parcels"]["features"] if f["id"] == hostile_project)
        props = feature["properties"]
        assert props["project_name"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
        assert props["project_label"] == label
        assert props["applicant_org"] == "&lt;b&gt;Evil &amp; Co&lt;/b&gt;"
        assert props["category"] == "in_review"


def test_language_switch_changes_the_labels(client, web):
    web.login(client, "supervisor")
    zh = client.get("/map").get_data(as_text=True)
    assert '<html lang="zh-CN">' in zh
    assert "图例：项目审批状态" in zh
    assert 'href="/map?lang=en"' in zh  # the switch in the header

    en = client.get("/map?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in en
    assert "Legend: approval status" in en
    assert "Parcels (by approval status)" in en
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


def _own_parcels(conn, username: str) -> tuple[set[int], set[str]]:
    user_id = conn.scalar(sa.select(User.id).where(User.username == username))
    rows = conn.execute(
        sa.select(project_parcels.c.parcel_id, Project.code)
        .join(Project, Project.id == project_parcels.c.project_id)
        .where(Project.applicant_id == user_id, Project.status != "withdrawn")
    ).all()
    return {r.parcel_id for r in rows}, {r.code for r in rows}


@pytest.mark.parametrize("username", ["applicant1", "applicant2"])
def test_applicant_sees_only_own_projects_coloured(map_html, web, web_db, username):
    html = map_html(username)
    parcels = web.collections(html)["parcels"]["features"]
    with web_db.connect() as conn:
        own_parcels, own_codes = _own_parcels(conn, username)
        other_codes = set(conn.scalars(sa.select(Project.code))) - own_codes
        total = _count(conn, Parcel)
    assert own_parcels, f"{username} has projects in the sample"
    assert len(parcels) == total  # every parcel is drawn...
    coloured = {f["id"] for f in parcels if f["properties"]["category"] != "none"}
    assert coloured == own_parcels  # ...but only the applicant's own are coloured
    for f in parcels:
        props = f["properties"]
        if f["id"] in own_parcels:
            assert props["project_code"] in own_codes
        else:
            assert props["project_code"] is None and props["project_name"] is None
            assert props["holder"] is None  # and others' parcel holders are not shown
    for code in other_codes:
        assert code not in html
    assert "仅显示本单位项目" in web.legend(html)
