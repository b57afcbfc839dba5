"""Deterministic generator of a sample Chinese urban district ("番禺示范区") for gisapproval.

The generator builds, from a fixed seed, a plausible district around 113.4°E 23.0°N in
EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM 114E, metres):

* a hierarchical, gently warped road grid (expressway / arterial / secondary / branch),
* blocks between the road red lines, subdivided into cadastral parcels (宗地),
* zoning units (控规地块) with GB 50137 land-use codes and planning indicators,
* existing buildings, permanent basic farmland, ecological red lines, geological hazard
  zones, heritage protection zones, fire stations and the jurisdiction boundary,
* a DEM and a maximum flood depth raster,
* (optionally) sample construction projects at various approval stages.

Everything is vectorised with numpy and shapely 2 so that the same code builds a city of
any size (``--parcels 200000`` runs in well under three minutes).

Usage::

    python -m sample_parcels.generate [--parcels N] [--seed S] [--out DIR] [--no-projects]

or ``from sample_parcels.generate import generate``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import shapely
from shapely import STRtree

EPSG = 4547
CRS = f"EPSG:{EPSG}"
CENTRE_LONLAT = (113.4, 23.0)
ADMIN_CODE = "440113"  # 广州市番禺区
DEFAULT_OUT = Path(__file__).resolve().parent / "data"
GPKG_NAME = "district.gpkg"
FIXED_GPKG_DATE = "2026-11-20T00:00:00.000Z"  # gpkg_contents.last_change, for byte-stable files

# Rough gross area (roads included) per parcel, used to size the district before calibration.
GROSS_M2_PER_PARCEL = 9500.0

ROAD_CLASSES = ("expressway", "arterial", "secondary", "branch")
ROAD_WIDTHS = np.array([60.0, 40.0, 30.0, 20.0])

USE_CODES = ("R1", "R2", "R3", "A1", "A2", "A3", "A5", "B1", "B2", "M1", "M2", "W1", "S4", "U1", "G1", "G2")
UI = {c: i for i, c in enumerate(USE_CODES)}
USE_NAMES = {
    "R1": "一类居住用地", "R2": "二类居住用地", "R3": "三类居住用地",
    "A1": "行政办公用地", "A2": "文化设施用地", "A3": "教育科研用地", "A5": "医疗卫生用地",
    "B1": "商业用地", "B2": "商务用地", "M1": "一类工业用地", "M2": "二类工业用地",
    "W1": "一类物流仓储用地", "S4": "交通场站用地", "U1": "供应设施用地",
    "G1": "公园绿地", "G2": "防护绿地",
}

# Block land-use weights (order of USE_CODES): residential fabric, industrial cluster, centre.
#                 R1    R2    R3    A1    A2    A3    A5    B1    B2    M1    M2    W1    S4    U1    G1    G2
_W_RES = np.array([.02, .60, .05, .01, .02, .06, .02, .07, .02, .02, .00, .00, .015, .01, .09, .00])
_W_IND = np.array([.00, .04, .03, .00, .00, .01, .00, .02, .06, .50, .14, .12, .03, .03, .02, .00])
_W_CEN = np.array([.00, .18, .00, .10, .06, .03, .04, .32, .20, .00, .00, .00, .01, .01, .05, .00])
_W_EXP = np.array([.00, .00, .00, .00, .00, .00, .00, .00, .00, .00, .00, .20, .20, .10, .00, .50])
_W_RIV = np.array([.00, .00, .00, .00, .00, .00, .00, .00, .00, .00, .00, .00, .00, .00, 1.0, .00])
_W_FRI = np.array([.10, .00, .60, .00, .00, .00, .00, .00, .00, .00, .30, .00, .00, .00, .00, .00])
_W_ROW2 = np.array([.00, .00, .00, .00, .00, .38, .12, .22, .00, .00, .00, .00, .05, .03, .20, .00])

# Target parcel size per use (m²).
_TARGET_AREA = np.array([5000, 8000, 3200, 7000, 6000, 12000, 9000, 4200, 6000, 11000, 11000, 15000,
                         8000, 6000, 20000, 15000], dtype=float)

# Zoning indicators per use: FAR range, coverage range, height limits, green ratio range.
_ZONE_PARAMS = {
    "R1": ((1.0, 1.5), (0.30, 0.35), (18, 24), (0.35, 0.35)),
    "R2": ((2.0, 3.5), (0.22, 0.30), (54, 80, 100), (0.30, 0.35)),
    "R3": ((1.2, 2.0), (0.35, 0.45), (24, 36), (0.20, 0.25)),
    "A1": ((1.5, 3.0), (0.30, 0.40), (36, 54, 80), (0.30, 0.35)),
    "A2": ((1.0, 2.0), (0.30, 0.40), (24, 36), (0.30, 0.35)),
    "A3": ((0.8, 1.5), (0.25, 0.35), (24,), (0.35, 0.35)),
    "A5": ((1.5, 2.5), (0.30, 0.40), (54, 80), (0.35, 0.35)),
    "B1": ((3.0, 6.0), (0.40, 0.60), (80, 100, 150), (0.20, 0.25)),
    "B2": ((2.5, 5.0), (0.35, 0.50), (80, 100, 150), (0.20, 0.25)),
    "M1": ((1.0, 2.0), (0.40, 0.60), (24, 36), (0.10, 0.15)),
    "M2": ((1.0, 1.6), (0.40, 0.55), (24,), (0.10, 0.15)),
    "W1": ((0.8, 1.5), (0.45, 0.60), (24,), (0.10, 0.10)),
    "S4": ((0.5, 1.0), (0.20, 0.40), (24,), (0.15, 0.20)),
    "U1": ((0.5, 1.2), (0.20, 0.40), (24,), (0.20, 0.30)),
    "G1": ((0.05, 0.10), (0.03, 0.05), (12,), (0.65, 0.70)),
    "G2": ((0.02, 0.05), (0.02, 0.03), (9,), (0.80, 0.80)),
}

# Existing-building templates per use: slot (u, v) m, footprint u range, v range, storey
# height, floors range, floors given as fractions of the height limit?, keep prob., use.
_BLD = {
    "R1": ((26, 30), (12, 16), (10, 14), 3.2, (2, 3), False, .85, "residential"),
    "R2": ((48, 52), (30, 42), (15, 20), 3.0, (.45, 1.0), True, .80, "residential"),
    "R3": ((18, 20), (10, 13), (10, 13), 3.0, (3, 7), False, .80, "residential"),
    "A1": ((60, 50), (35, 48), (18, 26), 3.6, (4, 12), False, .80, "public"),
    "A2": ((60, 60), (30, 45), (25, 35), 4.5, (2, 5), False, .70, "public"),
    "A3": ((70, 42), (45, 60), (14, 18), 3.9, (3, 5), False, .80, "public"),
    "A5": ((60, 60), (40, 50), (25, 32), 3.9, (5, 15), False, .80, "public"),
    "B1": ((55, 55), (35, 45), (30, 40), 4.0, (.3, 1.0), True, .80, "commercial"),
    "B2": ((55, 55), (30, 40), (30, 38), 4.0, (.4, 1.0), True, .80, "office"),
    "M1": ((80, 65), (50, 70), (30, 45), 5.0, (1, 4), False, .85, "industrial"),
    "M2": ((80, 65), (50, 70), (30, 45), 5.5, (1, 3), False, .85, "industrial"),
    "W1": ((100, 75), (70, 90), (40, 55), 7.5, (1, 2), False, .85, "warehouse"),
    "S4": ((60, 50), (25, 40), (15, 25), 4.5, (1, 3), False, .70, "public"),
    "U1": ((45, 40), (18, 30), (12, 20), 4.5, (1, 2), False, .70, "public"),
    "G1": ((140, 140), (15, 25), (10, 15), 4.0, (1, 2), False, .30, "public"),
}
_VACANT_P = {"R1": .35, "R2": .28, "R3": .10, "A1": .30, "A2": .30, "A3": .30, "A5": .30, "B1": .40,
             "B2": .45, "M1": .30, "M2": .25, "W1": .35, "S4": .40, "U1": .30, "G1": .70, "G2": 1.0}

TOWNSHIPS = [  # (name, suffix) — 番禺区的街道与镇
    ("市桥", "街道"), ("沙头", "街道"), ("东环", "街道"), ("桥南", "街道"), ("大石", "街道"),
    ("洛浦", "街道"), ("钟村", "街道"), ("大龙", "街道"), ("石壁", "街道"), ("沙湾", "街道"),
    ("小谷围", "街道"), ("南村", "镇"), ("新造", "镇"), ("化龙", "镇"), ("石楼", "镇"), ("石碁", "镇"),
]
_PLACE_CHARS = "东西南北新大石沙龙凤桥湾岗塘涌洲莲花禾田冈岭滘围江山溪坑村头边浦"
VILLAGES = ["沙墟", "黄编", "东涌", "西涌", "北联", "南联", "大罗", "官堂", "石岗", "蔡边", "陈边", "南浦",
            "草河", "龙岐", "谢村", "植村", "员岗", "坑头", "板桥", "罗边", "新水坑", "旧水坑", "傍江", "东乡",
            "西乡", "大稳", "小平", "塘步", "赤岗", "沙涌", "岳溪", "茭塘", "潭山", "紫坭", "三善", "古坝",
            "龙湾", "韦涌", "市头", "明经"]
ROAD_STEMS = ["市桥", "禺山", "清河", "繁华", "富华", "环城", "兴业", "光明", "德兴", "大北", "西丽", "东沙",
              "桥兴", "福德", "平康", "沙头", "环岛", "捷进", "易发", "丽江", "迎宾", "亚运", "汉溪", "南大",
              "石北", "钟屏", "明经", "华南", "金山", "长堤", "龙美", "蔡边", "长隆", "草河", "广场", "星河",
              "莲花", "思贤", "坑头", "涌口", "南浦", "鹤庄", "陈边", "石岗", "官涌", "屏山", "东怡", "西涌",
              "青云", "云星", "盛泰", "工业", "振兴", "番禺", "德胜", "兴泰", "大平", "傍江", "员岗", "沙溪"]
_ROAD_SUFFIX = {0: "快速路", 1: "大道", 2: "路", 3: "街"}
_ROAD_MODS = ["", "东", "西", "南", "北", "中", "新", "一", "二", "三", "四", "五", "六", "七", "八", "九"]
COMPANY_PREFIX = ["华南", "珠江", "粤海", "南粤", "岭南", "广信", "宏达", "兴业", "恒昌", "金穗", "禺山", "丽江",
                  "星河", "锦绣", "东湖", "汇景", "天安", "明珠", "新城", "顺景", "德兴", "富华", "嘉禾", "永盛",
                  "裕丰", "鸿运", "瑞丰", "祥和", "广裕", "泰丰", "昌盛", "和丰", "利达", "振华", "万利", "宝丰",
                  "福泰", "荣昌", "创兴", "亿达", "骏景", "名雅", "雅居", "海逸", "丰泽", "盛景", "尚德", "润和",
                  "沃德", "凯达", "信和", "鼎盛", "博雅", "金域", "中岭", "南沙", "沙湾", "石楼", "化龙", "大石"]
COMPANY_TRADE = {
    "R": ["置业", "房地产开发", "地产", "物业发展"],
    "B": ["商贸", "投资", "商业管理", "酒店管理", "实业"],
    "M": ["电子科技", "机械制造", "五金制品", "精密模具", "新材料", "智能科技", "纺织", "食品", "光电"],
    "W": ["物流", "仓储", "供应链管理", "冷链物流"],
}
GOV_HOLDERS = {
    "A1": ["广州市番禺区机关事务管理局", "广州市番禺区人民政府{town}办事处"],
    "A2": ["广州市番禺区文化广电旅游体育局", "广州市番禺区图书馆"],
    "A3": ["广州市番禺区教育局", "广州市番禺区{town}中心小学"],
    "A5": ["广州市番禺区卫生健康局", "广州市番禺区中心医院"],
    "S4": ["广州市番禺区交通运输局", "广州市番禺区公共汽车有限公司"],
    "U1": ["广东电网有限责任公司广州番禺供电局", "广州市番禺区水务局", "广州市番禺水务股份有限公司"],
    "G1": ["广州市番禺区林业和园林局", "广州市番禺区城市管理和综合执法局"],
    "G2": ["广州市番禺区林业和园林局"],
}
LAND_RESERVE = "广州市番禺区土地开发中心"
APPLICANTS = {"applicant1": "华南置业有限公司", "applicant2": "广州城建开发集团有限公司"}
HERITAGE_NAMES = ["余荫山房", "留耕堂", "南村邬氏大宗祠", "莲花山古采石场", "屈大均墓", "石楼善世堂",
                  "化龙潘氏宗祠", "大岭村两塘公祠", "钟村韩氏宗祠", "沙湾三稔厅", "植地庄抗日战场遗址",
                  "大石古楼", "新造戴氏宗祠", "石碁镇金山古寺"]


# ----------------------------------------------------------------------------- helpers

def _rng(seed: int, key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(key)])


def _waves(rng: np.random.Generator, n: int, lam_lo: float, lam_hi: float):
    """A smooth random field: sum of ``n`` plane waves, standard deviation ≈ 1."""
    ang = rng.uniform(0, 2 * np.pi, n)
    lam = rng.uniform(lam_lo, lam_hi, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    kx, ky = 2 * np.pi * np.cos(ang) / lam, 2 * np.pi * np.sin(ang) / lam
    norm = 1.0 / math.sqrt(n / 2.0)

    def field(x, y):
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        out = np.zeros(np.broadcast(x, y).shape)
        for i in range(n):
            out += np.sin(kx[i] * x + ky[i] * y + ph[i])
        return out * norm

    return field


def _within(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each group of size c, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def _bil(Q: np.ndarray, u, v) -> np.ndarray:
    """Bilinear map of unit square onto quads ``Q`` (..., 4, 2) ordered P00, P10, P11, P01."""
    u = np.asarray(u, dtype=float)[..., None]
    v = np.asarray(v, dtype=float)[..., None]
    return ((1 - u) * (1 - v) * Q[..., 0, :] + u * (1 - v) * Q[..., 1, :]
            + u * v * Q[..., 2, :] + (1 - u) * v * Q[..., 3, :])


def _poly_area(P: np.ndarray) -> np.ndarray:
    x = P[..., 0] - P[..., :1, 0]
    y = P[..., 1] - P[..., :1, 1]
    return 0.5 * np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y, axis=-1)


def _min_signed_dist(pts: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Min over points (n,k,2) and edges of CCW convex quads (n,4,2) of the inward distance."""
    a = quad
    e = np.roll(quad, -1, axis=1) - a
    L = np.hypot(e[..., 0], e[..., 1])
    px = pts[:, :, None, 0] - a[:, None, :, 0]
    py = pts[:, :, None, 1] - a[:, None, :, 1]
    d = (e[:, None, :, 0] * py - e[:, None, :, 1] * px) / L[:, None, :]
    return d.min(axis=(1, 2))


