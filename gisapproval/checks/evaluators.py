"""Vector rule evaluators: each composes predicates into ONE SELECT with the uniform result
columns (predicates.result) over the buildings — or, for project-level rules, the projects —
in the context's scope. The engine unions them and runs them in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import func as F

from ..models import IN_FLIGHT, Building, Parcel, Project, project_parcels
from . import predicates as P
from .rules import Rule


@dataclass(frozen=True)
class LayerRef:
    name: str
    layer_id: int | None
    number: int | None
    version_id: int | None
    raster_path: str | None = None
    coverage_key: str | None = None  # layers with the same coverage share one containment test

    @property
    def present(self) -> bool:
        return self.number is not None


class Context:
    """What an evaluator composes with: the buildings in scope and the layers as of their versions."""

    def __init__(self, project_ids, layers: dict[str, LayerRef]):
        self.project_ids = list(project_ids)
        self.layers = layers
        self.ids = sa.bindparam("scope_ids", self.project_ids, expanding=True)
        # each distinct coverage is tested once per building (not once per rule)
        self.coverage_column = {}
        tests = []
        for name, ref in sorted(layers.items()):
            if not ref.present or ref.coverage_key is None:
                continue
            column = f"cov_{ref.coverage_key[:12]}"
            if column not in {c.name for c in tests}:
                tests.append(P.covered_by(Building.geom, ref.layer_id).label(column))
            self.coverage_column[name] = column
        self.b = (sa.select(Building.id, Building.project_id, Building.geom, Building.height_m, Building.use,
                            Building.gfa_m2, Building.name, *tests)
                  .where(Building.project_id.in_(self.ids))
                  .subquery("b"))

    def ref(self, name: str) -> LayerRef:
        return self.layers[name]

    def as_of(self, f, name: str):
        ref = self.layers[name]
        if not ref.present:
            return sa.false()
        return P.as_of(f, ref.layer_id, ref.number)

    def covered(self, geom, *names: str):
        """The geometry lies inside every named layer's coverage (and the layer has a version)."""
        conds = []
        for n in names:
            ref = self.layers[n]
            if geom is self.b.c.geom and n in self.coverage_column:
                conds.append(self.b.c[self.coverage_column[n]])
            else:
                conds.append(P.covered_by(geom, ref.layer_id if ref.present and ref.coverage_key else None))
        return sa.and_(*conds) if conds else sa.true()

    def parcels_union(self):
        """Per project: the union of its parcels as the cadastre had them (as of its version);
        one CTE, computed once for every rule that needs it."""
        if getattr(self, "_pu", None) is None:
            self._pu = self._parcels_union()
        return self._pu

    def project_zone(self):
        """Per project: the zone covering most of its parcels (one CTE, shared by the ratio rules)."""
        if getattr(self, "_pz", None) is None:
            pu = self.parcels_union()
            f = P.feature_alias("zf")
            zone = (sa.select(f.attrs.label("attrs"), f.feature_key.label("key"))
                    .where(self.as_of(f, "zoning"), P.intersects(f.geom, pu.c.geom))
                    .order_by(P.overlap_area(f.geom, pu.c.geom).desc()).limit(1).lateral("zone"))
            self._pz = (sa.select(pu.c.project_id, zone.c.attrs, zone.c.key)
                        .select_from(pu.join(zone, sa.true())).cte("pz"))
        return self._pz

    def _parcels_union(self):
        f = P.feature_alias("pf")
        return (sa.select(project_parcels.c.project_id, F.ST_Union(f.geom).label("geom"),
                          F.sum(F.ST_Area(f.geom)).label("area"),
                          F.jsonb_agg(f.feature_key).label("codes"))
                .select_from(project_parcels)
                .join(Parcel, Parcel.id == project_parcels.c.parcel_id)
                .join(f, sa.and_(f.feature_key == Parcel.parcel_code, self.as_of(f, "cadastre")))
                .where(project_parcels.c.project_id.in_(self.ids))
                .group_by(project_parcels.c.project_id)
                .cte("pu"))


