"""The interface's message catalogue: Simplified Chinese by default, English switchable.

Every visible string of the web front goes through ``gettext`` (``_()`` in templates). A
missing key raises ``KeyError`` so that a typo fails the page's test rather than showing a
raw key to a user. The language comes from ``?lang=`` (which also sets the cookie), else the
``lang`` cookie, else Chinese.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from flask import g, request

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
COOKIE_NAME = "lang"
HTML_LANG = {"zh": "zh-CN", "en": "en"}

MESSAGES: dict[str, dict[str, str]] = {
    # Layout
    "platform_name": {"zh": "工程建设项目联合审批平台", "en": "Joint construction approval platform"},
    "nav_main": {"zh": "主导航", "en": "Main navigation"},
    "nav_home": {"zh": "首页", "en": "Home"},
    "nav_map": {"zh": "审批地图", "en": "Approval map"},
    "switch_language": {"zh": "English", "en": "中文"},
    "switch_language_title": {"zh": "Switch to English", "en": "切换到中文"},
    "logout": {"zh": "退出登录", "en": "Log out"},
    "login": {"zh": "登录", "en": "Log in"},
    "current_user": {"zh": "当前用户", "en": "Signed in as"},
    "footer_note": {
        "zh": "一站受理 · 抄告相关 · 同步审批 · 限时办结",
        "en": "One-stop intake · notify all · review in parallel · finish on time",
    },
    # Roles
    "role_applicant": {"zh": "建设单位", "en": "Applicant"},
    "role_clerk": {"zh": "综合窗口", "en": "Window clerk"},
    "role_reviewer": {"zh": "审查员", "en": "Reviewer"},
    "role_leader": {"zh": "局领导", "en": "Leader"},
    "role_layer_editor": {"zh": "图层管理员", "en": "Layer editor"},
    "role_supervisor": {"zh": "电子监察", "en": "Supervisor"},
    "role_admin": {"zh": "系统管理员", "en": "Administrator"},
    # Landing page
    "landing_title": {"zh": "一张图审批，一站式办结", "en": "One map, one stop, one joint approval"},
    "landing_lead": {
        "zh": "国土、规划、住建、消防等部门共享同一空间数据库，针对同一项目同步审查。"
              "建设单位一次提交，各部门在法定时限内并联审批，审批进度在地图上一目了然。",
        "en": "The land, planning, construction and fire departments share one spatial database and review "
              "the same project at the same time. Applicants submit once; the departments review in parallel "
              "within their legal time limits; everyone sees where each project stands, on a map.",
    },
    "landing_point_intake": {"zh": "一站受理、一次性告知", "en": "One-stop intake and a one-time notice"},
    "landing_point_parallel": {"zh": "多部门并联审查、自动空间检测", "en": "Parallel review with automatic spatial checks"},
    "landing_point_clock": {"zh": "按工作日计时、超时预警与电子监察", "en": "Working-day clocks, warnings and supervision"},
    "landing_login_hint": {"zh": "工作人员及建设单位请登录后使用审批地图。",
                           "en": "Staff and applicants: log in to use the approval map."},
    "go_to_login": {"zh": "登录系统", "en": "Log in"},
    # Login
    "login_title": {"zh": "用户登录", "en": "Log in"},
    "username": {"zh": "用户名", "en": "User name"},
    "password": {"zh": "密码", "en": "Password"},
    "login_submit": {"zh": "登录", "en": "Log in"},
    "login_failed": {"zh": "用户名或密码错误。", "en": "Wrong user name or password."},
    "login_required_field": {"zh": "请填写用户名和密码。", "en": "Please enter your user name and password."},
    "login_required_notice": {"zh": "请先登录。", "en": "Please log in first."},
    "logged_out": {"zh": "您已安全退出。", "en": "You have logged out."},
    # Map
    "map_title": {"zh": "审批地图", "en": "Approval map"},
    "legend_title": {"zh": "图例：项目审批状态", "en": "Legend: approval status"},
    "legend_scope_all": {"zh": "显示全部项目", "en": "Showing all projects"},
    "legend_scope_own": {"zh": "仅显示本单位项目", "en": "Showing your own projects only"},
    "legend_parcels": {"zh": "宗地", "en": "parcels"},
    "layer_parcels": {"zh": "宗地（按审批状态着色）", "en": "Parcels (by approval status)"},
    "layer_project_parcels": {"zh": "仅项目宗地", "en": "Project parcels only"},
    "layer_grid": {"zh": "公里格网", "en": "Kilometre grid"},
    "status_none": {"zh": "无在办项目", "en": "No project"},
    "status_draft": {"zh": "草稿（未提交）", "en": "Draft (not submitted)"},
    "status_intake": {"zh": "已提交·待受理", "en": "Submitted, awaiting intake"},
    "status_in_review": {"zh": "审查中", "en": "In review"},
    "status_in_correction": {"zh": "补正中", "en": "Correction requested"},
    "status_approved": {"zh": "已批准", "en": "Approved"},
    "status_completed": {"zh": "已办结", "en": "Completed"},
    "status_rejected": {"zh": "不予许可", "en": "Rejected"},
    "field_parcel_code": {"zh": "宗地编号", "en": "Parcel"},
    "field_holder": {"zh": "权利人", "en": "Holder"},
    "field_land_use": {"zh": "用地性质", "en": "Land use"},
    "field_area": {"zh": "面积（㎡）", "en": "Area (m²)"},
    "field_project": {"zh": "项目", "en": "Project"},
    "field_project_code": {"zh": "项目编号", "en": "Project no."},
    "field_applicant_org": {"zh": "建设单位", "en": "Applicant"},
    "field_stage": {"zh": "阶段", "en": "Stage"},
    "field_status": {"zh": "状态", "en": "Status"},
    "field_project_count": {"zh": "涉及项目数", "en": "Projects on parcel"},
    "stage_1": {"zh": "第一阶段 立项用地规划许可", "en": "Stage 1 · land-use planning permit"},
    "stage_2": {"zh": "第二阶段 工程建设许可", "en": "Stage 2 · construction-engineering planning permit"},
    "stage_3": {"zh": "第三阶段 施工许可", "en": "Stage 3 · construction permit"},
    "stage_4": {"zh": "第四阶段 竣工验收", "en": "Stage 4 · completion acceptance"},
    # Errors
    "error_title": {"zh": "出错了", "en": "Something went wrong"},
    "error_400": {"zh": "请求无效或表单已过期，请返回刷新页面后重试。",
                  "en": "Bad request, or the form has expired. Go back, reload the page and try again."},
    "error_401": {"zh": "请先登录。", "en": "Please log in first."},
    "error_409": {"zh": "操作冲突：他人已先行处理，请刷新后重试。",
                  "en": "Conflict: someone else acted first. Reload and try again."},
    "error_422": {"zh": "提交的内容有误。", "en": "The submitted input is not valid."},
    "error_403": {"zh": "您的角色无权访问此页面。", "en": "Your role may not open this page."},
    "error_404": {"zh": "页面不存在。", "en": "This page does not exist."},
    "error_405": {"zh": "不支持此请求方式。", "en": "This request method is not allowed here."},
    "error_413": {"zh": "上传的文件过大。", "en": "The upload is too large."},
    "error_500": {"zh": "服务器内部错误，请稍后重试。", "en": "Internal server error. Please try again later."},
    "error_503": {"zh": "数据库暂时无法访问，请稍后重试。", "en": "The database is unavailable. Please try again later."},
    "back_home": {"zh": "返回首页", "en": "Back to the home page"},
}


def register(messages: dict[str, dict[str, str]]) -> None:
    """Add a blueprint's own messages to the catalogue. Each area keeps its messages beside its
    views; a key defined twice, or lacking a language, is an error at start-up."""
    for key, texts in messages.items():
        if key in MESSAGES and MESSAGES[key] != texts:
            raise KeyError(f"message {key!r} is defined twice")
        missing = set(LANGUAGES) - set(texts)
        if missing:
            raise KeyError(f"message {key!r} lacks {', '.join(sorted(missing))}")
        MESSAGES[key] = texts


def get_language() -> str:
    """The language of the current request (cached on ``g``)."""
    lang = g.get("lang")
    if lang is None:
        asked = request.args.get("lang") or request.cookies.get(COOKIE_NAME)
        lang = asked if asked in LANGUAGES else DEFAULT_LANGUAGE
        g.lang = lang
    return lang


def gettext(key: str, **values: object) -> str:
    """The message ``key`` in the current language, with ``{name}`` placeholders filled in."""
    text = MESSAGES[key][get_language()]
    return text.format(**values) if values else text


def pick(zh: str | None, en: str | None) -> str | None:
    """Of a pair of stored names (``name`` / ``name_en``), the one for the current language."""
    if get_language() == "en" and en:
        return en
    return zh or en


def other_language() -> str:
    return "en" if get_language() == "zh" else "zh"


def language_switch_url() -> str:
    """The current page (GET) in the other language."""
    path = request.path if not request.path.startswith("//") else "/"
    args = request.args.copy()
    args["lang"] = other_language()
    return f"{path}?{urlencode(list(args.items(multi=True)))}"


def remember_language(response):
    """``after_request``: an explicit ``?lang=`` choice is kept in a cookie for a year."""
    asked = request.args.get("lang")
    if asked in LANGUAGES and request.cookies.get(COOKIE_NAME) != asked:
        response.set_cookie(COOKIE_NAME, asked, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


def local_time(value: dt.datetime | None, seconds: bool = False) -> str:
    """An instant as the time in China (the jurisdiction's clock), to the minute or the second."""
    from gisapproval.workflow.base import CHINA

    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") if value else ""


def init_app(app) -> None:
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.globals.update(
        _=gettext, pick=pick, get_language=get_language, other_language=other_language,
        language_switch_url=language_switch_url, html_lang=HTML_LANG,
    )
    app.after_request(remember_language)
