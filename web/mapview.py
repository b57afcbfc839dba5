"""The planners' map, built server-side with folium and embedded in our own page.

The city is drawn from vector tiles (``web.tiles``) by Leaflet.VectorGrid, vendored under
``/static/vendor/leaflet.vectorgrid``; folium only lays out the map and passes one JSON
configuration to ``static/js/map.js`` (tile URLs, colours, labels). Nothing is embedded per
parcel, so the page weighs the same for 3,000 or 300,000 parcels.

folium would load Leaflet, jQuery, Bootstrap and Font Awesome from CDNs; this map loads only
the vendored files. Popups are built by ``map.js`` from the JSON of ``/api/map/parcels/<id>``
with DOM text nodes (never innerHTML), so user-supplied values cannot become markup; the
configuration is serialised with Jinja's ``tojson`` (which escapes <, >, & and ').
"""

from __future__ import annotations

from dataclasses import dataclass

import folium
from folium.template import Template
from markupsafe import Markup

from gisapproval.mapdata import CATEGORIES
from gisapproval.tiles import TileSettings

from . import i18n
from .i18n import gettext as _

# Fill colours by display category (see the legend). Grey: no project.
CATEGORY_COLOURS = {
    "none": "#c9ced6",
    "draft": "#c7b8e0",
    "intake": "#7b3fa0",
    "in_review": "#1f6fd1",
    "in_correction": "#f08c00",
    "approved": "#2e9d44",
    "completed": "#1b6b30",
    "rejected": "#d62828",
}
# Days-left colours of a review task's clock (gisapproval.workflow.clock.Deadline.colour).
CLOCK_COLOURS = {"green": "#2e9d44", "yellow": "#e0a800", "red": "#d62828", "stopped": "#6c757d"}
OUTLINE_COLOUR = "#5b6573"
HIGHLIGHT_COLOUR = "#102a43"
OVERLAP_COLOUR = "#e8590c"
LAYER_COLOUR = "#3d5a80"

MESSAGES = {
    "map_layer_footprints": {"zh": "项目建筑轮廓", "en": "Project footprints"},
    "map_layer_cells": {"zh": "宗地密度（小比例尺）", "en": "Parcel density (small scales)"},
    "map_overlaps_title": {"zh": "在办项目轮廓重叠", "en": "In-flight projects overlapping"},
    "map_overlaps_none": {"zh": "无重叠", "en": "No overlaps"},
    "map_overlap_flag": {"zh": "与其他在办项目重叠", "en": "Overlaps another in-flight project"},
    "map_days_left": {"zh": "剩余工作日", "en": "Working days left"},
    "map_due_on": {"zh": "办理时限", "en": "Due on"},
    "map_departments": {"zh": "部门审查", "en": "Department reviews"},
    "map_stage_status": {"zh": "阶段状态", "en": "Stage status"},
    "map_no_project": {"zh": "该宗地无可见项目", "en": "No visible project on this parcel"},
    "map_loading": {"zh": "加载中…", "en": "Loading…"},
    "map_load_failed": {"zh": "详情加载失败", "en": "Could not load the details"},
    "map_zoom_hint": {"zh": "放大可见全部宗地", "en": "Zoom in to see every parcel"},
    "map_clock_green": {"zh": "正常", "en": "on time"},
    "map_legend_clock_yellow": {"zh": "黄框：审查临近时限", "en": "Yellow outline: review due soon"},
    "map_legend_clock_red": {"zh": "红框：审查已超时", "en": "Red outline: review overdue"},
    "map_clock_yellow": {"zh": "临近时限", "en": "due soon"},
    "map_clock_red": {"zh": "已超时", "en": "overdue"},
    "map_clock_stopped": {"zh": "计时暂停", "en": "clock stopped"},
    "map_task_pending": {"zh": "待审查", "en": "pending"},
    "map_task_in_review": {"zh": "审查中", "en": "in review"},
    "map_task_approved": {"zh": "同意", "en": "approved"},
    "map_task_approved_with_conditions": {"zh": "附条件同意", "en": "approved with conditions"},
    "map_task_correction_requested": {"zh": "要求补正", "en": "correction requested"},
    "map_task_rejected": {"zh": "不同意", "en": "rejected"},
    "map_task_deemed_approved": {"zh": "超时默认同意", "en": "deemed approved"},
    "map_stage_intake": {"zh": "待受理", "en": "awaiting intake"},
    "map_stage_in_review": {"zh": "审查中", "en": "in review"},
    "map_stage_in_correction": {"zh": "补正中", "en": "in correction"},
    "map_stage_approved": {"zh": "已批准", "en": "approved"},
    "map_stage_rejected": {"zh": "不予许可", "en": "rejected"},
}
i18n.register(MESSAGES)

