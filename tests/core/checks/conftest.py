"""A hand-built test site for the check rules: an empty corner of the jurisdiction, outside
the sample district, where each test places exactly the features it needs (in the test's
rolled-back transaction) so that a rule is measured on both sides of its limit."""

from __future__ import annotations

import itertools

import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import from_shape

from gisapproval.checks.engine import evaluate, resolve_layers
from gisapproval.checks.rules import default_rules
from gisapproval.models import (
    SRID,
    Building,
    Layer,
    LayerFeature,
    Parcel,
    Project,
    User,
)

# 2 km x 2 km in the jurisdiction's extent, away from the sample district
SITE = shapely.box(431000, 2536000, 433000, 2538000)
X0, Y0 = 431500.0, 2536500.0
_seq = itertools.count(1)


class World:
    def __init__(self, session):
        self.s = session
        self.layers = {l.name: l for l in session.scalars(sa.select(Layer))}
        assert not session.scalar(sa.select(sa.func.count()).select_from(LayerFeature).where(
            sa.func.ST_Intersects(LayerFeature.geom, sa.func.ST_GeomFromText(SITE.wkt, SRID)))), \
            "the test site must start empty"

    def cover(self, *names):
        """Extend the named layers' coverage (default: all) over the test site."""
        for name in names or list(self.layers):
            self.s.execute(sa.update(Layer).where(Layer.name == name).values(
                coverage=sa.func.ST_Multi(sa.func.ST_Union(Layer.coverage, sa.func.ST_GeomFromText(SITE.wkt, SRID)))))
        return self

    def number(self, layer: str) -> int:
        from gisapproval.models import LayerVersion

        return self.s.get(LayerVersion, self.layers[layer].current_version_id).number

    def feature(self, layer: str, geom, key: str | None = None, **attrs) -> LayerFeature:
        key = key or f"T{next(_seq):05d}"
        shape = from_shape(geom, srid=SRID)
        f = LayerFeature(layer_id=self.layers[layer].id, feature_key=key, valid_from=self.number(layer),
                         attrs={**attrs}, geom=shape,  # and the web-mercator copies an import computes
                         centre_web=sa.func.ST_Transform(sa.func.ST_SetSRID(sa.func.ST_MakePoint(
                             *shapely.centroid(shapely.box(*geom.bounds)).coords[0]), SRID), 3857),
                         geom_web=sa.func.ST_AsEWKB(sa.func.ST_Transform(shape, 3857)))
        self.s.add(f)
        self.s.flush()
        return f

    def parcel(self, geom, land_use="R2", holder="华南置业有限公司", code=None) -> Parcel:
        code = code or f"TP{next(_seq):06d}"
        geom = shapely.MultiPolygon([geom]) if geom.geom_type == "Polygon" else geom
        f = self.feature("cadastre", geom, code, parcel_code=code, holder=holder, land_use=land_use,
                         area_m2=geom.area)
        return self.s.get(Parcel, f.ident)  # the parcels view shows the cadastre's feature

    def user(self, name="applicant1") -> User:
        return self.s.scalar(sa.select(User).where(User.username == name))

    def project(self, parcels, applicant="applicant1", status="draft") -> Project:
        user = self.user(applicant)
        p = Project(code=f"T-{next(_seq):06d}", name="测试项目", applicant=user, applicant_org=user.organisation,
                    status=status, parcels=list(parcels))
        self.s.add(p)
        self.s.flush()
        return p

    def building(self, project, geom, height=18.0, floors=6, gfa=None, use="residential", name=None) -> Building:
        geom = shapely.MultiPolygon([geom]) if geom.geom_type == "Polygon" else geom
        b = Building(project_id=project.id, name=name or f"{next(_seq)}#", height_m=height, floors=floors,
                     gfa_m2=gfa if gfa is not None else geom.area * floors, use=use, geom=from_shape(geom, srid=SRID))
        self.s.add(b)
        self.s.flush()
        return b

    def check(self, project, *rule_ids, rules=None) -> dict:
        """Evaluate the named rules; returns {(rule_id, building_id): row}."""
        rules = rules or default_rules()
        chosen = {i: rules[i] for i in rule_ids}
        layers = resolve_layers(self.s, {n for r in rules.values() for n in r.layers})
        rows = evaluate(self.s, chosen, layers, [project.id])
        return {(r["rule_id"], r["building_id"]): r for r in rows}

    def one(self, project, rule_id, building=None, **kw) -> dict:
        rows = self.check(project, rule_id, **kw)
        return rows[(rule_id, building.id if building is not None else None)]


@pytest.fixture()
def world(session):
    return World(session)


def box(x, y, w, h):
    return shapely.box(x, y, x + w, y + h)
