"""Helpers for the workflow tests: a fresh project with a building, made through the ORM."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Polygon

from gisapproval.models import SRID, Building, Parcel, Project, User

_seq = itertools.count(1)


def make_project(session, applicant="applicant1", *, buildings=1, green=False, name="测试项目"):
    user = session.scalar(sa.select(User).where(User.username == applicant))
    parcel = session.scalars(sa.select(Parcel).order_by(Parcel.id)).first()
    n = next(_seq)
    project = Project(code=f"WF-T-{n:04d}-{id(session) % 10000}", name=f"{name}{n}", name_en=f"Test project {n}",
                      applicant=user, applicant_org=user.organisation or "测试单位", is_green_channel=green,
                      status="draft", current_stage=1)
    project.parcels = [parcel]
    x, y = 437000.0, 2545000.0
    for i in range(buildings):
        poly = Polygon([(x + i * 50, y), (x + i * 50 + 20, y), (x + i * 50 + 20, y + 20), (x + i * 50, y + 20)])
        project.buildings.append(Building(name=f"{i + 1}#楼", height_m=30, floors=10, gfa_m2=4000, use="residential",
                                          geom=from_shape(MultiPolygon([poly]), srid=SRID)))
    session.add(project)
    session.flush()
    return project


def user(session, username):
    return session.scalar(sa.select(User).where(User.username == username))


@pytest.fixture()
def wf(session):
    class WF:
        s = session

        @staticmethod
        def project(**kw):
            return make_project(session, **kw)

        @staticmethod
        def user(name):
            return user(session, name)

    return WF


@pytest.fixture(scope="session")
def project_factory():
    """``make_project(session, applicant=..., buildings=..., green=...)`` for tests with their own sessions."""
    return make_project