def _rects(c: np.ndarray, eu: np.ndarray, du: np.ndarray, dv: np.ndarray) -> np.ndarray:
    """CCW rectangles (n,4,2): centre c, unit axis eu, full sizes du (along eu) and dv."""
    ev = np.stack([-eu[:, 1], eu[:, 0]], axis=1)
    hu = (du / 2)[:, None] * eu
    hv = (dv / 2)[:, None] * ev
    return np.stack([c - hu - hv, c + hu - hv, c + hu + hv, c - hu + hv], axis=1)


def _closed(P: np.ndarray) -> np.ndarray:
    return np.concatenate([P, P[:, :1]], axis=1)


def _polys(P: np.ndarray) -> np.ndarray:
    return shapely.polygons(_closed(P))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.hypot(v[..., 0], v[..., 1])[..., None]


def _cat(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """Draw one category per row of a (n, k) weight matrix."""
    w = np.maximum(weights, 0)
    cum = np.cumsum(w, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(w))[:, None]
    return np.minimum((u > cum).sum(axis=1), w.shape[1] - 1)


def _group_rank(keys: np.ndarray) -> np.ndarray:
    """Rank (0-based) of each element inside its group of equal keys, in input order."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    first = np.r_[True, sk[1:] != sk[:-1]]
    grp_start = np.maximum.accumulate(np.where(first, np.arange(len(sk)), 0))
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(sk)) - grp_start
    return rank


def _make_valid_parts(geoms: np.ndarray, min_area: float = 1.0):
    """Explode to polygon parts, drop tiny slivers; returns (parts, source index)."""
    parts, idx = shapely.get_parts(geoms, return_index=True)
    keep = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) >= min_area)
    return parts[keep], idx[keep]


def _difference_tiled(geoms: np.ndarray, big, step: float = 1000.0) -> np.ndarray:
    """``shapely.difference(geoms, big)`` for many small geometries and one huge polygon.

    The huge polygon is cut into overlapping tiles, each small geometry is differenced with
    the one tile piece that contains its bounding box (much faster than the full overlay).
    """
    if len(geoms) == 0:
        return geoms
    b = shapely.bounds(geoms)
    ext = float(max((b[:, 2] - b[:, 0]).max(), (b[:, 3] - b[:, 1]).max()))
    size = step + ext + 10.0
    x0, y0 = shapely.bounds(big)[:2]
    kx = np.floor((b[:, 0] - x0) / step).astype(np.int64)
    ky = np.floor((b[:, 1] - y0) / step).astype(np.int64)
    keys, inv = np.unique(kx * 1_000_000 + ky, return_inverse=True)
    tx, ty = keys // 1_000_000, keys % 1_000_000
    boxes = shapely.box(x0 + tx * step - 5, y0 + ty * step - 5, x0 + tx * step + size, y0 + ty * step + size)
    pieces = shapely.intersection(big, boxes)
    return shapely.difference(geoms, pieces[inv])


# ----------------------------------------------------------------------------- frame

class _Frame:
    """Local planning frame: origin at the district centre, rotated grid, irregular blob."""

    def __init__(self, cx: float, cy: float, alpha: float, R0: float, rng: np.random.Generator):
        self.cx, self.cy, self.alpha, self.R0 = cx, cy, alpha, R0
        self.ca, self.sa = math.cos(alpha), math.sin(alpha)
        self.amp = np.array([0.10, 0.06, 0.03])
        self.k = np.array([2, 3, 5])
        self.ph = rng.uniform(0, 2 * np.pi, 3)

    def to_map(self, u, v):
        return self.cx + self.ca * u - self.sa * v, self.cy + self.sa * u + self.ca * v

    def to_local(self, x, y):
        dx, dy = np.asarray(x) - self.cx, np.asarray(y) - self.cy
        return self.ca * dx + self.sa * dy, -self.sa * dx + self.ca * dy

    def shape(self, theta):
        theta = np.asarray(theta, dtype=float)
        out = np.ones_like(theta)
        for a, k, p in zip(self.amp, self.k, self.ph):
            out = out + a * np.sin(k * theta + p)
        return out

    def rnorm(self, u, v):
        th = np.arctan2(v, u)
        return np.hypot(u, v) / (self.R0 * self.shape(th))

    def polar(self, theta, r):
        """Local coordinates of normalised radius r at angle theta."""
        rr = r * self.R0 * self.shape(theta)
        return rr * np.cos(theta), rr * np.sin(theta)

    def map_pts(self, uv: np.ndarray) -> np.ndarray:
        x, y = self.to_map(uv[..., 0], uv[..., 1])
        return np.stack([x, y], axis=-1)


# ----------------------------------------------------------------------------- terrain

class _River:
    def __init__(self, rng, beta, t0, width):
        self.beta, self.t0, self.width = beta, t0, width
        self.cb, self.sb = math.cos(beta), math.sin(beta)
        self.A = np.array([rng.uniform(180, 280), rng.uniform(60, 110)])
        self.lam = np.array([rng.uniform(4500, 6500), rng.uniform(1600, 2400)])
        self.ph = rng.uniform(0, 2 * np.pi, 2)
        self.wl_ph = rng.uniform(0, 2 * np.pi)

    def centre_t(self, s):
        t = self.t0 + np.zeros_like(s)
        dt_ = np.zeros_like(s)
        for A, lam, ph in zip(self.A, self.lam, self.ph):
            k = 2 * np.pi / lam
            t = t + A * np.sin(k * s + ph)
            dt_ = dt_ + A * k * np.cos(k * s + ph)
        return t, dt_

    def dist(self, u, v):
        s = u * self.cb + v * self.sb
        t = -u * self.sb + v * self.cb
        tc, m = self.centre_t(s)
        return np.abs(t - tc) / np.sqrt(1 + m * m), s

    def line_local(self, smax, step=20.0):
        s = np.arange(-smax, smax + step, step)
        t, _ = self.centre_t(s)
        return np.stack([s * self.cb - t * self.sb, s * self.sb + t * self.cb], axis=1)

    def water_level(self, s):
        return 3.85 + 0.2 * np.sin(2 * np.pi * s / 7000.0 + self.wl_ph)


class _Hill:
    def __init__(self, rng, cu, cv, radius, height, toward_centre):
        self.cu, self.cv, self.R, self.H = cu, cv, radius, height
        self.ph = rng.uniform(0, 2 * np.pi, 2)
        self.knolls = []  # (u, v, sigma, height)
        angs = [toward_centre + rng.uniform(-0.35, 0.35), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)]
        rhos = [rng.uniform(0.93, 1.0), rng.uniform(0.55, 0.8), rng.uniform(0.6, 0.85)]
        for a, rho in zip(angs, rhos):
            rr = rho * self.R * self.g(a)
            self.knolls.append((cu + rr * math.cos(a), cv + rr * math.sin(a),
                                rng.uniform(45, 52), rng.uniform(45, 50)))

    def g(self, phi):
        return 1 + 0.12 * np.sin(3 * np.asarray(phi) + self.ph[0]) + 0.06 * np.sin(5 * np.asarray(phi) + self.ph[1])

    def outline_local(self, rho=1.0, n=180):
        phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
        rr = rho * self.R * self.g(phi)
        return np.stack([self.cu + rr * np.cos(phi), self.cv + rr * np.sin(phi)], axis=1)

    def height(self, u, v):
        du, dv = u - self.cu, v - self.cv
        rho = np.hypot(du, dv) / (self.R * self.g(np.arctan2(dv, du)))
        z = self.H * np.exp(-1.6 * rho * rho)
        for ku, kv, sig, hk in self.knolls:
            z = z + hk * np.exp(-((u - ku) ** 2 + (v - kv) ** 2) / (2 * sig * sig))
        return z

    def extent(self):
        r = 3.2 * self.R * 1.2
        return self.cu - r, self.cv - r, self.cu + r, self.cv + r


class _Terrain:
    def __init__(self, rng, rivers, hills):
        self.base = _waves(rng, 5, 3000, 12000)
        self.rivers, self.hills = rivers, hills

    def evaluate(self, u, v, hills_window=None):
        """Elevation and flood depth at local coordinates (arrays of equal shape)."""
        z = 6.2 + 1.0 * self.base(u, v)
        vfs, ss = [], []
        for r in self.rivers:
            d, s = r.dist(u, v)
            vf = np.exp(-(d / 550.0) ** 2)
            z = z - (z - 2.4) * vf
            half = r.width / 2
            z = np.where(d < half, 2.0 + 0.4 * (d / half) ** 2, z)
            vfs.append(vf)
            ss.append(s)
        for h in self.hills:
            if hills_window is None:
                z = z + h.height(u, v)
            else:
                z = hills_window(z, h)
        depth = np.zeros_like(z)
        for r, vf, s in zip(self.rivers, vfs, ss):
            dr = np.where(vf > 0.02, r.water_level(s) - z, 0.0)
            depth = np.maximum(depth, dr)
        depth = np.where(depth < 0.05, 0.0, depth)
        return z, depth


# ----------------------------------------------------------------------------- road grid

def _axis_lines(rng: np.random.Generator, half: float, phase: int):
    """Hierarchical line positions along one axis: list of (pos, class)."""
    pos, ks = [rng.uniform(-150, 150)], [0]
    while pos[-1] < half + 1300:
        pos.append(pos[-1] + rng.uniform(850, 1200))
        ks.append(ks[-1] + 1)
    neg_p, neg_k = [], []
    p, k = pos[0], 0
    while p > -half - 1300:
        p -= rng.uniform(850, 1200)
        k -= 1
        neg_p.append(p)
        neg_k.append(k)
    art = list(zip(neg_p[::-1] + pos, neg_k[::-1] + ks))
    lines = []
    for (p1, k1), (p2, _) in zip(art[:-1], art[1:]):
        lines.append((p1, 0 if k1 % 5 == phase else 1))
        g = p2 - p1
        subs = [p1]
        if rng.random() < 0.92:
            s = p1 + g * (0.5 + rng.uniform(-0.08, 0.08))
            lines.append((s, 2))
            subs.append(s)
        subs.append(p2)
        for a, b in zip(subs[:-1], subs[1:]):
            h = b - a
            nb = int(round(h / 255.0)) - 1
            if nb >= 1 and rng.random() < 0.12:
                nb -= 1
            for t in range(1, nb + 1):
                lines.append((a + h * (t + rng.uniform(-0.1, 0.1)) / (nb + 1), 3))
    p_last, k_last = art[-1]
    lines.append((p_last, 0 if k_last % 5 == phase else 1))
    lines.sort()
    return np.array([l[0] for l in lines]), np.array([l[1] for l in lines], dtype=np.int64)


def _intersect(p, d, q, e):
    cross = d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0]
    w = q - p
    t = (w[..., 0] * e[..., 1] - w[..., 1] * e[..., 0]) / cross
    return p + t[..., None] * d


def _road_names(n: int, classes: np.ndarray, rng: np.random.Generator) -> list[str]:
    stems = list(ROAD_STEMS)
    order = rng.permutation(len(stems))
    names, used = [], set()
    j = 0
    for i in range(n):
        while True:
            stem = stems[order[j % len(stems)]]
            mod = _ROAD_MODS[(j // len(stems)) % len(_ROAD_MODS)]
            rep = j // (len(stems) * len(_ROAD_MODS))
            cand = f"{stem}{mod}{_ROAD_SUFFIX[int(classes[i])]}" + (f"{rep + 1}号" if rep else "")
            j += 1
            if cand not in used:
                used.add(cand)
                names.append(cand)
                break
    return names


# ----------------------------------------------------------------------------- names

def _township_names(k: int) -> list[tuple[str, str]]:
    out = list(TOWNSHIPS[:k])
    if len(out) >= k:
        return out
    chars = _PLACE_CHARS
    taken = {t[0] for t in out}
    pairs = [a + b for a in chars for b in chars if a != b]
    pairs = [pairs[i] for i in np.random.default_rng(0).permutation(len(pairs))]
    n = 0
    while len(out) < k:
        name = pairs[n % len(pairs)] + ("" if n < len(pairs) else chars[(n // len(pairs) - 1) % len(chars)])
        n += 1
        if name in taken:
            continue
        taken.add(name)
        out.append((name, "街道" if len(out) % 3 else "镇"))
    return out


def _village_name(i: int) -> str:
    base = VILLAGES[i % len(VILLAGES)]
    rep = i // len(VILLAGES)
    return base + ("" if rep == 0 else "一二三四五六七八九"[(rep - 1) % 9] + ("" if rep < 10 else str(rep))) + "村"


def _company_pool(rng: np.random.Generator, n: int) -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {}
    used: set[str] = set()
    for cat, trades in COMPANY_TRADE.items():
        names: list[str] = []
        tries = 0
        while len(names) < n and tries < n * 50:
            tries += 1
            pre = COMPANY_PREFIX[rng.integers(len(COMPANY_PREFIX))]
            trade = trades[rng.integers(len(trades))]
            city = ["", "", "", "广州", "广州市", "广东"][rng.integers(6)]
            r = rng.random()
            suffix = "有限公司" if r < 0.7 else ("股份有限公司" if r < 0.85 else "集团有限公司")
            name = f"{city}{pre}{trade}{suffix}"
            if name in used or name in APPLICANTS.values():
                continue
            used.add(name)
            names.append(name)
        pools[cat] = names
    return pools


# ----------------------------------------------------------------------------- dates

_HOLIDAYS = [("2026-01-01", "2026-01-03"), ("2026-02-15", "2026-02-23"), ("2026-04-04", "2026-04-06"),
             ("2026-05-01", "2026-05-05"), ("2026-06-19", "2026-06-21"), ("2026-09-25", "2026-09-27"),
             ("2026-10-01", "2026-10-08")]
TODAY = dt.date(2026, 11, 20)


def _working_days() -> list[dt.date]:
    hol = set()
    for a, b in _HOLIDAYS:
        d, e = dt.date.fromisoformat(a), dt.date.fromisoformat(b)
        while d <= e:
            hol.add(d)
            d += dt.timedelta(days=1)
    out, d = [], dt.date(2026, 1, 1)
    while d <= TODAY:
        if d.weekday() < 5 and d not in hol:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


# ----------------------------------------------------------------------------- main build

class _Log:
    def __init__(self, verbose: bool):
        self.verbose, self.t0, self.t = verbose, time.perf_counter(), time.perf_counter()

    def __call__(self, msg: str):
        if self.verbose:
            now = time.perf_counter()
            print(f"[{now - self.t0:7.2f}s +{now - self.t:6.2f}s] {msg}", file=sys.stderr, flush=True)
            self.t = now


def _centre() -> tuple[float, float]:
    from pyproj import Transformer

    tr = Transformer.from_crs(4326, EPSG, always_xy=True)
    x, y = tr.transform(*CENTRE_LONLAT)
    return float(round(x)), float(round(y))


def _build_city(n_parcels: int, seed: int, R0: float, log: _Log):
    """Road grid, blocks, rivers, hills and candidate parcels; selects exactly n parcels."""
    cx, cy = _centre()
    rng_frame = _rng(seed, 1)
    alpha = math.radians(rng_frame.uniform(-15, -6))
    fr = _Frame(cx, cy, alpha, R0, rng_frame)
    half = 1.32 * R0 * float(fr.shape(np.linspace(0, 2 * np.pi, 720)).max())

    # --- rivers and hills (local coordinates)
    rng_t = _rng(seed, 2)
    n_riv = max(1, int(round(R0 / 9000.0)))
    rivers = []
    for k in range(n_riv):
        if n_riv == 1:
            t0 = -0.42 * R0
        else:
            t0 = (-0.75 + 1.5 * k / (n_riv - 1)) * R0 + rng_t.uniform(-0.05, 0.05) * R0
        rivers.append(_River(rng_t, rng_t.uniform(-0.17, 0.17), t0, 160.0 if k == 0 else 120.0))
    n_hill = max(1, int(round(math.sqrt(n_parcels / 3200.0))))
    hills = []
    base_ang = rng_t.uniform(0.3, 1.3)
    for k in range(n_hill):
        radius = rng_t.uniform(700, 900)
        height = rng_t.uniform(98, 106)
        th = base_ang + 2 * np.pi * k / n_hill + rng_t.uniform(-0.2, 0.2)
        for _ in range(72):
            hu, hv = fr.polar(th, 1.03)
            hu, hv = float(hu), float(hv)
            if all(float(r.dist(np.array(hu), np.array(hv))[0]) > 1.9 * radius for r in rivers):
                break
            th += 2 * np.pi / 72
        hills.append(_Hill(rng_t, hu, hv, radius, height, math.atan2(-hv, -hu)))
    terrain = _Terrain(rng_t, rivers, hills)
    smax = half * 1.6
    river_lines = [shapely.linestrings(fr.map_pts(r.line_local(smax))) for r in rivers]
    corridors = np.array([shapely.buffer(l, r.width / 2 + 30.0, cap_style="flat", join_style="round")
                          for l, r in zip(river_lines, rivers)], dtype=object)
    hill_polys = np.array([shapely.polygons(_closed(fr.map_pts(h.outline_local())[None])[0]) for h in hills],
                          dtype=object)
    log(f"frame R0={R0:.0f} m, half-extent {half:.0f} m, {n_riv} river(s), {n_hill} hill(s)")

    # --- road grid
    rng_g = _rng(seed, 3)
    X, cls_x = _axis_lines(rng_g, half, 2)
    Y, cls_y = _axis_lines(rng_g, half, 3)
    nx, ny = len(X), len(Y)
    U0, V0 = np.meshgrid(X, Y, indexing="ij")
    fu, fv = _waves(rng_g, 6, 4000, 12000), _waves(rng_g, 6, 4000, 12000)
    du = 85.0 * fu(U0, V0)
    dv = 85.0 * fv(U0, V0)
    amp = np.array([3.0, 6.0, 9.0, 14.0])
    a_x = amp[cls_x] * rng_g.uniform(0.3, 1.0, nx)
    l_x = rng_g.uniform(1500, 4000, nx)
    p_x = rng_g.uniform(0, 2 * np.pi, nx)
    a_y = amp[cls_y] * rng_g.uniform(0.3, 1.0, ny)
    l_y = rng_g.uniform(1500, 4000, ny)
    p_y = rng_g.uniform(0, 2 * np.pi, ny)
    du += a_x[:, None] * np.sin(2 * np.pi * V0 / l_x[:, None] + p_x[:, None])
    dv += a_y[None, :] * np.sin(2 * np.pi * U0 / l_y[None, :] + p_y[None, :])
    Nu, Nv = U0 + du, V0 + dv
    nodes = np.stack(fr.to_map(Nu, Nv), axis=-1)  # (nx, ny, 2) map coordinates
    hw_x = ROAD_WIDTHS[cls_x] / 2
    hw_y = ROAD_WIDTHS[cls_y] / 2

    # --- blocks (i between vertical lines i, i+1; j between horizontal lines j, j+1)
    A = nodes[:-1, :-1]
    Bx = nodes[1:, :-1]
    Cc = nodes[1:, 1:]
    D = nodes[:-1, 1:]
    db = Bx - A
    nb_ = _unit(np.stack([-db[..., 1], db[..., 0]], -1))
    pb = A + hw_y[None, :-1, None] * nb_
    dt_ = Cc - D
    nt = _unit(np.stack([-dt_[..., 1], dt_[..., 0]], -1))
    pt = D - hw_y[None, 1:, None] * nt
    dl = D - A
    nl = _unit(np.stack([dl[..., 1], -dl[..., 0]], -1))
    pl = A + hw_x[:-1, None, None] * nl
    dr = Cc - Bx
    nr = _unit(np.stack([dr[..., 1], -dr[..., 0]], -1))
    pr = Bx - hw_x[1:, None, None] * nr
    Q = np.stack([_intersect(pb, db, pl, dl), _intersect(pb, db, pr, dr),
                  _intersect(pt, dt_, pr, dr), _intersect(pt, dt_, pl, dl)], axis=2)  # (nx-1, ny-1, 4, 2)
    bi, bj = np.meshgrid(np.arange(nx - 1), np.arange(ny - 1), indexing="ij")
    Q = Q.reshape(-1, 4, 2)
    bi, bj = bi.ravel(), bj.ravel()
    edges = np.roll(Q, -1, axis=1) - Q
    elen = np.hypot(edges[..., 0], edges[..., 1])
    crs_ = edges[:, :, 0] * np.roll(edges, -1, axis=1)[:, :, 1] - edges[:, :, 1] * np.roll(edges, -1, axis=1)[:, :, 0]
    barea = _poly_area(Q)
    cen = Q.mean(axis=1)
    cu_, cv_ = fr.to_local(cen[:, 0], cen[:, 1])
    rb = fr.rnorm(cu_, cv_)
    ok = (elen.min(axis=1) > 45) & (crs_.min(axis=1) > 0) & (barea > 3000) & (rb < 1.3)
    # blocks touching the hills (plus a margin) are left to nature
    hill_buf = shapely.buffer(hill_polys, 45.0)
    btree = STRtree(_polys(Q))
    hit = btree.query(hill_buf, predicate="intersects")[1]
    ok[hit] = False
    Q, bi, bj, barea, rb, cu_, cv_ = Q[ok], bi[ok], bj[ok], barea[ok], rb[ok], cu_[ok], cv_[ok]
    nB = len(Q)
    log(f"grid {nx}x{ny} lines, {nB} candidate blocks")

    # --- land use per block
    rng_u = _rng(seed, 4)
    dcen = np.hypot(cu_, cv_)
    cen_w = np.exp(-(dcen / 1100.0) ** 2)
    if R0 > 7000:  # sub-centres for large cities
        sp = 8000.0
        g = np.arange(-math.ceil(half / sp), math.ceil(half / sp) + 1) * sp
        su, sv = np.meshgrid(g, g)
        su = su.ravel() + rng_u.uniform(-1500, 1500, su.size)
        sv = sv.ravel() + rng_u.uniform(-1500, 1500, sv.size)
        far_ = np.hypot(su, sv) > 5000
        for a, b in zip(su[far_], sv[far_]):
            cen_w = np.maximum(cen_w, 0.8 * np.exp(-((cu_ - a) ** 2 + (cv_ - b) ** 2) / 900.0 ** 2))
    f_ind = _waves(rng_u, 5, 4000, 9000)(cu_, cv_)
    ind_w = 1 / (1 + np.exp(-(f_ind - 0.7) * 4)) * np.clip((dcen - 1200) / 800, 0, 1)
    res_w = np.clip(1 - ind_w - cen_w, 0, None)
    exp_adj = ((cls_x[bi] == 0) | (cls_x[bi + 1] == 0) | (cls_y[bj] == 0) | (cls_y[bj + 1] == 0)).astype(float)
    riv_d = np.full(nB, np.inf)
    for r in rivers:
        riv_d = np.minimum(riv_d, r.dist(cu_, cv_)[0])
    riv_adj = (riv_d < 320).astype(float)
    fringe = np.clip((rb - 0.85) / 0.15, 0, 1)
    W = (res_w[:, None] * _W_RES + ind_w[:, None] * _W_IND + cen_w[:, None] * _W_CEN
         + 0.35 * exp_adj[:, None] * _W_EXP + 0.3 * riv_adj[:, None] * _W_RIV + 0.3 * fringe[:, None] * _W_FRI)
    use_b = _cat(rng_u, W)

    # --- subdivision
    rng_s = _rng(seed, 5)
    Lu = 0.5 * (np.hypot(*(Q[:, 1] - Q[:, 0]).T) + np.hypot(*(Q[:, 2] - Q[:, 3]).T))
    Lv = 0.5 * (np.hypot(*(Q[:, 3] - Q[:, 0]).T) + np.hypot(*(Q[:, 2] - Q[:, 1]).T))
    swap = Lv > Lu
    Qs = np.where(swap[:, None, None], np.roll(Q, -1, axis=1), Q)  # long axis first
    short = np.minimum(Lu, Lv)
    long_ = np.maximum(Lu, Lv)
    tgt = _TARGET_AREA[use_b] * rng_s.lognormal(0, 0.18, nB)
    # rows of parcels parallel to the long side; parcels about 1.5 times as deep as wide
    rr_ = np.arange(1, 7)[None, :]
    aspect = short[:, None] ** 2 / (tgt[:, None] * rr_ ** 2)
    cost = np.abs(np.log(aspect / 1.3)) + np.where(short[:, None] / rr_ < 40, 99.0, 0.0)
    rows = (np.argmin(cost, axis=1) + 1).astype(np.int64)
    nrb = rows + 1
    rb_blk = np.repeat(np.arange(nB), nrb)
    rb_k = _within(nrb)
    rb_in = (rb_k > 0) & (rb_k < rows[rb_blk])
    rb_val = (rb_k + np.where(rb_in, rng_s.uniform(-0.08, 0.08, len(rb_k)), 0.0)) / rows[rb_blk]
    roff = np.cumsum(nrb) - nrb
    vmid = np.where(rows == 2, rb_val[np.minimum(roff + 1, len(rb_val) - 1)], 0.5)
    split = (rows == 2) & (rng_s.random(nB) < 0.18) & np.isin(
        use_b, [UI[c] for c in ("R1", "R2", "R3", "B1", "B2", "M1")])
    use2 = _cat(rng_s, np.broadcast_to(_W_ROW2, (nB, len(USE_CODES))).copy())
    # rows
    r_blk = np.repeat(np.arange(nB), rows)
    r_k = _within(rows)
    r_v0 = rb_val[roff[r_blk] + r_k]
    r_v1 = rb_val[roff[r_blk] + r_k + 1]
    r_tgt = tgt[r_blk]
    width_t = r_tgt / (short[r_blk] * (r_v1 - r_v0))
    r_nc = np.rint(long_[r_blk] / width_t * rng_s.lognormal(0, 0.1, len(r_blk)))
    r_area = barea[r_blk] * (r_v1 - r_v0)
    r_nc = np.clip(r_nc, np.ceil(r_area / 28000.0), np.maximum(1, np.floor(r_area / 2800.0)))
    r_nc = np.clip(r_nc, 1, 60).astype(np.int64)
    # column boundaries
    nbnd = r_nc + 1
    b_row = np.repeat(np.arange(len(r_blk)), nbnd)
    b_k = _within(nbnd)
    b_nc = r_nc[b_row]
    interior = (b_k > 0) & (b_k < b_nc)
    bot = (b_k + np.where(interior, rng_s.uniform(-0.18, 0.18, len(b_k)), 0.0)) / b_nc
    slant = np.where(interior & (rng_s.random(len(b_k)) < 0.35), rng_s.uniform(-0.12, 0.12, len(b_k)) / b_nc, 0.0)
    top = bot + slant
    # parcels
    p_row = np.repeat(np.arange(len(r_blk)), r_nc)
    p_col = _within(r_nc)
    off = np.cumsum(nbnd) - nbnd
    i0 = off[p_row] + p_col
    p_blk = r_blk[p_row]
    p_rk = r_k[p_row]
    Qp = Qs[p_blk]
    v0, v1 = r_v0[p_row], r_v1[p_row]
    P = np.stack([_bil(Qp, bot[i0], v0), _bil(Qp, bot[i0 + 1], v0),
                  _bil(Qp, top[i0 + 1], v1), _bil(Qp, top[i0], v1)], axis=1)
    p_zone_part = np.where(split[p_blk], p_rk, 0)
    p_zuse = np.where(split[p_blk] & (p_rk == 1), use2[p_blk], use_b[p_blk])
    parea = _poly_area(P)
    good = (parea >= 1500) & (parea <= 40000)
    log(f"{len(P)} raw parcels ({(~good).sum()} outside 1500..40000 m² dropped)")
    P, p_blk, p_rk, p_col, p_zone_part, p_zuse, parea = (
        P[good], p_blk[good], p_rk[good], p_col[good], p_zone_part[good], p_zuse[good], parea[good])
    geoms = _polys(P)
    is_quad = np.ones(len(P), dtype=bool)

    # --- river corridors cut parcels
    ptree = STRtree(geoms)
    hit = np.unique(ptree.query(corridors, predicate="intersects")[1])
    corr_union = shapely.union_all(corridors)
    if len(hit):
        cut = _difference_tiled(geoms[hit], corr_union)
        parts, src = _make_valid_parts(cut, 1500.0)
        per = shapely.length(parts)
        compact = 4 * np.pi * shapely.area(parts) / (per * per)
        keep_p = compact > 0.18
        parts, src = parts[keep_p], hit[src[keep_p]]
        keep = np.ones(len(geoms), dtype=bool)
        keep[hit] = False
        def cat(a, b):
            return np.concatenate([a[keep], b])
        geoms = cat(geoms, parts)
        P = np.concatenate([P[keep], P[src]])  # quad of origin kept for reference only
        p_blk, p_rk, p_col = cat(p_blk, p_blk[src]), cat(p_rk, p_rk[src]), cat(p_col, p_col[src])
        p_zone_part, p_zuse = cat(p_zone_part, p_zone_part[src]), cat(p_zuse, p_zuse[src])
        is_quad = cat(is_quad, np.zeros(len(parts), dtype=bool))
        parea = cat(parea, shapely.area(parts))
    log(f"river corridors cut {len(hit)} parcels")

    # --- select exactly n parcels nearest the centre (in the blob metric)
    cxy = shapely.get_coordinates(shapely.centroid(geoms))
    pu, pv = fr.to_local(cxy[:, 0], cxy[:, 1])
    pr_ = fr.rnorm(pu, pv)
    if len(geoms) < n_parcels:
        return None, len(geoms), None
    order = np.argsort(pr_, kind="stable")[:n_parcels]
    order.sort()
    rN = float(pr_[order].max())
    city = dict(
        frame=fr, terrain=terrain, rivers=rivers, hills=hills, river_lines=river_lines, corridors=corridors,
        corr_union=corr_union, hill_polys=hill_polys, nodes=nodes, cls_x=cls_x, cls_y=cls_y, nx=nx, ny=ny,
        hw_x=hw_x, hw_y=hw_y, nodes_local=np.stack([Nu, Nv], axis=-1), Q=Q, Qs=Qs, bi=bi, bj=bj, use_b=use_b, split=split, use2=use2, vmid=vmid,
        rb=rb, half=half, rN=rN,
        P=P[order], geoms=geoms[order], p_blk=p_blk[order], p_rk=p_rk[order], p_col=p_col[order],
        p_zone_part=p_zone_part[order], p_zuse=p_zuse[order], is_quad=is_quad[order], parea=parea[order],
        p_r=pr_[order], p_u=pu[order], p_v=pv[order],
    )
    return city, len(geoms), rN


def _roads(city, seed):
    """Road centrelines (runs of segments bordering a developed block) and red-line polygons."""
    nx, ny, nodes = city["nx"], city["ny"], city["nodes"]
    cls_x, cls_y, hw_x, hw_y = city["cls_x"], city["cls_y"], city["hw_x"], city["hw_y"]
    sel = np.zeros((nx - 1, ny - 1), dtype=bool)
    blk = np.unique(city["p_blk"])
    sel[city["bi"][blk], city["bj"][blk]] = True
    pad = np.pad(sel, 1)
    # vertical line i, segment j: blocks (i-1, j) and (i, j)
    seg_v = pad[0:nx, 1:ny] | pad[1:nx + 1, 1:ny]  # (nx, ny-1)
    # horizontal line j, segment i: blocks (i, j-1) and (i, j)
    seg_h = pad[1:nx, 0:ny] | pad[1:nx, 1:ny + 1]  # (nx-1, ny)
    # no road runs along inside a river: drop segments parallel to a river and mostly in it
    NL = city["nodes_local"]
    for mask, a_, b_ in ((seg_v, NL[:, :-1], NL[:, 1:]), (seg_h, NL[:-1, :], NL[1:, :])):
        t_ = np.linspace(0.0, 1.0, 7)[:, None, None, None]
        pts = a_[None] + t_ * (b_ - a_)[None]  # (7, ., ., 2)
        d_ = _unit(b_ - a_)
        for r in city["rivers"]:
            dist, s_ = r.dist(pts[..., 0], pts[..., 1])
            inside = (dist < r.width / 2 + 30.0).mean(axis=0)
            _, m = r.centre_t(s_[3])
            tang = np.stack([r.cb - m * r.sb, r.sb + m * r.cb], axis=-1) / np.sqrt(1 + m * m)[..., None]
            par = np.abs((d_ * tang).sum(axis=-1)) > 0.6
            mask &= ~((inside >= 0.4) & par)
    rng = _rng(seed, 6)
    names_x = _road_names(nx, cls_x, rng)
    names_y = _road_names(ny, cls_y, rng)
    lines, attrs = [], []

    def runs(mask):
        m = np.r_[False, mask, False].astype(np.int8)
        d = np.diff(m)
        return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))

    def run_line(line_nodes, a, b, hw_cross):
        """Nodes a..b, extended at both ends across the crossing road, following the grid."""
        pts = line_nodes[a:b + 1]
        d0 = _unit(line_nodes[a - 1] - pts[0]) if a > 0 else _unit(pts[0] - pts[1])
        d1 = _unit(line_nodes[b + 1] - pts[-1]) if b + 1 < len(line_nodes) else _unit(pts[-1] - pts[-2])
        return np.concatenate([[pts[0] + d0 * hw_cross[a]], pts, [pts[-1] + d1 * hw_cross[b]]])

    for i in range(nx):
        for a, b in runs(seg_v[i]):  # nodes a..b on line i
            lines.append(run_line(nodes[i], a, b, hw_y))
            attrs.append((names_x[i], int(cls_x[i])))
    for j in range(ny):
        for a, b in runs(seg_h[:, j]):
            lines.append(run_line(nodes[:, j], a, b, hw_x))
            attrs.append((names_y[j], int(cls_y[j])))
    geoms = np.array([shapely.linestrings(p) for p in lines], dtype=object)
    rc = np.array([a[1] for a in attrs])
    width = ROAD_WIDTHS[rc]
    red = shapely.buffer(geoms, width / 2, cap_style="flat", join_style="mitre", mitre_limit=5.0)
    ids = np.array([f"RD{k + 1:05d}" for k in range(len(lines))], dtype=object)
    return dict(
        geom=geoms, red=red, road_id=ids, name=np.array([a[0] for a in attrs], dtype=object),
        road_class=np.array([ROAD_CLASSES[c] for c in rc], dtype=object), width_m=width,
    )


def generate(out_dir: str | Path = DEFAULT_OUT, parcels: int = 3200, seed: int = 20261123,
             projects: bool = True, verbose: bool = False) -> dict:
    """Generate the sample district into ``out_dir``; returns a summary dict."""
    log = _Log(verbose)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_parcels = int(parcels)
    if n_parcels < 50:
        raise ValueError("parcels must be at least 50")

    # ---------------------------------------------------------------- geometry core
    R0 = math.sqrt(n_parcels * GROSS_M2_PER_PARCEL / (math.pi * 1.00725))
    for _attempt in range(6):
        city, _, rN = _build_city(n_parcels, seed, R0, log)
        if city is not None and 0.9 <= rN <= 1.1:
            break
        # recalibrate the district size so that the urban edge sits near normalised radius 1
        if city is None:
            R0 *= 1.25
        else:
            R0 *= rN
        log(f"recalibrating: R0 -> {R0:.0f}")
    fr: _Frame = city["frame"]
    terrain: _Terrain = city["terrain"]
    geoms = city["geoms"]
    N = len(geoms)
    log(f"selected {N} parcels, urban edge at r={city['rN']:.3f}")

    roads = _roads(city, seed)
    log(f"{len(roads['geom'])} road features")

    # ---------------------------------------------------------------- zoning units
    rng_z = _rng(seed, 7)
    zkey = city["p_blk"] * 2 + city["p_zone_part"]
    ukeys, p_zone = np.unique(zkey, return_inverse=True)
    z_blk, z_part = ukeys // 2, ukeys % 2
    nZ = len(ukeys)
    split = city["split"][z_blk]
    Qs = city["Qs"][z_blk]
    vm = city["vmid"][z_blk]
    zq_v0 = np.where(split & (z_part == 1), vm, 0.0)
    zq_v1 = np.where(split & (z_part == 0), vm, 1.0)
    zero, one = np.zeros(nZ), np.ones(nZ)
    ZQ = np.stack([_bil(Qs, zero, zq_v0), _bil(Qs, one, zq_v0), _bil(Qs, one, zq_v1), _bil(Qs, zero, zq_v1)], 1)
    zgeom = _polys(ZQ)
    hit = np.unique(STRtree(zgeom).query(city["corridors"], predicate="intersects")[1])
    if len(hit):
        zgeom[hit] = _difference_tiled(zgeom[hit], city["corr_union"])
    z_use = np.where(split & (z_part == 1), city["use2"][z_blk], city["use_b"][z_blk])
    # management units: arterial cells
    art_x = np.cumsum(city["cls_x"] <= 1)
    art_y = np.cumsum(city["cls_y"] <= 1)
    zbi, zbj = city["bi"][z_blk], city["bj"][z_blk]
    cell_x, cell_y = art_x[zbi], art_y[zbj]
    cell_key = (-cell_y) * 100000 + cell_x
    ucell, z_unit = np.unique(cell_key, return_inverse=True)
    zorder_key = z_unit.astype(np.int64) * 10 ** 9 + (-zbj) * 10 ** 5 + zbi * 10 + z_part
    zsort = np.argsort(zorder_key, kind="stable")
    z_seq = np.empty(nZ, dtype=np.int64)
    z_seq[zsort] = _group_rank(z_unit[zsort]) + 1
    wu = max(2, len(str(len(ucell))))
    ws = max(2, len(str(int(z_seq.max()))))
    zone_code = np.array([f"ZS-{u + 1:0{wu}d}-{s:0{ws}d}" for u, s in zip(z_unit, z_seq)], dtype=object)
    z_far = np.zeros(nZ)
    z_cov = np.zeros(nZ)
    z_h = np.zeros(nZ)
    z_green = np.zeros(nZ)
    zr = fr.rnorm(*fr.to_local(*shapely.get_coordinates(shapely.centroid(zgeom)).T))
    for code, ((f0, f1), (c0, c1), hs, (g0, g1)) in _ZONE_PARAMS.items():
        m = z_use == UI[code]
        k = int(m.sum())
        if not k:
            continue
        step = 0.1 if f1 >= 0.5 else 0.01
        z_far[m] = np.round(np.round(rng_z.uniform(f0, f1, k) / step) * step, 2)
        z_cov[m] = np.round(rng_z.uniform(c0, c1, k), 2)
        hs_arr = np.array(hs, dtype=float)
        # taller limits toward the centre
        pick = np.clip((rng_z.random(k) * len(hs) * (1.3 - 0.6 * np.clip(zr[m], 0, 1))).astype(int), 0, len(hs) - 1)
        z_h[m] = hs_arr[pick]
        z_green[m] = np.round(rng_z.uniform(g0, g1, k), 2)
    zorder = np.argsort(zone_code, kind="stable")
    log(f"{nZ} zoning units")

    # ---------------------------------------------------------------- parcel attributes
    rng_p = _rng(seed, 8)
    zuse_p = z_use[p_zone]
    land_use = zuse_p.copy()
    mism = rng_p.random(N) < 0.03
    alt = _cat(rng_p, np.broadcast_to(_W_RES + 0.5 * _W_IND, (N, len(USE_CODES))).copy())
    mism &= alt != land_use
    land_use[mism] = alt[mism]
    # townships: Lloyd iterations on parcel centroids
    pts_xy = shapely.get_coordinates(shapely.centroid(geoms))
    K = int(min(999, max(4, round(N / 400))))
    seeds = pts_xy[rng_p.choice(N, K, replace=False)]
    ppts = shapely.points(pts_xy)
    for _ in range(5):
        near = STRtree(shapely.points(seeds)).query_nearest(ppts, return_distance=False, all_matches=False)[1]
        cnt = np.bincount(near, minlength=K)
        sx = np.bincount(near, pts_xy[:, 0], minlength=K)
        sy = np.bincount(near, pts_xy[:, 1], minlength=K)
        nz = cnt > 0
        seeds[nz] = np.stack([sx[nz] / cnt[nz], sy[nz] / cnt[nz]], 1)
    near = STRtree(shapely.points(seeds)).query_nearest(ppts, return_distance=False, all_matches=False)[1]
    # township numbering: nearest the centre first
    sd = np.hypot(seeds[:, 0] - fr.cx, seeds[:, 1] - fr.cy)
    trank = np.empty(K, dtype=np.int64)
    trank[np.argsort(sd, kind="stable")] = np.arange(K)
    town = trank[near]
    town_names = _township_names(K)
    # villages (地籍子区): arterial cells within a township
    pb = city["p_blk"]
    pcell = art_x[city["bi"][pb]] * 10000 + art_y[city["bj"][pb]]
    tv_key = town.astype(np.int64) * 10 ** 9 + pcell
    utv, tv_inv = np.unique(tv_key, return_inverse=True)
    vil_in_town = _group_rank(utv // 10 ** 9) + 1
    village = vil_in_town[tv_inv]
    # ownership type
    R3i, M1i, M2i, W1i = UI["R3"], UI["M1"], UI["M2"], UI["W1"]
    coll = ((land_use == R3i) & (rng_p.random(N) < 0.55)) | (
        np.isin(land_use, [M1i, M2i, W1i]) & (city["p_r"] > 0.8) & (rng_p.random(N) < 0.5))
    ptype = np.where(coll, np.where(land_use == R3i, "JC", "JA"), "GB")
    tcode = town * 10 ** 7 + village * 10 + np.select([ptype == "GB", ptype == "JA"], [0, 1], 2)
    # sequence by position (north-west first)
    pos_key = np.lexsort((pts_xy[:, 0], -pts_xy[:, 1], tcode))
    seq = np.empty(N, dtype=np.int64)
    seq[pos_key] = _group_rank(tcode[pos_key]) + 1
    parcel_code = np.array([f"{ADMIN_CODE}{t + 1:03d}{v:03d}{ty}{s:05d}"
                            for t, v, ty, s in zip(town, village, ptype, seq)], dtype=object)
    assert len(set(parcel_code.tolist())) == N
    log("parcel codes")

    # ---------------------------------------------------------------- rural features
    rng_r = _rng(seed, 9)
    rN = city["rN"]
    red_tree = STRtree(roads["red"])
    hill_polys = city["hill_polys"]
    excl = shapely.union_all(np.concatenate([city["corridors"], shapely.buffer(hill_polys, 30.0)]))
    n_groups = max(3, int(round(3 * math.sqrt(N / 3200.0))))
    farm_geoms = []
    hill_ang = [math.atan2(h.cv, h.cu) for h in city["hills"]]
    base = rng_r.uniform(0, 2 * np.pi)
    ptree0 = STRtree(geoms)
    hill_half = [(1.4 * h.R + 500.0) / math.hypot(h.cu, h.cv) for h in city["hills"]]
    for g in range(n_groups):
        th0 = base + 2 * np.pi * g / n_groups + rng_r.uniform(-0.25, 0.25) / math.sqrt(n_groups / 3)
        rad = rN * fr.R0 * float(fr.shape(th0))
        width = rng_r.uniform(1500, 2400) / rad
        th_c = th0
        for step in range(72):
            th_c = th0 + (step + 1) // 2 * (1 if step % 2 else -1) * np.pi / 180
            if all(abs((th_c - a + np.pi) % (2 * np.pi) - np.pi) > hh + width / 2 for a, hh in zip(hill_ang, hill_half)):
                break
        rad = rN * fr.R0 * float(fr.shape(th_c))
        n_plot = int(rng_r.integers(2, 4))
        edges_ = np.linspace(th_c - width / 2, th_c + width / 2, n_plot + 1)
        gap = 10.0 / rad
        ph1, ph2 = rng_r.uniform(0, 2 * np.pi, 2)
        plots = []
        for a, b in zip(edges_[:-1], edges_[1:]):
            th = np.linspace(a + gap, b - gap, 40)
            r_in = rN * (0.975 + 0.012 * np.sin(th * 40 + ph1))
            r_out = rN * (1.12 + 0.025 * np.sin(th * 23 + ph2))
            iu, iv = fr.polar(th, r_in)
            ou, ov = fr.polar(th[::-1], r_out[::-1])
            ring = np.concatenate([np.stack([iu, iv], 1), np.stack([ou, ov], 1)])
            plots.append(shapely.polygons(_closed(fr.map_pts(ring)[None]))[0])
        plots = np.array(plots, dtype=object)
        # the fields stop at the developed parcels, except for one or two (planning conflicts)
        hitp = np.unique(ptree0.query(plots, predicate="intersects")[1])
        keep_ov = np.zeros(0, dtype=np.int64)
        if len(hitp):
            ov = shapely.area(shapely.intersection(geoms[hitp], shapely.union_all(plots)))
            okp = np.flatnonzero((ov > 300) & (ov < 0.4 * shapely.area(geoms[hitp])))
            if len(okp):
                keep_ov = hitp[okp[np.argsort(-ov[okp], kind="stable")[: int(rng_r.integers(2, 4))]]]
        others = np.setdiff1d(hitp, keep_ov)
        near_r = red_tree.query(shapely.union_all(plots), predicate="intersects")
        sub = shapely.union_all(np.concatenate([roads["red"][near_r], geoms[others], [excl]]))
        kept = shapely.union_all(geoms[keep_ov]) if len(keep_ov) else None
        for poly in shapely.difference(plots, sub):
            for part in shapely.get_parts(poly):
                if part.area >= 30000 or (kept is not None and part.area >= 1500
                                          and shapely.area(shapely.intersection(part, kept)) > 100):
                    farm_geoms.append(part)
    farm_geoms = np.array(farm_geoms, dtype=object)
    farm_geoms, _ = _make_valid_parts(shapely.make_valid(farm_geoms), 1500.0)
    log(f"{len(farm_geoms)} farmland polygons")

    # hazard zones: around the steep knolls of each hill, plus soft-soil subsidence near rivers
    hz_geoms, hz_type, hz_risk = [], [], []
    for h in city["hills"]:
        for k, (ku, kv, sig, hk) in enumerate(h.knolls):
            th = np.linspace(0, 2 * np.pi, 48, endpoint=False)
            p1, p2 = rng_r.uniform(0, 2 * np.pi, 2)
            rr = 2.3 * sig * (1 + 0.15 * np.sin(3 * th + p1) + 0.08 * np.sin(5 * th + p2))
            ring = np.stack([ku + rr * np.cos(th), kv + rr * np.sin(th)], 1)
            hz_geoms.append(shapely.polygons(_closed(fr.map_pts(ring)[None]))[0])
            hz_type.append(["landslide", "collapse", "landslide"][k])
            hz_risk.append(["high", "medium", "low" if rng_r.random() < 0.5 else "medium"][k])
    n_sub = max(2, int(round(N / 2000.0)))
    rdist = np.full(N, np.inf)
    for r in city["rivers"]:
        rdist = np.minimum(rdist, r.dist(city["p_u"], city["p_v"])[0])
    cand = np.flatnonzero((rdist > 250) & (rdist < 700) & (city["p_r"] < 0.85))
    if len(cand) == 0:
        cand = np.flatnonzero(city["p_r"] < 0.85)
    chosen = []
    for c in rng_r.permutation(cand):
        if len(chosen) >= n_sub:
            break
        if all(np.hypot(*(pts_xy[c] - pts_xy[o])) > 1500 for o in chosen):
            chosen.append(int(c))
    for c in chosen:
        th = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        p1, p2 = rng_r.uniform(0, 2 * np.pi, 2)
        rr = rng_r.uniform(180, 320) * (1 + 0.18 * np.sin(2 * th + p1) + 0.08 * np.sin(5 * th + p2))
        ring = np.stack([pts_xy[c, 0] + rr * np.cos(th), pts_xy[c, 1] + rr * np.sin(th)], 1)
        hz_geoms.append(shapely.polygons(_closed(ring[None]))[0])
        hz_type.append("subsidence")
        hz_risk.append("medium" if rng_r.random() < 0.6 else "low")
    hz_geoms = np.array(hz_geoms, dtype=object)
    log(f"{len(hz_geoms)} hazard zones")

    # ---------------------------------------------------------------- vacancy, holders
    rng_v = _rng(seed, 10)
    vac_p = np.array([_VACANT_P[c] for c in USE_CODES])[land_use] + 0.2 * (city["p_r"] > 0.9)
    vacant = rng_v.random(N) < vac_p
    vacant |= ~city["is_quad"]
    ptree = STRtree(geoms)
    farm_hit = np.unique(ptree.query(farm_geoms, predicate="intersects")[1]) if len(farm_geoms) else np.array([], int)
    vacant[farm_hit] = True
    hz_hit = np.unique(ptree.query(hz_geoms, predicate="intersects")[1])

    pools = _company_pool(rng_v, min(max(60, N // 12), 800))
    zipf = rng_v.zipf(1.6, N)
    pick = rng_v.random(N)
    holder = np.empty(N, dtype=object)
    cat_of = {"R1": "R", "R2": "R", "R3": "R", "B1": "B", "B2": "B", "M1": "M", "M2": "M", "W1": "W"}
    village_names = {}
    for i in range(N):
        lu = USE_CODES[land_use[i]]
        tn = town_names[town[i]]
        if ptype[i] != "GB":
            key = (int(town[i]), int(village[i]))
            if key not in village_names:
                village_names[key] = _village_name(len(village_names))
            holder[i] = f"{tn[0]}{tn[1]}{village_names[key]}股份合作经济联社"
        elif lu in GOV_HOLDERS:
            opts = GOV_HOLDERS[lu]
            holder[i] = opts[int(zipf[i]) % len(opts)].format(town=tn[0] + tn[1])
        elif vacant[i] and zipf[i] % 5 < 2:
            holder[i] = LAND_RESERVE
        else:
            pool = pools[cat_of.get(lu, "B")]
            if zipf[i] <= 12 and zipf[i] % 3 == 0:  # a few big developers hold many parcels
                holder[i] = pool[int(zipf[i]) // 3 - 1]
            else:
                holder[i] = pool[int(pick[i] * len(pool))]
    log("holders")

    # ---------------------------------------------------------------- projects (choose parcels)
    def flood_at(xy):
        u, v = fr.to_local(xy[..., 0], xy[..., 1])
        return terrain.evaluate(np.asarray(u, float), np.asarray(v, float))[1]

    proj = None
    heritage_targets = []
    if projects:
        proj = _choose_projects(city, geoms, land_use, zuse_p, p_zone, vacant, farm_geoms, farm_hit, hz_hit,
                                z_far, z_h, z_cov, rdist, flood_at, _rng(seed, 11))
        for pr in proj:
            for i in pr["parcels"]:
                vacant[i] = True
                holder[i] = APPLICANTS[pr["applicant"]]
        heritage_targets = [pr for pr in proj if pr["issue"] == "heritage"]
        log(f"{len(proj)} projects placed")

    # ---------------------------------------------------------------- heritage zones
    rng_h = _rng(seed, 12)
    n_her = max(3, N // 1500)
    her_geoms, her_names = [], []
    proj_parcels = np.array(sorted({i for pr in (proj or []) for i in pr["parcels"]}), dtype=np.int64)
    proj_union = shapely.union_all(geoms[proj_parcels]) if len(proj_parcels) else None

    def blob(xc, yc, r, rng):
        th = np.linspace(0, 2 * np.pi, 36, endpoint=False)
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        rr = r * (1 + 0.15 * np.sin(2 * th + p1) + 0.07 * np.sin(5 * th + p2))
        ring = np.stack([xc + rr * np.cos(th), yc + rr * np.sin(th)], 1)
        return shapely.polygons(_closed(ring[None]))[0]

    for pr in heritage_targets:
        # a protection zone reaching into one corner of this project's parcel only
        quad = pr["quad"]
        c = quad.mean(axis=0)
        own = shapely.union_all(geoms[pr["parcels"]])
        others = (shapely.union_all(geoms[np.setdiff1d(proj_parcels, pr["parcels"])])
                  if len(proj_parcels) > len(pr["parcels"]) else None)
        g = None
        for radius in (65.0, 50.0, 40.0):
            for corner in quad[[3, 2, 1, 0]]:
                d = _unit(corner - c)
                cand_g = blob(*(corner + 25.0 * d), radius, rng_h)
                if others is None or not cand_g.intersects(others):
                    g = cand_g
                    break
            if g is not None:
                break
        if g is None:  # fall back to a small zone around the corner inside the parcel
            g = shapely.intersection(blob(*quad[3], 40.0, rng_h), own)
        her_geoms.append(g)
    hosts = np.flatnonzero(~vacant & city["is_quad"] & np.isin(land_use, [UI["R3"], UI["A2"], UI["R2"], UI["G1"]]))
    for c in rng_h.permutation(hosts):
        if len(her_geoms) >= n_her:
            break
        g = blob(*pts_xy[c], float(rng_h.uniform(35, 75)), rng_h)
        if proj_union is not None and g.intersects(proj_union):
            continue
        if any(g.distance(o) < 500 for o in her_geoms[-8:]):
            continue
        her_geoms.append(g)
    for k in range(len(her_geoms)):
        base_name = HERITAGE_NAMES[k % len(HERITAGE_NAMES)]
        rep = k // len(HERITAGE_NAMES)
        her_names.append(base_name if rep == 0 else f"{town_names[k % len(town_names)][0]}{base_name}（{rep + 1}）")
    her_geoms = np.array(her_geoms, dtype=object)
    log(f"{len(her_geoms)} heritage zones")

    # ---------------------------------------------------------------- existing buildings
    bld = _existing_buildings(city, geoms, land_use, p_zone, z_h, vacant, parcel_code, _rng(seed, 13))
    log(f"{len(bld['geom'])} existing buildings")

    # ---------------------------------------------------------------- jurisdiction, eco red lines
    rng_j = _rng(seed, 14)
    content = [geoms, roads["red"], farm_geoms, hill_polys, hz_geoms, her_geoms, zgeom]
    coords = np.concatenate([shapely.get_coordinates(np.asarray(c, dtype=object)) for c in content if len(c)])
    cu, cv = fr.to_local(coords[:, 0], coords[:, 1])
    th_c = np.arctan2(cv, cu)
    rr_c = fr.rnorm(cu, cv)
    nth = 720
    th = np.linspace(-np.pi, np.pi, nth, endpoint=False)
    p1, p2 = rng_j.uniform(0, 2 * np.pi, 2)
    wig = 1 + 0.02 * np.sin(7 * th + p1) + 0.012 * np.sin(13 * th + p2)
    # required radius per angular bin (max content radius nearby), smoothed
    bins = ((th_c + np.pi) / (2 * np.pi) * nth).astype(int) % nth
    need = np.zeros(nth)
    np.maximum.at(need, bins, rr_c)
    need = np.maximum(need, 1.12 * rN)
    for _ in range(2):
        need = np.maximum.reduce([np.roll(need, s) for s in range(-6, 7)])
    kj = need * 1.03 / wig
    kj = np.convolve(np.r_[kj[-8:], kj, kj[:8]], np.ones(9) / 9, mode="same")[8:-8]
    kj = np.maximum(kj, need * 1.02 / wig)
    ju, jv = fr.polar(th, kj * wig)
    jur = shapely.polygons(_closed(fr.map_pts(np.stack([ju, jv], 1))[None]))[0]
    assert jur.is_valid
    eco_geoms = list(hill_polys) + list(shapely.intersection(city["corridors"], shapely.buffer(jur, -1.0)))
    n_h = len(hill_polys)
    eco_names = [("大夫山森林生态保护红线" if k == 0 else f"{town_names[k % len(town_names)][0]}山林生态保护红线")
                 for k in range(n_h)]
    eco_names += [("市桥水道湿地生态保护红线" if k == 0 else f"{ROAD_STEMS[k * 7 % len(ROAD_STEMS)]}河涌湿地生态保护红线")
                  for k in range(len(city["corridors"]))]
    eco_geoms = np.array(eco_geoms, dtype=object)
    log("jurisdiction and eco red lines")

    # ---------------------------------------------------------------- fire stations
    rng_f = _rng(seed, 15)
    area_km2 = jur.area / 1e6
    n_st = max(4, int(round(area_km2 / 7.0)))
    st = pts_xy[rng_f.choice(N, n_st, replace=False)].copy()
    for _ in range(8):
        near_s = STRtree(shapely.points(st)).query_nearest(ppts, return_distance=False, all_matches=False)[1]
        cnt = np.bincount(near_s, minlength=n_st)
        sx = np.bincount(near_s, pts_xy[:, 0], minlength=n_st)
        sy = np.bincount(near_s, pts_xy[:, 1], minlength=n_st)
        nz = cnt > 0
        st[nz] = np.stack([sx[nz] / cnt[nz], sy[nz] / cnt[nz]], 1)
    # snap to the nearest parcel centroid
    snap = STRtree(ppts).query_nearest(shapely.points(st), return_distance=False, all_matches=False)[1]
    snap = np.unique(snap)
    st_xy = pts_xy[snap]
    st_town = town[snap]
    sd = np.hypot(st_xy[:, 0] - fr.cx, st_xy[:, 1] - fr.cy)
    so = np.lexsort((st_xy[:, 0], sd))
    st_xy, st_town = st_xy[so], st_town[so]
    n_st = len(st_xy)
    st_class = np.where(rng_f.random(n_st) < 0.3, "small", "standard").astype(object)
    st_class[0] = "special"
    for k in range(8, n_st, 8):
        st_class[k] = "special"
    st_names, used_names = [], {}
    ordinals = "一二三四五六七八九十"
    for k in range(n_st):
        tn = town_names[st_town[k]][0]
        c = used_names.get(tn, 0)
        used_names[tn] = c + 1
        label = tn + ("特勤" if st_class[k] == "special" else "")
        if c:
            label += f"第{ordinals[c] if c < 10 else c + 1}"
        st_names.append(f"{label}消防站")
    log(f"{n_st} fire stations")

    # ---------------------------------------------------------------- validity
    for name, arr in [("parcels", geoms), ("buildings", bld["geom"]), ("zoning", zgeom),
                      ("road_redlines", roads["red"]), ("roads", roads["geom"]), ("farmland", farm_geoms),
                      ("eco_redline", eco_geoms), ("hazard_zones", hz_geoms), ("heritage_zones", her_geoms)]:
        bad = ~shapely.is_valid(np.asarray(arr, dtype=object))
        assert not bad.any(), f"{name}: {int(bad.sum())} invalid geometries"
        assert not shapely.is_empty(np.asarray(arr, dtype=object)).any(), f"{name}: empty geometries"
    assert shapely.contains(jur, shapely.points(st_xy)).all()

    # ---------------------------------------------------------------- write vector layers
    import pyogrio

    prev_date = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_GPKG_DATE})
    gpkg = out_dir / GPKG_NAME
    if gpkg.exists():
        gpkg.unlink()
    counts: dict[str, int] = {}

    def write(layer, geom, cols, gtype):
        import geopandas as gpd

        df = gpd.GeoDataFrame(cols, geometry=np.asarray(geom, dtype=object), crs=CRS)
        pyogrio.write_dataframe(df, gpkg, layer=layer, driver="GPKG", geometry_type=gtype,
                                promote_to_multi=gtype.startswith("Multi"))
        counts[layer] = len(df)

    try:
        o = np.argsort(parcel_code, kind="stable")
        write("parcels", geoms[o], {
            "parcel_code": parcel_code[o], "holder": holder[o],
            "land_use": np.array(USE_CODES, dtype=object)[land_use[o]],
            "area_m2": np.round(shapely.area(geoms[o]), 2)}, "MultiPolygon")
        write("buildings", bld["geom"], {k: bld[k] for k in ("building_id", "height_m", "floors", "use")}, "MultiPolygon")
        zo = zorder
        write("zoning", zgeom[zo], {
            "zone_code": zone_code[zo], "use_code": np.array(USE_CODES, dtype=object)[z_use[zo]],
            "use_name": np.array([USE_NAMES[c] for c in USE_CODES], dtype=object)[z_use[zo]],
            "max_far": z_far[zo], "max_coverage": z_cov[zo], "height_limit_m": z_h[zo],
            "min_green_ratio": z_green[zo]}, "MultiPolygon")
        road_cols = {k: roads[k] for k in ("road_id", "name", "road_class", "width_m")}
        write("roads", roads["geom"], road_cols, "LineString")
        write("road_redlines", roads["red"], road_cols, "MultiPolygon")
        write("farmland", farm_geoms, {
            "farmland_code": np.array([f"JBNT-{ADMIN_CODE}-{k + 1:04d}" for k in range(len(farm_geoms))], dtype=object),
            "area_m2": np.round(shapely.area(farm_geoms), 2)}, "MultiPolygon")
        write("eco_redline", eco_geoms, {
            "redline_code": np.array([f"STHX-{ADMIN_CODE}-{k + 1:03d}" for k in range(len(eco_geoms))], dtype=object),
            "name": np.array(eco_names, dtype=object)}, "MultiPolygon")
        write("hazard_zones", hz_geoms, {
            "zone_code": np.array([f"DZ-{ADMIN_CODE}-{k + 1:03d}" for k in range(len(hz_geoms))], dtype=object),
            "hazard_type": np.array(hz_type, dtype=object), "risk_level": np.array(hz_risk, dtype=object)},
              "MultiPolygon")
        write("fire_stations", shapely.points(st_xy), {
            "station_id": np.array([f"XFZ-{k + 1:03d}" for k in range(n_st)], dtype=object),
            "name": np.array(st_names, dtype=object), "station_class": st_class}, "Point")
        write("heritage_zones", her_geoms, {
            "zone_code": np.array([f"WB-{ADMIN_CODE}-{k + 1:03d}" for k in range(len(her_geoms))], dtype=object),
            "name": np.array(her_names, dtype=object)}, "MultiPolygon")
        write("jurisdiction", np.array([jur], dtype=object), {
            "name": np.array(["番禺示范区"], dtype=object), "name_en": np.array(["Panyu sample district"], dtype=object)},
              "MultiPolygon")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": prev_date})
    log("GeoPackage written")

    # ---------------------------------------------------------------- rasters
    rinfo = _write_rasters(out_dir, fr, terrain, jur.bounds, log)

    # ---------------------------------------------------------------- projects.json
    files = {"district.gpkg": str(gpkg), "dem.tif": str(out_dir / "dem.tif"),
             "flood_depth.tif": str(out_dir / "flood_depth.tif")}
    n_proj = 0
    if projects:
        data = _projects_json(proj, parcel_code, town, town_names, _rng(seed, 16))
        pj = out_dir / "projects.json"
        pj.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        files["projects.json"] = str(pj)
        n_proj = len(data)
    elif (out_dir / "projects.json").exists():
        (out_dir / "projects.json").unlink()  # would not match this district
        log("projects.json written")

    return {
        "seed": int(seed), "parcels": int(N), "out_dir": str(out_dir), "crs": CRS,
        "layers": counts, "projects": n_proj, "files": files, "rasters": rinfo,
        "jurisdiction_area_km2": round(area_km2, 2),
        "jurisdiction_bounds": [round(b, 2) for b in jur.bounds],
    }


# ----------------------------------------------------------------------------- buildings

def _existing_buildings(city, geoms, land_use, p_zone, z_h, vacant, parcel_code, rng):
    P = city["P"]
    codes = [c for c in USE_CODES if c in _BLD]
    slot_u = np.zeros(len(USE_CODES))
    slot_v = np.zeros(len(USE_CODES))
    for c in codes:
        slot_u[UI[c]], slot_v[UI[c]] = _BLD[c][0]
    built = city["is_quad"] & ~vacant & (slot_u[land_use] > 0)
    idx = np.flatnonzero(built)
    Pq = P[idx]
    lu = land_use[idx]
    Lu = 0.5 * (np.hypot(*(Pq[:, 1] - Pq[:, 0]).T) + np.hypot(*(Pq[:, 2] - Pq[:, 3]).T))
    Lv = 0.5 * (np.hypot(*(Pq[:, 3] - Pq[:, 0]).T) + np.hypot(*(Pq[:, 2] - Pq[:, 1]).T))
    na = np.clip(np.floor(Lu / slot_u[lu]), 1, 12).astype(np.int64)
    nb = np.clip(np.floor(Lv / slot_v[lu]), 1, 10).astype(np.int64)
    ns = na * nb
    s_par = np.repeat(np.arange(len(idx)), ns)
    w = _within(ns)
    a = w % na[s_par]
    b = w // na[s_par]
    s_lu = lu[s_par]
    keep_p = np.array([_BLD[c][6] if c in _BLD else 0 for c in USE_CODES])[s_lu]
    keep = rng.random(len(s_par)) < keep_p
    s_par, a, b, s_lu = s_par[keep], a[keep], b[keep], s_lu[keep]
    NA, NB = na[s_par], nb[s_par]
    Q = Pq[s_par]
    u0, u1, v0, v1 = a / NA, (a + 1) / NA, b / NB, (b + 1) / NB
    uc, vc = (u0 + u1) / 2, (v0 + v1) / 2
    cell = np.stack([_bil(Q, u0, v0), _bil(Q, u1, v0), _bil(Q, u1, v1), _bil(Q, u0, v1)], axis=1)
    c = _bil(Q, uc, vc)
    eu_vec = _bil(Q, u1, vc) - _bil(Q, u0, vc)
    cu = np.hypot(eu_vec[:, 0], eu_vec[:, 1])
    cvv = _bil(Q, uc, v1) - _bil(Q, uc, v0)
    cv = np.hypot(cvv[:, 0], cvv[:, 1])
    eu = eu_vec / cu[:, None]
    du_lo = np.array([_BLD[c_][1][0] if c_ in _BLD else 0 for c_ in USE_CODES])[s_lu]
    du_hi = np.array([_BLD[c_][1][1] if c_ in _BLD else 0 for c_ in USE_CODES])[s_lu]
    dv_lo = np.array([_BLD[c_][2][0] if c_ in _BLD else 0 for c_ in USE_CODES])[s_lu]
    dv_hi = np.array([_BLD[c_][2][1] if c_ in _BLD else 0 for c_ in USE_CODES])[s_lu]
    du = rng.uniform(du_lo, du_hi)
    dv = rng.uniform(dv_lo, dv_hi)
    # residential slabs and teaching blocks face south: long side east-west
    ew = np.isin(s_lu, [UI["R1"], UI["R2"], UI["R3"], UI["A3"]]) & (np.abs(eu[:, 0]) < np.abs(eu[:, 1]))
    du, dv = np.where(ew, dv, du), np.where(ew, du, dv)
    du = np.minimum(du, cu - 7.0)
    dv = np.minimum(dv, cv - 7.0)
    ok = np.zeros(len(c), dtype=bool)
    R = _rects(c, eu, du, dv)
    for _ in range(4):
        R = _rects(c, eu, du, dv)
        ok = ((du >= 8) & (dv >= 8) & (_min_signed_dist(R, Q) >= 3.0) & (_min_signed_dist(R, cell) >= 3.0))
        if ok.all():
            break
        du = np.where(ok, du, du * 0.85)
        dv = np.where(ok, dv, dv * 0.85)
    R, s_par, s_lu = R[ok], s_par[ok], s_lu[ok]
    par = idx[s_par]
    # heights
    storey = np.array([_BLD[c_][3] if c_ in _BLD else 3.0 for c_ in USE_CODES])[s_lu]
    lo = np.array([_BLD[c_][4][0] if c_ in _BLD else 1 for c_ in USE_CODES])[s_lu]
    hi = np.array([_BLD[c_][4][1] if c_ in _BLD else 1 for c_ in USE_CODES])[s_lu]
    frac = np.array([_BLD[c_][5] if c_ in _BLD else False for c_ in USE_CODES])[s_lu]
    limit = z_h[p_zone[par]]
    fmax = np.maximum(1, np.floor(limit / storey))
    f_lo = np.where(frac, np.maximum(6, np.floor(lo * fmax)), lo)
    f_hi = np.where(frac, np.floor(hi * fmax), hi)
    f_hi = np.maximum(f_lo, f_hi)
    floors = np.floor(rng.uniform(f_lo, f_hi + 1)).astype(np.int64)
    floors = np.minimum(floors, np.maximum(fmax, 1).astype(np.int64))
    legacy = rng.random(len(floors)) < 0.02
    floors = np.where(legacy, floors + rng.integers(3, 10, len(floors)), floors)
    floors = np.maximum(floors, 1)
    height = np.round(floors * storey, 1)
    # ids: 不动产单元号 style (宗地代码 + F + 4-digit building no. + 0000)
    order = np.lexsort((np.arange(len(par)), parcel_code[par]))
    R, par, s_lu, floors, height = R[order], par[order], s_lu[order], floors[order], height[order]
    k = _group_rank(par) + 1
    bid = np.array([f"{pc}F{kk:04d}0000" for pc, kk in zip(parcel_code[par], k)], dtype=object)
    use = np.array([_BLD[c_][7] if c_ in _BLD else "public" for c_ in USE_CODES], dtype=object)[s_lu]
    return dict(geom=_polys(np.round(R, 2)), building_id=bid, height_m=height.astype(float),
                floors=floors.astype(np.int32), use=use)


# ----------------------------------------------------------------------------- rasters

def _write_rasters(out_dir: Path, fr: _Frame, terrain: _Terrain, bounds, log) -> dict:
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    minx, miny, maxx, maxy = bounds
    w_m, h_m = maxx - minx, maxy - miny
    res = 10.0
    while (w_m / res) * (h_m / res) > 11.5e6:
        res = {10.0: 20.0, 20.0: 25.0, 25.0: 50.0}.get(res, res * 2)
    x0 = math.floor(minx / res) * res
    y1 = math.ceil(maxy / res) * res
    width = int(math.ceil((maxx - x0) / res))
    height = int(math.ceil((y1 - miny) / res))
    transform = from_origin(x0, y1, res, res)
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32", crs=CRS,
                   transform=transform, nodata=-9999.0, compress="deflate", predictor=3, zlevel=6,
                   tiled=True, blockxsize=256, blockysize=256)
    dem_p, fl_p = out_dir / "dem.tif", out_dir / "flood_depth.tif"
    xs = x0 + (np.arange(width) + 0.5) * res
    zmin, zmax, dmax, smax = np.inf, -np.inf, 0.0, 0.0
    prev_last = None
    with rasterio.open(dem_p, "w", **profile) as dd, rasterio.open(fl_p, "w", **profile) as df:
        for r0 in range(0, height, 256):
            nr = min(256, height - r0)
            ys = y1 - (np.arange(r0, r0 + nr) + 0.5) * res
            X, Y = np.meshgrid(xs, ys)
            u, v = fr.to_local(X, Y)
            del X, Y

            def hills_window(z, h, u=u, v=v):
                e = h.extent()
                m = (u >= e[0]) & (u <= e[2]) & (v >= e[1]) & (v <= e[3])
                if m.any():
                    rows_, cols_ = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
                    sl = (slice(rows_[0], rows_[-1] + 1), slice(cols_[0], cols_[-1] + 1))
                    z = z.copy()
                    z[sl] += h.height(u[sl], v[sl])
                return z

            z, d = terrain.evaluate(u, v, hills_window)
            z = np.round(z, 2).astype(np.float32)
            d = np.round(d, 2).astype(np.float32)
            dd.write(z, 1, window=Window(0, r0, width, nr))
            df.write(d, 1, window=Window(0, r0, width, nr))
            zmin, zmax, dmax = min(zmin, float(z.min())), max(zmax, float(z.max())), max(dmax, float(d.max()))
            zz = z.astype(float) if prev_last is None else np.vstack([prev_last, z.astype(float)])
            gy, gx = np.gradient(zz, res)
            smax = max(smax, float(np.degrees(np.arctan(np.hypot(gx, gy).max()))))
            prev_last = z[-1:].astype(float)
    log(f"rasters {width}x{height} @ {res:g} m, DEM {zmin:.1f}..{zmax:.1f} m, max slope {smax:.1f}°, "
        f"max flood depth {dmax:.2f} m")
    return {"resolution_m": res, "width": width, "height": height, "dem_min_m": round(zmin, 2),
            "dem_max_m": round(zmax, 2), "max_slope_deg": round(smax, 1), "max_flood_depth_m": round(dmax, 2)}


# ----------------------------------------------------------------------------- projects

_PLAN = [  # (last stage, variant, deliberate issue, two parcels, green channel)
    (1, "intake", None, False, False),
    (1, "intake", None, True, False),
    (1, "review_recent", "outside", False, False),
    (1, "review_recent", "farmland", False, True),
    (1, "review_overdue", None, False, False),
    (1, "correction", "far", False, False),
    (1, "correction", None, True, False),
    (1, "rejected", None, False, False),
    (1, "approved", None, False, False),
    (1, "approved_conditions", None, False, False),
    (2, "intake", "heritage", False, False),
    (2, "review_recent", "too_tall", False, False),
    (2, "review_recent", None, True, True),
    (2, "review_overdue", None, False, False),
    (2, "correction", None, False, False),
    (2, "rejected", None, False, False),
    (2, "approved", None, False, False),
    (2, "approved_deemed", None, True, False),
    (2, "approved_conditions", None, False, False),
    (2, "review_recent", None, False, False),
    (3, "review_recent", "flood", False, False),
    (3, "review_recent", None, False, True),
    (3, "review_overdue", None, True, False),
    (3, "correction", None, False, False),
    (3, "rejected", None, False, False),
    (3, "approved", None, False, False),
    (3, "approved_deemed", None, False, False),
    (3, "approved_conditions", None, True, False),
    (3, "intake", None, False, False),
    (3, "review_recent", None, False, False),
    (4, "approved", None, False, False),
    (4, "approved", None, True, True),
    (4, "approved_deemed", None, False, False),
    (4, "approved_conditions", None, False, False),
    (4, "review_recent", None, False, False),
    (4, "review_recent", None, False, False),
    (4, "review_overdue", None, False, False),
    (4, "correction", None, False, False),
    (4, "rejected", None, False, False),
    (4, "intake", None, False, True),
    (4, "approved", None, False, False),
]
_USE_CYCLE = ["R2", "B1", "R2", "M1", "R2", "B2", "A3", "R2", "M1", "A5", "R2", "B1", "W1", "R2", "A2", "B2"]
_PROJECT_USES = ("R2", "B1", "B2", "M1", "A3", "A5", "W1", "A2")
# project design templates: footprint (u, v) m, storey height, buildings count range, name, use
_PDESIGN = {
    "R2": ((40, 18), 3.0, (3, 4), "{k}#楼", "residential"),
    "B1": ((46, 36), 4.5, (1, 2), "{k}#商业楼", "commercial"),
    "B2": ((38, 38), 4.0, (1, 2), "{k}#办公楼", "office"),
    "M1": ((60, 34), 6.0, (2, 3), "{k}#厂房", "industrial"),
    "W1": ((80, 44), 8.0, (1, 2), "{k}#仓库", "warehouse"),
    "A3": ((55, 17), 3.9, (2, 3), "{k}#教学楼", "public"),
    "A5": ((50, 28), 4.2, (1, 2), "{k}#医疗楼", "public"),
    "A2": ((48, 32), 4.5, (1, 2), "{k}#文化楼", "public"),
}


def _choose_projects(city, geoms, land_use, zuse_p, p_zone, vacant, farm_geoms, farm_hit, hz_hit,
                     z_far, z_h, z_cov, rdist, flood_at, rng):
    N = len(geoms)
    P = city["P"]
    area = shapely.area(geoms)
    fl_c = flood_at(city["P"].mean(axis=1))
    fl_v = flood_at(city["P"]).max(axis=1)
    is_quad = city["is_quad"]
    bad = np.zeros(N, dtype=bool)
    bad[farm_hit] = True
    bad[hz_hit] = True
    base_ok = vacant & is_quad & (land_use == zuse_p) & (area >= 4000) & (area <= 32000) & (city["p_r"] < 0.95)
    clean = base_ok & ~bad & (fl_c == 0) & (fl_v == 0) & (rdist > 900)
    use_ok = np.isin(land_use, [UI[c] for c in _PROJECT_USES])
    clean &= use_ok
    # for small cities: smaller parcels, closer to rivers and the urban edge
    relaxed = (vacant & is_quad & (land_use == zuse_p) & (area >= 2500) & ~bad & (fl_v == 0) & use_ok
               & (rdist > 400))
    # neighbour lookup: same block, same row, next column
    key = city["p_blk"].astype(np.int64) * 1000 + city["p_rk"] * 100 + city["p_col"]
    lookup = {int(k): i for i, k in enumerate(key)}
    used = np.zeros(N, dtype=bool)
    order = rng.permutation(N)
    plan_out = []

    def take(mask, want_use=None, two=False, pref=None):
        cand = order[mask[order] & ~used[order]]
        if pref is not None:
            cand = pref[mask[pref] & ~used[pref]]
        if want_use is not None:
            c2 = cand[land_use[cand] == UI[want_use]]
            if len(c2):
                cand = np.concatenate([c2, cand[land_use[cand] != UI[want_use]]])
        for i in cand:
            i = int(i)
            if two:
                j = lookup.get(int(key[i]) + 1)
                if j is None or used[j] or not mask[j] or p_zone[j] != p_zone[i]:
                    continue
                return [i, j]
            return [i]
        return None

    for k, (last, variant, issue, two, green) in enumerate(_PLAN):
        want = _USE_CYCLE[k % len(_USE_CYCLE)]
        sel = None
        if issue == "farmland" and len(farm_geoms):
            fu = shapely.union_all(farm_geoms)
            m = base_ok.copy()
            m[:] = False
            cand = np.asarray(farm_hit)
            cand = cand[vacant[cand] & is_quad[cand] & (area[cand] >= 3000) & ~used[cand]]
            if len(cand):
                ov = shapely.area(shapely.intersection(geoms[cand], fu))
                pref = cand[np.argsort(-ov, kind="stable")]
                m[pref] = True
                sel = take(m, pref=pref)
        elif issue == "flood":
            m = base_ok & ~bad & use_ok & (fl_c > 0.3)
            sel = take(m, want)
        elif issue == "far":
            m = clean & (land_use == UI["R2"]) & (z_h[p_zone] >= 80) & (z_far[p_zone] <= 3.0)
            sel = take(m)
        elif issue == "too_tall":
            m = clean & np.isin(land_use, [UI["R2"], UI["B1"], UI["B2"]]) & (z_h[p_zone] <= 100)
            sel = take(m)
        if sel is None:
            sel = take(clean, want, two) or take(clean, want, False) or take(relaxed, want, False)
        if sel is None:
            continue
        for i in sel:
            used[i] = True
        if len(sel) == 2:
            a, b = P[sel[0]], P[sel[1]]
            quad = np.stack([a[0], b[1], b[2], a[3]])
        else:
            quad = P[sel[0]].copy()
        zi = int(p_zone[sel[0]])
        plan_out.append(dict(
            plan=k, last=last, variant=variant, issue=issue, green=green, parcels=sel, quad=quad,
            use=USE_CODES[land_use[sel[0]]], zone=zi, max_far=float(z_far[zi]), height_limit=float(z_h[zi]),
            max_cov=float(z_cov[zi]), area=float(sum(area[i] for i in sel)),
            applicant="applicant1" if k % 2 == 0 else "applicant2",
        ))
    for pr in plan_out:
        _design_project(pr, rng)
    return plan_out


def _design_project(pr, rng):
    use = pr["use"] if pr["use"] in _PDESIGN else "R2"
    (fu, fv), storey, (nlo, nhi), name_t, buse = _PDESIGN[use]
    quad = pr["quad"]
    Lu = 0.5 * (np.hypot(*(quad[1] - quad[0])) + np.hypot(*(quad[2] - quad[3])))
    Lv = 0.5 * (np.hypot(*(quad[3] - quad[0])) + np.hypot(*(quad[2] - quad[1])))
    nwant = int(rng.integers(nlo, nhi + 1))
    eu0 = quad[1] - quad[0]
    if use in ("R2", "A3"):  # long side east-west (south-facing)
        rot = abs(eu0[0]) < abs(eu0[1])
    else:
        rot = Lv > Lu * 1.15 and fu > fv
    len_u, len_v = (fv, fu) if rot else (fu, fv)
    na_ = max(1, min(nwant, int(Lu // (len_u + 16))))
    nb_ = max(1, min(int(math.ceil(nwant / na_)), int(Lv // (len_v + 18))))
    slots = [(a, b) for b in range(nb_) for a in range(na_)][:nwant]
    Q = quad[None]
    rects = []
    for a, b in slots:
        u0, u1, v0, v1 = a / na_, (a + 1) / na_, b / nb_, (b + 1) / nb_
        uc, vc = (u0 + u1) / 2, (v0 + v1) / 2
        cell = np.stack([_bil(Q, u0, v0), _bil(Q, u1, v0), _bil(Q, u1, v1), _bil(Q, u0, v1)], axis=1)
        c = _bil(Q, uc, vc)
        eu = _unit(_bil(Q, u1, vc) - _bil(Q, u0, vc))
        if rot:
            eu = np.stack([eu[:, 1], -eu[:, 0]], 1)
        du, dv = float(fu), float(fv)
        for _ in range(12):
            R = _rects(c, eu, np.array([du]), np.array([dv]))
            if _min_signed_dist(R, Q)[0] >= 8.0 and _min_signed_dist(R, cell)[0] >= 7.0:
                break
            du, dv = du * 0.9, dv * 0.93
        else:
            continue
        if du < 10 or dv < 8:
            continue
        rects.append(R[0])
    if not rects:  # odd parcel shape: one small building in the middle
        c = _bil(Q, 0.5, 0.5)
        eu = _unit(_bil(Q, 1.0, 0.5) - _bil(Q, 0.0, 0.5))
        du, dv = max(10.0, min(fu, Lu - 24.0)), max(8.0, min(fv, Lv - 24.0))
        rects.append(_rects(c, eu, np.array([du]), np.array([dv]))[0])
    rects = np.array(rects)
    # coverage cap
    fp = np.abs(_poly_area(rects))
    cov_cap = 0.85 * pr["max_cov"] * pr["area"]
    if fp.sum() > cov_cap:
        s = math.sqrt(cov_cap / fp.sum())
        cen = rects.mean(axis=1, keepdims=True)
        rects = cen + (rects - cen) * s
    if pr["issue"] == "outside":
        # push building 0 so that it sticks 2.5 m out of the parcel over its nearest edge
        R0_ = rects[0]
        e = np.roll(Q[0], -1, axis=0) - Q[0]
        L = np.hypot(e[:, 0], e[:, 1])
        dist = (e[None, :, 0] * (R0_[:, None, 1] - Q[0][None, :, 1])
                - e[None, :, 1] * (R0_[:, None, 0] - Q[0][None, :, 0])) / L[None]
        dmin = dist.min(axis=0)  # per edge
        k = int(np.argmin(dmin))
        inward = np.array([-e[k, 1], e[k, 0]]) / L[k]
        rects[0] = R0_ - inward * (dmin[k] + 2.5)
    rects = np.round(rects, 2)
    fp = np.abs(_poly_area(rects))
    limit = pr["height_limit"]
    fmax = max(1, int(math.floor(limit / storey)))
    target = rng.uniform(0.6, 0.88) * pr["max_far"] * pr["area"]
    if pr["issue"] == "far":
        target = 1.3 * pr["max_far"] * pr["area"]
    base_f = int(math.ceil(target / fp.sum()))
    floors = np.clip(base_f + rng.integers(-2, 3, len(fp)), 1, fmax)
    if pr["issue"] == "far":
        floors = np.clip(np.full(len(fp), base_f), 1, fmax)
        while (fp * floors).sum() < target and (floors < fmax).any():
            floors = np.minimum(floors + 1, fmax)
    else:
        while (fp * floors).sum() > 0.95 * pr["max_far"] * pr["area"] and floors.max() > 1:
            floors[np.argmax(floors)] -= 1
    if pr["issue"] == "too_tall":
        floors[0] = fmax + int(math.ceil(15.0 / storey))
        while (fp * floors).sum() > 0.9 * pr["max_far"] * pr["area"] and len(floors) > 1 and floors[1:].max() > 1:
            j = 1 + int(np.argmax(floors[1:]))
            floors[j] -= 1
        # a slimmer tower keeps the floor-area ratio within the limit: only the height is wrong
        allowed = 0.9 * pr["max_far"] * pr["area"] - float((fp[1:] * floors[1:]).sum())
        if fp[0] * floors[0] > allowed > 0:
            k = math.sqrt(allowed / (fp[0] * floors[0]))
            cen = rects[0].mean(axis=0)
            rects[0] = np.round(cen + (rects[0] - cen) * k, 2)
            fp = np.abs(_poly_area(rects))
    heights = np.round(floors * storey, 1)
    pr["buildings"] = [
        {"name": name_t.format(k=k + 1), "rect": rects[k], "height_m": float(heights[k]), "floors": int(floors[k]),
         "gfa_m2": float(round(fp[k] * floors[k], 1)), "use": buse}
        for k in range(len(rects))
    ]


_RES_NAMES = [("锦绣花园", "Jinxiu Garden"), ("丽江华庭", "Lijiang Court"), ("翠岭雅苑", "Cuiling Residence"),
              ("禺山名邸", "Yushan Mansion"), ("东湖尚府", "Donghu Residence"), ("星河湾畔", "Xinghe Bay"),
              ("南粤华府", "Nanyue Mansion"), ("珠江御景", "Pearl River View"), ("金穗雅居", "Jinsui Residence"),
              ("桥南新苑", "Qiaonan New Garden"), ("清河名苑", "Qinghe Garden"), ("书香雅园", "Shuxiang Garden")]
_OTHER_NAMES = {
    "B1": [("万象商业广场", "Wanxiang Plaza"), ("商业中心", "Commercial Centre"), ("购物中心", "Shopping Mall"),
           ("国际酒店", "International Hotel")],
    "B2": [("创新大厦", "Innovation Tower"), ("金融中心", "Financial Centre"), ("智汇商务园", "Zhihui Business Park")],
    "M1": [("智能制造产业园", "Smart Manufacturing Park"), ("电子科技厂房", "Electronics Factory"),
           ("新材料生产基地", "New Materials Production Base"), ("精密机械加工厂", "Precision Machinery Plant")],
    "W1": [("冷链物流中心", "Cold-chain Logistics Centre"), ("智慧仓储基地", "Smart Warehousing Base")],
    "A3": [("第二实验小学", "No. 2 Experimental Primary School"), ("外国语学校", "Foreign Languages School"),
           ("中学新校区", "Middle School New Campus")],
    "A5": [("社区卫生服务中心", "Community Health Centre"), ("中医院新院区", "TCM Hospital New Campus")],
    "A2": [("文化艺术中心", "Culture and Arts Centre"), ("图书馆分馆", "Library Branch")],
}
_PHASES = [("一期", "Phase I"), ("二期", "Phase II"), ("三期", "Phase III")]
_PINYIN = {"市桥": "Shiqiao", "沙头": "Shatou", "东环": "Donghuan", "桥南": "Qiaonan", "大石": "Dashi",
           "洛浦": "Luopu", "钟村": "Zhongcun", "大龙": "Dalong", "石壁": "Shibi", "沙湾": "Shawan",
           "小谷围": "Xiaoguwei", "南村": "Nancun", "新造": "Xinzao", "化龙": "Hualong", "石楼": "Shilou",
           "石碁": "Shiji"}
_LIMIT = {1: 10, 2: 15, 3: 7, 4: 12}
_DEPTS = {1: ["land", "planning"], 2: ["planning", "fire", "construction"], 3: ["construction", "fire"],
          4: ["planning", "land", "construction", "fire"]}
_OPINION_OK = {
    "land": ["经审查，项目用地符合国土空间总体规划，用地手续齐全，同意。", "用地权属清楚、界址明确，符合供地政策，同意。"],
    "planning": ["项目符合控制性详细规划及规划条件要求，总平面布局合理，同意。", "经审查，建设工程设计方案符合规划条件，同意。"],
    "construction": ["建设手续齐全，施工图设计文件审查合格，同意。", "符合建设工程施工许可条件，同意。"],
    "fire": ["消防设计符合《建筑设计防火规范》（GB 50016-2014，2018年版）要求，同意。", "消防车道、救援场地及消防设施设置满足规范要求，同意。"],
}
_OPINION_OK4 = {
    "land": "经土地核验，项目用地面积、界址与批准内容一致，同意。",
    "planning": "经现场核实，建设工程符合规划许可内容，规划条件核实合格。",
    "construction": "竣工验收资料齐全，工程质量符合要求，同意备案。",
    "fire": "经消防验收，消防设施功能正常，验收合格。",
}
_CONDITIONS = {
    "land": "须在动工前缴清土地出让价款并办理不动产权首次登记。",
    "planning": "须按批准的总平面图实施，建筑退让道路红线不少于8米，施工期间不得占用城市绿地。",
    "construction": "须落实扬尘污染防治及施工围蔽措施，开工前办理工程质量安全监督登记。",
    "fire": "须在竣工前完成消防设施检测，施工期间保持临时消防车道畅通。",
}
_REJECT = {
    "land": "经审查，申请用地范围与国有建设用地使用权出让合同约定界址不符，且部分用地尚未完成征收，不予通过。",
    "planning": "经审查，拟建建筑退让道路红线距离不足8米，且日照分析不满足大寒日2小时日照标准，不予通过。",
    "construction": "施工单位安全生产许可证已过期，项目不具备施工许可条件，不予通过。",
    "fire": "消防车道净宽不足4米且未形成环形消防车道，不满足《建筑设计防火规范》要求，不予通过。",
}
_CORR_ITEMS = {
    (1, "land"): ["缺少国有建设用地使用权出让合同复印件", "宗地界址点坐标成果表与出让合同不一致", "缺少建设项目用地预审意见"],
    (1, "planning"): ["缺少建设用地规划许可证申请表原件", "用地红线图比例尺不符合要求", "缺少项目立项（备案）证明文件"],
    (2, "planning"): ["总平面图未标注建筑退让道路红线距离", "缺少日照分析报告", "经济技术指标表与设计图纸不一致"],
    (2, "fire"): ["缺少消防设计专篇", "消防车登高操作场地布置图缺失"],
    (2, "construction"): ["缺少岩土工程勘察报告", "缺少施工图设计文件审查合格书"],
    (3, "construction"): ["缺少施工合同备案证明", "缺少工程质量安全监督登记手续", "农民工工资保证金缴纳凭证缺失"],
    (3, "fire"): ["缺少消防设计审查意见书", "施工现场消防平面布置图缺失"],
    (4, "planning"): ["缺少规划条件核实测量报告", "竣工总平面图与规划许可不一致"],
    (4, "land"): ["缺少土地核验测绘成果"],
    (4, "construction"): ["缺少工程竣工验收报告", "工程质量保修书未签署"],
    (4, "fire"): ["缺少消防设施检测报告", "缺少消防验收申请表"],
}


def _projects_json(proj, parcel_code, town, town_names, rng):
    WD = _working_days()
    T = len(WD) - 1
    def iso(i):
        return WD[i].isoformat()

    res_i = 0
    other_i: dict[str, int] = {}
    used_names: set[str] = set()
    out = []
    for pr in proj:
        k = pr["plan"]
        tn, tsuf = town_names[int(town[pr["parcels"][0]])]
        t_en = _PINYIN.get(tn, tn)
        use = pr["use"]
        while True:
            if use == "R2" or use not in _OTHER_NAMES:
                base, base_en = _RES_NAMES[res_i % len(_RES_NAMES)]
                ph, ph_en = _PHASES[(res_i // len(_RES_NAMES) + res_i) % len(_PHASES)]
                res_i += 1
                name, name_en = f"番禺区{tn}{tsuf}{base}{ph}", f"{base_en} {ph_en}"
            else:
                lst = _OTHER_NAMES[use]
                j = other_i.get(use, 0)
                other_i[use] = j + 1
                base, base_en = lst[j % len(lst)]
                name = f"番禺区{tn}{tsuf}{base}"
                name_en = f"{t_en} {base_en}"
                if j >= len(lst):
                    name += f"{_PHASES[(j // len(lst)) % 3][0]}"
                    name_en += f" {_PHASES[(j // len(lst)) % 3][1]}"
            if name not in used_names:
                used_names.add(name)
                break
        stages = _schedule(pr, T, iso, rng)
        buildings = []
        for b in pr["buildings"]:
            R = b["rect"]
            ring = np.concatenate([R, R[:1]])
            wkt = "POLYGON((" + ", ".join(f"{x:.2f} {y:.2f}" for x, y in ring) + "))"
            buildings.append({"name": b["name"], "footprint_wkt": wkt, "height_m": b["height_m"],
                              "floors": b["floors"], "gfa_m2": b["gfa_m2"], "use": b["use"]})
        out.append({
            "code": None, "name": name, "name_en": name_en, "applicant": pr["applicant"],
            "applicant_org": APPLICANTS[pr["applicant"]],
            "parcel_codes": [str(parcel_code[i]) for i in pr["parcels"]],
            "is_green_channel": bool(pr["green"]), "buildings": buildings, "stages": stages,
            "_sort": (stages[0]["received_on"], k),
        })
    out.sort(key=lambda p: p["_sort"])
    for n, p in enumerate(out):
        p["code"] = f"SP-2026-{n + 1:03d}"
        del p["_sort"]
    return out


def _schedule(pr, T, iso, rng):
    last, variant, green = pr["last"], pr["variant"], pr["green"]
    stages = {}

    def task(dept, status, decided, stage, extra=None):
        opinion = conditions = None
        if status == "approved":
            opinion = _OPINION_OK4[dept] if stage == 4 else _OPINION_OK[dept][int(rng.integers(2))]
        elif status == "approved_with_conditions":
            opinion = "原则同意，须落实以下条件。"
            conditions = _CONDITIONS[dept]
        elif status == "deemed_approved":
            opinion = f"该部门未在{_LIMIT[stage]}个工作日审查时限内出具意见，系统按超时默认同意处理。"
        elif status == "rejected":
            opinion = extra or _REJECT[dept]
        elif status == "correction_requested":
            opinion = "申报材料需补正：" + "；".join(extra) + "。请补正后重新提交。"
        return {"department": dept, "status": status, "decided_on": iso(decided) if decided is not None else None,
                "opinion": opinion, "conditions": conditions}

    def approved_tasks(stage, acc, deemed=False, conditions=False, end=None):
        depts = _DEPTS[stage]
        lim = _LIMIT[stage]
        dec = [acc + int(rng.integers(1, lim + 1)) for _ in depts]
        if end is not None:
            dec = [min(d, end) for d in dec]
        sts = ["approved"] * len(depts)
        if conditions:
            sts[int(rng.integers(len(depts)))] = "approved_with_conditions"
        if deemed:
            j = len(depts) - 1
            sts[j] = "deemed_approved"
            dec[j] = acc + lim
        return [task(d, s, x, stage) for d, s, x in zip(depts, sts, dec)], max(dec)

    # --- the last stage
    depts = _DEPTS[last]
    lim = _LIMIT[last]
    corr_items = None
    outcome = None
    if variant == "intake":
        rec = T - int(rng.integers(0, 4))
        acc = None
        tasks = [task(d, "pending", None, last) for d in depts]
        outcome = "intake"
    elif variant in ("review_recent", "review_overdue"):
        if variant == "review_recent":
            rec = T - int(rng.integers(3, 12))
            acc = rec if green else rec + 1
        else:
            acc = T - int(rng.integers(34, 48))
            rec = acc - (0 if green else 1)
        tasks = []
        pending = int(rng.integers(len(depts)))
        for j, d in enumerate(depts):
            if j == pending or rng.random() < 0.45:
                tasks.append(task(d, "in_review", None, last))
            else:
                tasks.append(task(d, "approved", min(T, acc + int(rng.integers(1, min(lim, T - acc) + 1))), last))
        outcome = "in_review"
    elif variant == "correction":
        rec = T - int(rng.integers(6, 22))
        acc = rec + 1
        tasks = []
        cj = int(rng.integers(len(depts)))
        if pr["issue"] == "far" and "planning" in depts:
            cj = depts.index("planning")
        for j, d in enumerate(depts):
            if j == cj:
                items = list(_CORR_ITEMS[(last, d)])
                if pr["issue"] == "far":
                    items = ["方案容积率超过控制性详细规划上限，须调整建设规模"] + items[:1]
                else:
                    items = items[: int(rng.integers(1, len(items) + 1))]
                corr_items = items
                tasks.append(task(d, "correction_requested", min(T, acc + int(rng.integers(1, 5))), last, items))
            elif rng.random() < 0.5:
                tasks.append(task(d, "approved", min(T, acc + int(rng.integers(1, 5))), last))
            else:
                tasks.append(task(d, "in_review", None, last))
        outcome = "in_correction"
    elif variant == "rejected":
        rec = T - int(rng.integers(14, 55))
        acc = rec + 1
        rj = int(rng.integers(len(depts)))
        tasks = []
        for j, d in enumerate(depts):
            dec = min(T, acc + int(rng.integers(2, lim + 1)))
            tasks.append(task(d, "rejected" if j == rj else "approved", dec, last))
        outcome = "rejected"
    else:  # approved variants
        span = 110 if last == 4 else 45
        rec = T - int(rng.integers(lim + 3, span))
        acc = rec if green else rec + 1
        tasks, _ = approved_tasks(last, acc, deemed=variant == "approved_deemed",
                                  conditions=variant == "approved_conditions", end=T)
        outcome = "approved"
    st = {"stage": last, "received_on": iso(rec), "accepted_on": iso(acc) if acc is not None else None,
          "outcome": outcome, "tasks": tasks}
    if corr_items is not None:
        st["correction_items"] = corr_items
    stages[last] = st
    # --- earlier stages, all approved, scheduled backwards
    nxt = rec
    # design work between stages takes weeks; keep the whole history inside 2026
    budget = rec - 3 - sum(_LIMIT[s] + 3 for s in range(1, last))
    for s in range(last - 1, 0, -1):
        gap = max(2, min(int(rng.integers(8, 30)), budget // s))
        budget -= gap
        lim_s = _LIMIT[s]
        end = nxt - gap
        acc_s = end - lim_s
        rec_s = acc_s if green else acc_s - int(rng.integers(1, 3))
        deemed = (pr["plan"] % 7 == 3 and s == 1)
        tasks, _ = approved_tasks(s, acc_s, deemed=deemed, conditions=rng.random() < 0.25, end=end)
        stages[s] = {"stage": s, "received_on": iso(rec_s), "accepted_on": iso(acc_s), "outcome": "approved",
                     "tasks": tasks}
        nxt = rec_s
    if nxt < 0:
        raise RuntimeError("project schedule starts before 2026")
    return [stages[s] for s in range(1, last + 1)]


# ----------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sample_parcels.generate", description=__doc__.split("\n")[0])
    ap.add_argument("--parcels", type=int, default=3200, help="number of cadastral parcels (default 3200)")
    ap.add_argument("--seed", type=int, default=20261123, help="random seed (default 20261123)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    ap.add_argument("--no-projects", action="store_true", help="do not write projects.json")
    ap.add_argument("--quiet", action="store_true", help="no progress messages")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    summary = generate(args.out, parcels=args.parcels, seed=args.seed, projects=not args.no_projects,
                       verbose=not args.quiet)
    wall = time.perf_counter() - t0
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    print(f"wall time: {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
