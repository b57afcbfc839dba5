"""The check engine: every department's rules on a project's footprints at once.

``run_project_checks`` evaluates all vector rules in ONE SQL statement (each rule's SELECT,
composed from predicates.py, united with UNION ALL) plus the raster rules with rasterio, as of
given layer versions, and stores a CheckRun with its CheckResults. ``recheck_affected`` does the
same for every project in flight that a layer version affects, set-based: one statement for
all projects, one bulk insert of runs and one of results.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from sqlalchemy import func as F
from sqlalchemy.orm import Session

from ..audit import record_event
from ..errors import InputError, NotFoundError, PermissionDeniedError
from ..models import (
    CHECK_OUTCOMES,
    IN_FLIGHT,
    SRID,
    Building,
    CheckResult,
    CheckRun,
    Department,
    Layer,
    LayerVersion,
    Project,
    User,
)
from . import predicates as P
from .evaluators import Context, LayerRef
from .registry import get_evaluator
from .rules import Rule, default_rules

PURPOSES = ("self_check", "review", "recheck")
PREFIX = {
    "pass": ("通过", "Pass"), "fail": ("不通过", "Fail"), "warn": ("警示", "Warning"),
    "no_data": ("无数据", "No data"), "not_applicable": ("不适用", "Not applicable"),
}


# ----------------------------------------------------------------------------- layers

def resolve_layers(session: Session, names: Iterable[str], as_of: dict[str, int | None] | None = None
                   ) -> dict[str, LayerRef]:
    """The version of each layer to check against: ``as_of[name]`` (a version number; None means
    the layer had no version) or the live version."""
    names = sorted(set(names))
    as_of = dict(as_of or {})
    rows = session.execute(
        sa.select(Layer.id, Layer.name, LayerVersion.number, LayerVersion.id.label("version_id"),
                  LayerVersion.raster_path, F.md5(F.ST_AsEWKB(Layer.coverage)).label("coverage_key"))
        .outerjoin(LayerVersion, sa.and_(
            LayerVersion.layer_id == Layer.id, LayerVersion.state == "live",
            _version_choice(as_of)))
        .where(Layer.name.in_(names + list(as_of)))).all()
    found = {r.name: r for r in rows}
    unknown = set(as_of) - set(found)
    if unknown:
        raise InputError(f"unknown layer(s) {', '.join(sorted(unknown))}", where="as_of")
    refs = {}
    for name in names:
        r = found.get(name)
        if r is None:
            refs[name] = LayerRef(name, None, None, None)
        elif name in as_of and as_of[name] is None or r.number is None:
            if name in as_of and as_of[name] is not None:
                raise NotFoundError(f"layer {name!r} has no version {as_of[name]}", where="as_of")
            refs[name] = LayerRef(name, r.id, None, None)
        else:
            refs[name] = LayerRef(name, r.id, r.number, r.version_id, r.raster_path, r.coverage_key)
    return refs


def _version_choice(as_of: dict):
    pinned = [(Layer.name == n, LayerVersion.number == int(v)) for n, v in as_of.items() if v is not None]
    live = LayerVersion.id == Layer.current_version_id
    return sa.case(*pinned, else_=live) if pinned else live


def _layer_names(rules: Iterable[Rule]) -> set[str]:
    return {n for r in rules for n in r.layers}


# ----------------------------------------------------------------------------- evaluation

def vector_statement(rules: Iterable[Rule], ctx: Context):
    """All vector rules as ONE statement (UNION ALL of each rule's SELECT)."""
    selects = [get_evaluator(r.type)(r, ctx).add_columns(sa.literal(r.id).label("rule_id"))
               for r in rules if r.kind == "vector"]
    return sa.union_all(*selects)


_STATEMENTS: dict[tuple, object] = {}


def cached_statement(rules: dict[str, Rule], layers: dict[str, LayerRef]):
    """The union statement for these rules and layer versions, built once (the projects are a
    bound parameter, ``scope_ids``), so repeated checks skip building and compiling it."""
    key = (tuple((r.id, r.type, r.severity, repr(r.params)) for r in rules.values()), tuple(sorted(layers.items())))
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        if len(_STATEMENTS) > 64:
            _STATEMENTS.clear()
        stmt = _STATEMENTS[key] = vector_statement(rules.values(), Context([0], layers))
    return stmt


def evaluate(session: Session, rules: dict[str, Rule], layers: dict[str, LayerRef], project_ids: list[int],
             raster_rules: set[str] | None = None) -> list[dict]:
    """Evaluate the rules for the projects; ``raster_rules`` limits which raster rules run."""
    if not project_ids:
        return []
    rows = []
    if any(r.kind == "vector" for r in rules.values()):
        stmt = cached_statement(rules, layers)
        rows = [dict(r._mapping) for r in session.execute(stmt, {"scope_ids": list(project_ids)})]
    rasters = [r for r in rules.values() if r.kind == "raster" and (raster_rules is None or r.id in raster_rules)]
    if rasters:
        rows += _evaluate_rasters(session, rasters, layers, project_ids)
    return rows


def _evaluate_rasters(session, rasters: list[Rule], layers, project_ids) -> list[dict]:
    names = sorted({r.layers[0] for r in rasters})
    covered = [P.covered_by(Building.geom, layers[n].layer_id).label(n) for n in names]
    rows = session.execute(sa.select(Building.project_id, Building.id, F.ST_AsBinary(Building.geom).label("wkb"),
                                     *covered).where(Building.project_id.in_(project_ids))
                           .order_by(Building.project_id, Building.id)).all()
    out = []
    for rule in rasters:
        name = rule.layers[0]
        buildings = [(r.project_id, r.id, shapely.from_wkb(bytes(r.wkb)), getattr(r, name)) for r in rows]
        for row in get_evaluator(rule.type)(rule, layers[name], buildings):
            row["rule_id"] = rule.id
            if row["evidence"] is not None:
                row["evidence"] = from_shape(row["evidence"], srid=SRID)
            out.append(row)
    return out


# ----------------------------------------------------------------------------- messages

def _num(value, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if unit == "" else f"{value:.2f}"


def _names(items, lang: str) -> str:
    labels = []
    for item in items or []:
        if isinstance(item, dict):
            labels.append(" ".join(str(v) for k, v in item.items() if v is not None and k in (
                "key", "name", "code", "use_code", "land_use", "building")))
        else:
            labels.append(str(item))
    labels = list(dict.fromkeys(labels))[:5]
    return ", ".join(labels)


def _detail(rule: Rule, details: dict, lang: str) -> str:
    zh = lang == "zh"
    d = details or {}
    parts = []
    for key, zh_label, en_label in (("features", "涉及", "features"), ("zones", "控规地块", "zones"),
                                    ("others", "涉及项目", "other projects"), ("parcels", "宗地", "parcels")):
        if d.get(key) and rule.type not in ("outside_parcels", "boundary_setback", "zoning_ratio"):
            parts.append(f"{zh_label} {_names(d[key], lang)}" if zh else f"{en_label}: {_names(d[key], lang)}")
    if d.get("road"):
        parts.append(f"道路 {d['road']}（{d.get('road_class')}）" if zh else f"road {d['road']} ({d.get('road_class')})")
    if d.get("neighbour"):
        parts.append(f"相邻建筑 {d['neighbour']}" if zh else f"neighbour {d['neighbour']}")
    if d.get("name") and rule.type == "nearest_distance":
        parts.append(f"{d['name']}")
    if d.get("zone") and rule.type == "zoning_ratio":
        parts.append(f"控规地块 {d['zone']}" if zh else f"zone {d['zone']}")
    if d.get("holder_differs"):
        parts.append("宗地权利人与申请单位不一致" if zh else "a parcel's holder is not the applicant")
    if not parts:
        return ""
    return ("（" + "；".join(parts) + "）") if zh else (" (" + "; ".join(parts) + ")")


def messages(rule: Rule, row: dict, layers: dict[str, LayerRef]) -> tuple[str, str]:
    outcome = row["outcome"]
    zh_p, en_p = PREFIX[outcome]
    if outcome == "no_data":
        from ..catalogue import default_catalogue

        cat = default_catalogue()
        titles_zh = "、".join(cat[n].title_zh for n in rule.layers) or "—"
        titles_en = ", ".join(cat[n].title_en for n in rule.layers) or "—"
        return (f"{zh_p}：{titles_zh} 图层在此处无覆盖或无数据，不能视为通过",
                f"{en_p}: the {titles_en} layer has no data here (outside its coverage or no version); not a pass")
    if outcome == "not_applicable":
        return (f"{zh_p}：项目未提供计算「{rule.title_zh}」所需的数据（如绿地面积）",
                f"{en_p}: the project gives no figures to compute '{rule.title_en}' (e.g. its green area)")
    if row["measured"] is None:
        return (f"{zh_p}：{rule.title_zh}——检测范围内无相关要素", f"{en_p}: {rule.title_en} — no feature within reach")
    values = {"measured": _num(row["measured"], rule.unit), "limit": _num(row["limit_value"], rule.unit),
              "unit": rule.unit}
    return (f"{zh_p}：" + rule.message_zh.format(**values, detail=_detail(rule, row["details"], "zh")),
            f"{en_p}: " + rule.message_en.format(**values, detail=_detail(rule, row["details"], "en")))


# ----------------------------------------------------------------------------- storing

def _department_ids(session: Session) -> dict[str, int]:
    return {code: i for i, code in session.execute(sa.select(Department.id, Department.code))}


def _result_rows(rules, layers, rows, dept_ids) -> list[dict]:
    out = []
    for row in rows:
        rule = rules[row["rule_id"]]
        zh, en = messages(rule, row, layers)
        adds = rule.adds_department if rule.adds_department and row["outcome"] in ("fail", "warn") else None
        out.append({
            "project_id": row["project_id"], "building_id": row["building_id"], "rule_id": rule.id,
            "department_id": dept_ids[rule.department], "outcome": row["outcome"], "measured": row["measured"],
            "limit_value": row["limit_value"], "unit": rule.unit, "message_zh": zh, "message_en": en,
            "evidence": row["evidence"], "details": row["details"] or {},
            "layer_version_ids": [layers[n].version_id for n in rule.layers if layers[n].present],
            "adds_department": adds,
        })
    return out


def _previous(session: Session, project_ids: list[int]) -> tuple[dict[int, int], dict[tuple, tuple]]:
    """Each project's latest run and that run's automatic results, in one query."""
    latest = (sa.select(CheckRun.project_id, F.max(CheckRun.id).label("run_id"))
              .where(CheckRun.project_id.in_(project_ids)).group_by(CheckRun.project_id).subquery("latest"))
    rows = session.execute(
        sa.select(latest.c.project_id, latest.c.run_id, CheckResult.rule_id, CheckResult.building_id,
                  CheckResult.outcome, CheckResult.measured)
        .select_from(latest.outerjoin(CheckResult, sa.and_(CheckResult.check_run_id == latest.c.run_id,
                                                            CheckResult.overrides_result_id.is_(None))))).all()
    previous = {r.project_id: r.run_id for r in rows}
    old = {(r.project_id, r.rule_id, r.building_id): (r.outcome, r.measured) for r in rows if r.rule_id is not None}
    return previous, old


def _previous_runs(session: Session, project_ids: list[int]) -> dict[int, int]:
    rows = session.execute(sa.select(CheckRun.project_id, F.max(CheckRun.id)).where(
        CheckRun.project_id.in_(project_ids)).group_by(CheckRun.project_id)).all()
    return dict(rows)


def _changes(previous: dict[int, int], old: dict[tuple, tuple], new: list[dict]) -> dict[int, list[dict]]:
    """Per project: the (rule, building) results whose outcome or measure changed since its previous run."""
    if not previous:
        return {}
    out: dict[int, list[dict]] = defaultdict(list)
    seen = set()
    for row in new:
        key = (row["project_id"], row["rule_id"], row["building_id"])
        seen.add(key)
        if row["project_id"] not in previous:
            continue
        before = old.get(key)
        m = row["measured"]
        if before is None or before[0] != row["outcome"] or (
                (before[1] is None) != (m is None) or (m is not None and abs(before[1] - m) > 1e-6)):
            out[row["project_id"]].append({
                "rule_id": row["rule_id"], "building_id": row["building_id"],
                "before": before[0] if before else None, "after": row["outcome"],
                "measured_before": before[1] if before else None, "measured_after": m})
    for key, (outcome, measured) in old.items():
        if key not in seen and key[0] in previous:
            out[key[0]].append({"rule_id": key[1], "building_id": key[2], "before": outcome, "after": None,
                                "measured_before": measured, "measured_after": None})
    return out


def _store(session: Session, actor: User | None, purpose: str, project_ids: list[int], rules, layers,
           rows: list[dict], *, stage_instance_id: int | None = None, trigger_version_id: int | None = None,
           copied_rules: set[str] = frozenset()) -> dict[int, CheckRun]:
    """Write one run per project and all their results (bulk), with what changed since each
    project's previous run; returns the runs by project id."""
    dept_ids = _department_ids(session)
    results = _result_rows(rules, layers, rows, dept_ids)
    previous, old = _previous(session, project_ids)
    carried = [r for r in old_rows(old) if r["rule_id"] in copied_rules] if copied_rules else []
    changes = _changes(previous, old, results + carried)
    by_project: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        by_project[r["project_id"]].append(r)
    version_map = {n: ref.number for n, ref in sorted(layers.items())}
    runs = {}
    for pid in project_ids:
        mine = by_project.get(pid, [])
        counts = Counter(r["outcome"] for r in mine)
        extra = sorted({r["adds_department"] for r in mine if r["adds_department"]})
        run = CheckRun(project_id=pid, stage_instance_id=stage_instance_id, purpose=purpose,
                       created_by_id=actor.id if actor else None, layer_versions=version_map,
                       previous_run_id=previous.get(pid), trigger_version_id=trigger_version_id,
                       extra_departments=extra, summary=dict(counts), changes=changes.get(pid, []))
        session.add(run)
        runs[pid] = run
    session.flush()
    if results:
        session.execute(sa.insert(CheckResult), [
            {**{k: v for k, v in r.items() if k != "project_id"}, "check_run_id": runs[r["project_id"]].id}
            for r in results])
    if copied_rules and previous:
        _copy_results(session, {previous[p]: runs[p].id for p in project_ids if p in previous}, copied_rules)
    return runs


def old_rows(old: dict[tuple, tuple]) -> list[dict]:
    """The previous results as rows (for results carried over unchanged)."""
    return [{"project_id": p, "rule_id": r, "building_id": b, "outcome": o, "measured": m}
            for (p, r, b), (o, m) in old.items()]


def _copy_results(session, run_map: dict[int, int], copied_rules) -> None:
    """Carry results of rules whose layers did not change from the previous runs (one statement)."""
    pairs = sa.values(sa.column("old_id", sa.Integer), sa.column("new_id", sa.Integer), name="run_map").data(
        list(run_map.items()))
    cols = ["building_id", "rule_id", "department_id", "outcome", "measured", "limit_value", "unit", "message_zh",
            "message_en", "evidence", "layer_version_ids", "details", "adds_department"]
    src = (sa.select(pairs.c.new_id, *[CheckResult.__table__.c[c] for c in cols])
           .join(pairs, pairs.c.old_id == CheckResult.check_run_id)
           .where(CheckResult.rule_id.in_(list(copied_rules)), CheckResult.overrides_result_id.is_(None)))
    session.execute(sa.insert(CheckResult).from_select(["check_run_id", *cols], src))


def _report_overlaps(session: Session, actor, project: Project, results: list[dict]) -> None:
    """A footprint overlapping another project in flight is reported to both: the other project
    gets an audit event (its next check shows the overlap too)."""
    told = set()
    for r in results:
        if r["rule_id"] != "project_overlap" or r["outcome"] in ("pass", "no_data"):
            continue
        for other in (r.get("details") or {}).get("others") or []:
            if other["project_id"] in told:
                continue
            told.add(other["project_id"])
            record_event(session, actor, "project.overlap_found", ("projects", other["project_id"]),
                         {"with_project": project.code, "with_project_id": project.id,
                          "area_m2": round(r["measured"] or 0, 2)}, project_id=other["project_id"])


# ----------------------------------------------------------------------------- use cases

def _ensure_may_check(actor: User | None, project: Project, purpose: str) -> None:
    if purpose not in PURPOSES:
        raise InputError(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}", where="purpose")
    if purpose == "self_check" and actor is not None:
        roles = actor.role_codes
        if "applicant" in roles and project.applicant_id != actor.id and not ({"admin", "clerk"} & roles):
            raise PermissionDeniedError(f"project {project.code} is not {actor.username}'s")


def run_project_checks(session: Session, actor: User | None, project: Project, purpose: str = "self_check",
                       stage_instance=None, as_of: dict[str, int] | None = None) -> CheckRun:
    """Run every department's rules on the project's buildings at once and store the run.

    ``as_of`` maps layer name -> version number (None: the layer had no version); layers not
    named are checked against their live version. The run records every layer's version, so
    ``reproduce_run`` re-runs it exactly. The caller commits.
    """
    _ensure_may_check(actor, project, purpose)
    n_buildings = session.scalar(sa.select(F.count()).select_from(Building).where(Building.project_id == project.id))
    if not n_buildings:
        raise InputError(f"project {project.code} has no buildings to check; add footprints first",
                         where=project.code)
    rules = default_rules()
    layers = resolve_layers(session, _layer_names(rules.values()), as_of)
    rows = evaluate(session, rules, layers, [project.id])
    stage_id = stage_instance.id if stage_instance is not None else None
    run = _store(session, actor, purpose, [project.id], rules, layers, rows, stage_instance_id=stage_id)[project.id]
    _report_overlaps(session, actor, project, rows)
    record_event(session, actor, "check_run.completed", run,
                 {"purpose": purpose, "summary": run.summary, "layer_versions": run.layer_versions,
                  "extra_departments": run.extra_departments, "changes": len(run.changes)}, project_id=project.id)
    return run


def reproduce_run(session: Session, actor: User | None, run: CheckRun) -> CheckRun:
    """Run the checks again as of the layer versions ``run`` used."""
    project = session.get(Project, run.project_id)
    return run_project_checks(session, actor, project, purpose=run.purpose, as_of=dict(run.layer_versions))


def recheck_affected(session: Session, layer_version_id: int) -> list[int]:
    """Re-check, set-based, the projects in flight that a layer version affects
    (LayerVersion.affected_project_ids) against the live layers, and record for their reviewers
    what changed (CheckRun.changes and a ``check_run.rechecked`` event per project). Returns the
    ids of the new runs. The caller commits."""
    version = session.get(LayerVersion, layer_version_id)
    if version is None:
        raise NotFoundError(f"no layer version {layer_version_id}")
    layer = session.get(Layer, version.layer_id)
    candidates = list(version.affected_project_ids or [])
    if not candidates:
        return []
    project_ids = list(session.scalars(
        sa.select(Project.id).where(Project.id.in_(candidates), Project.status.in_(IN_FLIGHT),
                                    sa.exists().where(Building.project_id == Project.id)).order_by(Project.id)))
    if not project_ids:
        return []
    rules = default_rules()
    layers = resolve_layers(session, _layer_names(rules.values()))
    previous = _previous_runs(session, project_ids)
    # raster rules read files: re-evaluate them only when their raster changed or nothing is there
    # to carry over; otherwise their results are carried from the previous run in one statement
    raster_ids = {r.id for r in rules.values() if r.kind == "raster"}
    changed_rasters = {r.id for r in rules.values() if r.kind == "raster" and layer.name in r.layers}
    fresh = [p for p in project_ids if p not in previous]
    carried = [p for p in project_ids if p in previous]
    rows = evaluate(session, rules, layers, project_ids, raster_rules=changed_rasters)
    if fresh and raster_ids - changed_rasters:
        rows += _evaluate_rasters(session, [rules[i] for i in sorted(raster_ids - changed_rasters)], layers, fresh)
    copied = (raster_ids - changed_rasters) if carried else set()
    runs = _store(session, None, "recheck", project_ids, rules, layers, rows, trigger_version_id=version.id,
                  copied_rules=copied)
    for pid, run in runs.items():
        session.add(run)
        record_event(session, None, "check_run.rechecked", run,
                     {"layer": layer.name, "version": version.number, "layer_version_id": version.id,
                      "changes": run.changes[:50], "changed": len(run.changes)}, project_id=pid)
    return [runs[p].id for p in project_ids]


# ----------------------------------------------------------------------------- reading and overriding

def latest_run(session: Session, project_id: int) -> CheckRun | None:
    return session.scalar(sa.select(CheckRun).where(CheckRun.project_id == project_id)
                          .order_by(CheckRun.id.desc()).limit(1))


def run_results(session: Session, run: CheckRun) -> list[tuple[CheckResult, list[CheckResult]]]:
    """The run's automatic results, each with its overrides (newest last); the newest override wins."""
    rows = list(session.scalars(sa.select(CheckResult).where(CheckResult.check_run_id == run.id)
                                .order_by(CheckResult.id)))
    overrides: dict[int, list[CheckResult]] = defaultdict(list)
    originals = []
    for r in rows:
        if r.overrides_result_id is None:
            originals.append(r)
        else:
            overrides[r.overrides_result_id].append(r)
    return [(r, overrides.get(r.id, [])) for r in originals]


def override_result(session: Session, actor: User, result_id: int, outcome: str, reason: str) -> CheckResult:
    """A reviewer of the rule's department overrides an automatic result with a reason. The
    original stays; the override is a new result pointing at it."""
    original = session.get(CheckResult, result_id)
    if original is None:
        raise NotFoundError(f"no check result {result_id}")
    if original.overrides_result_id is not None:
        original = session.get(CheckResult, original.overrides_result_id)
    rule = default_rules().get(original.rule_id)
    if actor is None or "reviewer" not in actor.role_codes and "leader" not in actor.role_codes:
        raise PermissionDeniedError("only a department reviewer may override a check result")
    dept = actor.department.code if actor.department else None
    allowed = {session.get(Department, original.department_id).code}
    if original.adds_department:
        allowed.add(original.adds_department)
    if dept not in allowed:
        raise PermissionDeniedError(f"result {result_id} ({original.rule_id}) belongs to the "
                                    f"{'/'.join(sorted(allowed))} department; {actor.username} reviews for {dept}")
    if outcome not in CHECK_OUTCOMES:
        raise InputError(f"outcome must be one of {', '.join(CHECK_OUTCOMES)}, not {outcome!r}", where="outcome")
    reason = (reason or "").strip()
    if not reason:
        raise InputError("an override needs a reason", where="reason")
    if len(reason) > 2000:
        raise InputError("the reason is longer than 2000 characters", where="reason")
    title = (rule.title_zh, rule.title_en) if rule else (original.rule_id, original.rule_id)
    override = CheckResult(
        check_run_id=original.check_run_id, building_id=original.building_id, rule_id=original.rule_id,
        department_id=original.department_id, outcome=outcome, measured=original.measured,
        limit_value=original.limit_value, unit=original.unit,
        message_zh=f"{PREFIX[outcome][0]}（审查员改判）：{title[0]}——{reason}",
        message_en=f"{PREFIX[outcome][1]} (reviewer override): {title[1]} — {reason}",
        evidence=original.evidence, layer_version_ids=list(original.layer_version_ids or []),
        details=original.details, adds_department=original.adds_department,
        overrides_result_id=original.id, override_reason=reason, overridden_by_id=actor.id)
    session.add(override)
    session.flush()
    run = session.get(CheckRun, original.check_run_id)
    record_event(session, actor, "check_result.overridden", override,
                 {"original_id": original.id, "rule_id": original.rule_id, "from": original.outcome, "to": outcome,
                  "reason": reason}, project_id=run.project_id)
    return override


def overlapping_projects(session: Session, project_id: int) -> list[dict]:
    """Other projects in flight whose buildings overlap this project's (live, through the index)."""
    b, o = sa.orm.aliased(Building, name="b"), sa.orm.aliased(Building, name="o")
    rows = session.execute(
        sa.select(Project.id, Project.code, Project.name, F.sum(P.overlap_area(b.geom, o.geom)).label("area"))
        .select_from(b).join(o, sa.and_(P.intersects(o.geom, b.geom), o.project_id != b.project_id))
        .join(Project, Project.id == o.project_id)
        .where(b.project_id == project_id, Project.status.in_(IN_FLIGHT))
        .group_by(Project.id, Project.code, Project.name).order_by(Project.code)).all()
    return [dict(r._mapping) for r in rows if (r.area or 0) > 0]