def _features_detail(f, label: str | None = "name"):
    if label:
        return F.jsonb_build_object("key", f.feature_key, "name", P.attr(f, label))
    return F.jsonb_build_object("key", f.feature_key)


def overlap(rule: Rule, ctx: Context):
    """Overlap area of each footprint with the layer's features (optionally filtered by attributes)."""
    b, name = ctx.b, rule.layers[0]
    f = P.feature_alias("f")
    conds = [ctx.as_of(f, name), P.intersects(f.geom, b.c.geom)]
    for key, values in rule.params.get("where", {}).items():
        conds.append(P.attr(f, key).in_(values))
    piece = P.overlap(b.c.geom, f.geom)
    hit = (sa.select(F.coalesce(F.sum(F.ST_Area(piece)), 0.0).label("area"),
                     F.ST_Union(piece).label("geom"),
                     F.coalesce(F.jsonb_agg(_features_detail(f, "name" if "name" in _attrs(name) else None)),
                                sa.text("'[]'::jsonb")).label("features"))
           .where(*conds).lateral("hit"))
    limit = rule.params["max_overlap_m2"]
    measured = hit.c.area
    cols = P.result(b.c.project_id, b.c.id, measured, limit,
                    P.outcome(ctx.covered(b.c.geom, name), P.exceeds(measured, limit), rule.severity),
                    hit.c.geom,
                    P.jsonb(features=hit.c.features, share=measured / F.nullif(F.ST_Area(b.c.geom), 0)))
    return sa.select(*cols).select_from(b.join(hit, sa.true()))


def _attrs(layer_name: str) -> dict:
    from ..catalogue import default_catalogue

    return default_catalogue()[layer_name].attributes


def outside_parcels(rule: Rule, ctx: Context):
    """Area of each footprint outside the union of the project's parcels."""
    b = ctx.b
    pu = ctx.parcels_union()
    measured = F.coalesce(P.outside_area(b.c.geom, pu.c.geom), F.ST_Area(b.c.geom))
    limit = rule.params["tolerance_m2"]
    evidence = F.coalesce(P.polygonal(F.ST_Difference(b.c.geom, pu.c.geom)), b.c.geom)
    cols = P.result(b.c.project_id, b.c.id, measured, limit,
                    P.outcome(ctx.covered(b.c.geom, "cadastre"), P.exceeds(measured, limit), rule.severity),
                    sa.case((P.exceeds(measured, 0), evidence), else_=P.no_geometry()),
                    P.jsonb(parcels=pu.c.codes))
    return sa.select(*cols).select_from(b.outerjoin(pu, pu.c.project_id == b.c.project_id))


def parcel_use(rule: Rule, ctx: Context):
    """Footprint area on the project's parcels whose land use does not allow the building's use;
    a warning when a parcel's holder is not the applicant's organisation."""
    b = ctx.b
    f = P.feature_alias("f")
    bad = sa.not_(P.allowed(rule.params["allowed_land_use"], b.c.use, P.attr(f, "land_use")))
    piece = P.overlap_area(b.c.geom, f.geom)
    hit = (sa.select(F.coalesce(F.sum(sa.case((bad, piece), else_=0.0)), 0.0).label("area"),
                     F.coalesce(F.bool_or(P.attr(f, "holder") != Project.applicant_org), sa.false()).label("other"),
                     F.ST_Union(sa.case((bad, P.overlap(b.c.geom, f.geom)))).label("geom"),
                     F.jsonb_agg(F.jsonb_build_object("key", f.feature_key, "land_use", P.attr(f, "land_use"),
                                                      "holder", P.attr(f, "holder"))).label("parcels"))
           .select_from(project_parcels)
           .join(Parcel, Parcel.id == project_parcels.c.parcel_id)
           .join(Project, Project.id == project_parcels.c.project_id)
           .join(f, sa.and_(f.feature_key == Parcel.parcel_code, ctx.as_of(f, "cadastre")))
           .where(project_parcels.c.project_id == b.c.project_id, P.intersects(f.geom, b.c.geom))
           .lateral("hit"))
    limit = rule.params["tolerance_m2"]
    holder = rule.params.get("holder_mismatch", "warn")
    warn = hit.c.other if holder == "warn" else None
    broken = P.exceeds(hit.c.area, limit)
    if holder == "fail":
        broken = sa.or_(broken, hit.c.other)
    cols = P.result(b.c.project_id, b.c.id, hit.c.area, limit,
                    P.outcome(ctx.covered(b.c.geom, "cadastre"), broken, rule.severity, warn=warn,
                              missing=hit.c.parcels.is_(None)),
                    hit.c.geom, P.jsonb(parcels=hit.c.parcels, holder_differs=hit.c.other))
    return sa.select(*cols).select_from(b.join(hit, sa.true()))