POPUP_LABELS = ("field_parcel_code", "field_holder", "field_land_use", "field_area", "field_project",
                "field_project_code", "field_applicant_org", "field_stage", "field_status", "map_stage_status",
                "map_days_left", "map_due_on", "map_departments", "map_no_project", "map_loading",
                "map_load_failed", "map_overlap_flag")


@dataclass(frozen=True)
class MapAssets:
    """Where the page loads its scripts and styles from (URLs on this site)."""

    leaflet_js: str
    leaflet_css: str
    vectorgrid_js: str
    map_js: str
    map_css: str


@dataclass(frozen=True)
class RenderedMap:
    """The three pieces of a folium page, to place into our own template."""

    header: Markup
    html: Markup
    script: Markup


class LocalMap(folium.Map):
    """A folium map whose only assets are the vendored files and our own map script."""

    def __init__(self, assets: MapAssets, **kwargs):
        super().__init__(**kwargs)
        # Instance attributes shadow folium's class-level CDN lists (JSCSSMixin reads self.default_*).
        self.default_js = [("leaflet", assets.leaflet_js), ("vectorgrid", assets.vectorgrid_js),
                           ("gismap", assets.map_js)]
        self.default_css = [("leaflet_css", assets.leaflet_css), ("gismap_css", assets.map_css)]


class TiledCity(folium.MacroElement):
    """Hands the map and its configuration to ``GisMap.init`` (static/js/map.js)."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "GisMap.init({{ this._parent.get_name() }}, {{ this.config|tojson }});"
        "{% endmacro %}"
    )

    def __init__(self, config: dict):
        super().__init__()
        self._name = "TiledCity"
        self.config = config


def map_config(*, tile_urls: dict, layers: list[dict], details_url: str, bounds: list | None,
               tiles: TileSettings, lang: str) -> dict:
    """Everything ``map.js`` needs, in the current language. ``layers``: [{name, title, url}]."""
    return {
        "lang": lang,
        "tiles": tile_urls,
        "layers": layers,
        "detailsUrl": details_url,
        "bounds": bounds,
        "minZoom": tiles.min_zoom,
        "maxZoom": tiles.max_zoom,
        "parcelMinZoom": tiles.parcel_min_zoom,
        "colours": CATEGORY_COLOURS,
        "clockColours": CLOCK_COLOURS,
        "style": {"outline": OUTLINE_COLOUR, "highlight": HIGHLIGHT_COLOUR, "overlap": OVERLAP_COLOUR,
                  "layer": LAYER_COLOUR},
        "labels": {
            "parcels": _("layer_parcels"), "footprints": _("map_layer_footprints"), "cells": _("map_layer_cells"),
            **{key: _(key) for key in POPUP_LABELS},
            **{f"status_{c}": _(f"status_{c}") for c in CATEGORIES},
            **{key: _(key) for key in i18n.MESSAGES if key.startswith(("stage_", "map_clock_", "map_task_",
                                                                       "map_stage_"))},
        },
        "attribution": "Leaflet",
    }


def build_map(config: dict, *, assets: MapAssets, center: tuple[float, float], zoom: int) -> RenderedMap:
    """The approval map: tiled parcels by status, footprints, every vector layer, a layer switcher."""
    m = LocalMap(assets, location=list(center), zoom_start=max(zoom, config["minZoom"]), tiles=None,
                 min_zoom=config["minZoom"], max_zoom=config["maxZoom"], zoom_snap=0.25, zoom_delta=0.5,
                 prefer_canvas=True)
    TiledCity(config).add_to(m)
    root = m.get_root()
    root.render()
    return RenderedMap(
        header=Markup(root.header.render()),
        html=Markup(root.html.render()),
        script=Markup(root.script.render()),
    )


def clock_legend() -> list[dict]:
    """Outline colours of in-flight projects whose review is due soon or overdue."""
    return [{"colour": colour, "hex": CLOCK_COLOURS[colour], "label": _("map_legend_clock_" + colour)}
            for colour in ("yellow", "red")]


def legend_entries(counts: dict[str, int], *, own_only: bool) -> list[dict]:
    """Legend rows (label, colour, count) in legend order. Staff never see drafts, so the draft
    row is shown to applicants (own_only) or when there are drafts on the map."""
    rows = []
    for category in CATEGORIES:
        if category == "draft" and not own_only and not counts.get("draft"):
            continue
        rows.append({"category": category, "label": _(f"status_{category}"), "colour": CATEGORY_COLOURS[category],
                     "count": counts.get(category, 0)})
    return rows