def zoning_use(rule: Rule, ctx: Context):
    """Footprint area in zones whose GB 50137 use code does not allow the building's use."""
    b = ctx.b
    f = P.feature_alias("f")
    bad = sa.not_(P.allowed(rule.params["compatible"], b.c.use, P.attr(f, "use_code")))
    piece = P.overlap_area(b.c.geom, f.geom)
    hit = (sa.select(F.coalesce(F.sum(sa.case((bad, piece), else_=0.0)), 0.0).label("area"),
                     F.coalesce(F.sum(piece), 0.0).label("zoned"),
                     F.ST_Union(sa.case((bad, P.overlap(b.c.geom, f.geom)))).label("geom"),
                     F.jsonb_agg(F.jsonb_build_object("key", f.feature_key, "use_code", P.attr(f, "use_code")))
                     .label("zones"))
           .where(ctx.as_of(f, "zoning"), P.intersects(f.geom, b.c.geom)).lateral("hit"))
    limit = rule.params["tolerance_m2"]
    cols = P.result(b.c.project_id, b.c.id, hit.c.area, limit,
                    P.outcome(ctx.covered(b.c.geom, "zoning"), P.exceeds(hit.c.area, limit), rule.severity,
                              missing=hit.c.zoned <= limit),
                    hit.c.geom, P.jsonb(zones=hit.c.zones, use=b.c.use))
    return sa.select(*cols).select_from(b.join(hit, sa.true()))


def zoning_ratio(rule: Rule, ctx: Context):
    """A project-level ratio over its parcels (floor-area ratio, coverage, green ratio) against
    the zoning attribute of the zone covering most of the parcels."""
    b, pu = ctx.b, ctx.parcels_union()
    agg = (sa.select(b.c.project_id, F.sum(b.c.gfa_m2).label("gfa"), F.sum(F.ST_Area(b.c.geom)).label("footprint"))
           .group_by(b.c.project_id).subquery("agg"))
    pz = ctx.project_zone()
    zone = sa.select(pz.c.project_id, sa.cast(pz.c.attrs[rule.params["attribute"]].astext, sa.Float).label("limit"),
                     pz.c.key).subquery("zone")
    measure = rule.params["measure"]
    area = F.nullif(pu.c.area, 0)
    measured = {"far": agg.c.gfa / area, "coverage": agg.c.footprint / area, "green": sa.null()}[measure]
    broken = P.exceeds(measured, zone.c.limit) if rule.params["bound"] == "max" else P.short_of(measured, zone.c.limit)
    cols = P.result(agg.c.project_id, sa.null(), measured, zone.c.limit,
                    P.outcome(sa.and_(pu.c.geom.isnot(None), ctx.covered(pu.c.geom, "cadastre", "zoning")), broken,
                              rule.severity, missing=zone.c.limit.is_(None),
                              not_applicable=sa.true() if measure == "green" else None),
                    pu.c.geom, P.jsonb(zone=zone.c.key, gfa=agg.c.gfa, footprint=agg.c.footprint,
                                       parcel_area=pu.c.area, parcels=pu.c.codes))
    return (sa.select(*cols).select_from(agg.outerjoin(pu, pu.c.project_id == agg.c.project_id)
                                         .outerjoin(zone, zone.c.project_id == agg.c.project_id)))


def height_limit(rule: Rule, ctx: Context):
    """Building height against the lowest height limit of the zones it stands in."""
    b = ctx.b
    f = P.feature_alias("f")
    share = P.overlap_area(b.c.geom, f.geom) / F.nullif(F.ST_Area(b.c.geom), 0)
    hit = (sa.select(F.min(P.attr_float(f, "height_limit_m")).label("limit"),
                     F.jsonb_agg(f.feature_key).label("zones"))
           .where(ctx.as_of(f, "zoning"), P.intersects(f.geom, b.c.geom), share >= rule.params["min_share"])
           .lateral("hit"))
    cols = P.result(b.c.project_id, b.c.id, b.c.height_m, hit.c.limit,
                    P.outcome(ctx.covered(b.c.geom, "zoning"), P.exceeds(b.c.height_m, hit.c.limit), rule.severity,
                              missing=hit.c.limit.is_(None)),
                    sa.case((P.exceeds(b.c.height_m, hit.c.limit), b.c.geom), else_=P.no_geometry()),
                    P.jsonb(zones=hit.c.zones))
    return sa.select(*cols).select_from(b.join(hit, sa.true()))


def road_setback(rule: Rule, ctx: Context):
    """Distance to the nearest road red line against the setback its road class and the
    building's height require; the red line with the smallest margin decides."""
    b = ctx.b
    f = P.feature_alias("f")
    setbacks = rule.params["setbacks"]
    road_class = P.attr(f, "road_class")
    required = sa.case(*[(road_class == cls, P.tiered(b.c.height_m, tiers)) for cls, tiers in setbacks.items()],
                       else_=0.0)
    reach = max([t["setback_m"] for tiers in setbacks.values() for t in tiers]
                + [rule.params.get("search_distance_m", 0.0)])
    dist = P.distance(b.c.geom, f.geom)
    near = (sa.select(dist.label("dist"), required.label("required"), f.feature_key.label("key"),
                      road_class.label("road_class"), P.shortest_line(b.c.geom, f.geom).label("line"))
            .where(ctx.as_of(f, "road_redlines"), P.within_distance(f.geom, b.c.geom, reach))
            .order_by((dist - required).asc()).limit(1).lateral("near"))
    broken = P.short_of(near.c.dist, near.c.required)
    cols = P.result(b.c.project_id, b.c.id, near.c.dist, near.c.required,
                    P.outcome(ctx.covered(b.c.geom, "road_redlines"), broken, rule.severity),
                    near.c.line, P.jsonb(road=near.c.key, road_class=near.c.road_class, within_m=sa.literal(reach)))
    return sa.select(*cols).select_from(b.outerjoin(near, sa.true()))


def boundary_setback(rule: Rule, ctx: Context):
    """Distance from the footprint to the boundary of the project's parcels (0 when it crosses it)."""
    b, pu = ctx.b, ctx.parcels_union()
    edge = P.boundary(pu.c.geom)
    measured = sa.case((F.ST_Within(b.c.geom, pu.c.geom), P.distance(b.c.geom, edge)), else_=0.0)
    required = P.tiered(b.c.height_m, rule.params["tiers"])
    cols = P.result(b.c.project_id, b.c.id, measured, required,
                    P.outcome(ctx.covered(b.c.geom, "cadastre"), P.short_of(measured, required), rule.severity,
                              missing=pu.c.geom.is_(None)),
                    P.shortest_line(b.c.geom, edge), P.jsonb(parcels=pu.c.codes))
    return sa.select(*cols).select_from(b.outerjoin(pu, pu.c.project_id == b.c.project_id))


def nearest_distance(rule: Rule, ctx: Context):
    """Distance to the nearest feature of the layer (KNN through the GiST index) against a maximum."""
    b, name = ctx.b, rule.layers[0]
    f = P.feature_alias("f")
    label = rule.params.get("label_attribute")
    near = (sa.select(P.distance(b.c.geom, f.geom).label("dist"), f.feature_key.label("key"),
                      (P.attr(f, label) if label else f.feature_key).label("label"),
                      P.shortest_line(b.c.geom, f.geom).label("line"))
            .where(ctx.as_of(f, name)).order_by(P.nearest_first(f.geom, b.c.geom)).limit(1).lateral("near"))
    limit = rule.params["max_distance_m"]
    cols = P.result(b.c.project_id, b.c.id, near.c.dist, limit,
                    P.outcome(ctx.covered(b.c.geom, name), P.exceeds(near.c.dist, limit), rule.severity,
                              missing=near.c.dist.is_(None)),
                    near.c.line, P.jsonb(feature=near.c.key, name=near.c.label))
    return sa.select(*cols).select_from(b.outerjoin(near, sa.true()))


def fire_separation(rule: Rule, ctx: Context):
    """GB 50016 separation to existing buildings and to the project's other buildings; the
    neighbour with the smallest margin decides."""
    b, p = ctx.b, rule.params
    reach = max(p["high_high_m"], p["high_other_m"], p["other_other_m"], p.get("search_distance_m", 0.0))
    high_a = P.is_high_rise(b.c.height_m, b.c.use, p["high_rise_residential_above_m"], p["high_rise_other_above_m"])

    def nearest(geom, height, use, key, where, name):
        high_b = P.is_high_rise(height, use, p["high_rise_residential_above_m"], p["high_rise_other_above_m"])
        required = sa.case((sa.and_(high_a, high_b), p["high_high_m"]), (sa.or_(high_a, high_b), p["high_other_m"]),
                           else_=p["other_other_m"])
        dist = P.distance(b.c.geom, geom)
        return (sa.select(dist.label("dist"), required.label("required"), (dist - required).label("margin"),
                          key.label("key"), height.label("height"), P.shortest_line(b.c.geom, geom).label("line"))
                .where(*where, P.within_distance(geom, b.c.geom, reach))
                .order_by((dist - required).asc()).limit(1).lateral(name))

    f = P.feature_alias("f")
    ex = nearest(f.geom, P.attr_float(f, "height_m"), P.attr(f, "use"), f.feature_key,
                 [ctx.as_of(f, "existing_buildings")], "ex")
    b2 = sa.orm.aliased(Building, name="b2")
    own = nearest(b2.geom, b2.height_m, b2.use, b2.name, [b2.project_id == b.c.project_id, b2.id != b.c.id], "own")
    use_own = sa.and_(own.c.margin.isnot(None), sa.or_(ex.c.margin.is_(None), own.c.margin < ex.c.margin))

    def pick(column):
        return sa.case((use_own, own.c[column]), else_=ex.c[column])

    dist, required, line = pick("dist"), pick("required"), pick("line")
    cols = P.result(b.c.project_id, b.c.id, dist, required,
                    P.outcome(ctx.covered(b.c.geom, "existing_buildings"), P.short_of(dist, required),
                              rule.severity),
                    sa.case((F.ST_Length(line) > 0, line), else_=P.overlap(b.c.geom, F.ST_Buffer(line, 0.5))),
                    P.jsonb(neighbour=pick("key"), neighbour_height_m=pick("height"), within_m=sa.literal(reach),
                            high_rise=high_a, own_building=use_own))
    return sa.select(*cols).select_from(b.outerjoin(ex, sa.true()).outerjoin(own, sa.true()))


def project_overlap(rule: Rule, ctx: Context):
    """Overlap with buildings of other projects in flight (reported to both projects)."""
    b = ctx.b
    o = sa.orm.aliased(Building, name="o")
    op = sa.orm.aliased(Project, name="op")
    hit = (sa.select(F.coalesce(F.sum(P.overlap_area(b.c.geom, o.geom)), 0.0).label("area"),
                     F.ST_Union(P.overlap(b.c.geom, o.geom)).label("geom"),
                     F.jsonb_agg(F.jsonb_build_object("project_id", op.id, "code", op.code, "building", o.name))
                     .label("others"))
           .select_from(o).join(op, op.id == o.project_id)
           .where(P.intersects(o.geom, b.c.geom), o.project_id != b.c.project_id, op.status.in_(IN_FLIGHT))
           .lateral("hit"))
    limit = rule.params["max_overlap_m2"]
    cols = P.result(b.c.project_id, b.c.id, hit.c.area, limit,
                    P.outcome(sa.true(), P.exceeds(hit.c.area, limit), rule.severity),
                    hit.c.geom, P.jsonb(others=hit.c.others))
    return sa.select(*cols).select_from(b.join(hit, sa.true()))
