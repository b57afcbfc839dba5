"""The planners' map, built server-side with folium and embedded in our own page.

folium would load Leaflet, jQuery, Bootstrap and Font Awesome from CDNs; this map loads only
Leaflet, from ``/static/vendor/leaflet`` (see ``web.vendor_assets``), and uses none of the
folium features that need the others (marker icons, HTML popups via jQuery). No tiles: the
map is drawn on a plain background with an optional kilometre grid.

folium's GeoJsonTooltip/GeoJsonPopup put property values into the page as HTML, so every
string property is HTML-escaped here before folium sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

import folium
from folium.template import Template
from markupsafe import Markup, escape

from .i18n import MESSAGES, pick
from .i18n import gettext as _
from .mapdata import CATEGORIES

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
OUTLINE_COLOUR = "#5b6573"
HIGHLIGHT_COLOUR = "#102a43"

# What the tooltip (hover) and the popup (click) list, by message key ``field_<name>``...
TOOLTIP_FIELDS = ("parcel_code", "status", "project")
POPUP_FIELDS = ("parcel_code", "holder", "land_use", "area", "project_code", "project", "applicant_org",
                "stage", "status", "project_count")
# ...and the feature property holding each value, where the names differ.
FIELD_PROPERTY = {"status": "status_label", "project": "project_label", "area": "area_m2", "stage": "stage_label"}


@dataclass(frozen=True)
class MapAssets:
    """Where the page loads Leaflet from (URLs on this site)."""

    leaflet_js: str
    leaflet_css: str


@dataclass(frozen=True)
class RenderedMap:
    """The three pieces of a folium page, to place into our own template."""

    header: Markup
    html: Markup
    script: Markup


class LocalMap(folium.Map):
    """A folium map whose only assets are the vendored Leaflet files."""

    def __init__(self, assets: MapAssets, **kwargs):
        super().__init__(**kwargs)
        # Instance attributes shadow folium's class-level CDN lists (JSCSSMixin reads self.default_*).
        self.default_js = [("leaflet", assets.leaflet_js)]
        self.default_css = [("leaflet_css", assets.leaflet_css)]


class MapSetup(folium.MacroElement):
    """Plain-text attribution prefix (Leaflet's default links to leafletjs.com), a metric scale
    bar, and the initial view fitted to ``bounds`` without animation (so the first paint is final)."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "{{ this._parent.get_name() }}.attributionControl.setPrefix({{ this.prefix|tojson }});"
        "L.control.scale({imperial: false, position: 'bottomright'}).addTo({{ this._parent.get_name() }});"
        "{% if this.bounds %}"
        "{{ this._parent.get_name() }}.fitBounds({{ this.bounds|tojson }}, {animate: false, padding: [12, 12]});"
        "{% endif %}"
        "{% endmacro %}"
    )

    def __init__(self, prefix: str, bounds: list | None):
        super().__init__()
        self._name = "MapSetup"
        self.prefix = prefix
        self.bounds = bounds


def _status_style(feature: dict) -> dict:
    category = feature["properties"]["category"]
    plain = category == "none"
    return {
        "fillColor": CATEGORY_COLOURS[category],
        "color": OUTLINE_COLOUR if plain else CATEGORY_COLOURS[category],
        "weight": 0.5 if plain else 1.2,
        "fillOpacity": 0.45 if plain else 0.8,
    }


def _project_style(feature: dict) -> dict:
    category = feature["properties"]["category"]
    return {"fillColor": CATEGORY_COLOURS[category], "color": HIGHLIGHT_COLOUR, "weight": 2.5, "fillOpacity": 0.85}


def _highlight(feature: dict) -> dict:
    return {"color": HIGHLIGHT_COLOUR, "weight": 3}


def _grid_style(feature: dict) -> dict:
    return {"color": "#9fb3c8", "weight": 0.6, "opacity": 0.7, "dashArray": "4 4"}


def prepare_for_display(collection: dict) -> dict:
    """Add the labels of the current language and HTML-escape every string property, in place."""
    for feature in collection["features"]:
        props = feature["properties"]
        props["status_label"] = _(f"status_{props['category']}")
        stage_key = f"stage_{props.get('stage')}"
        props["stage_label"] = _(stage_key) if stage_key in MESSAGES else props.get("stage")
        props["project_label"] = pick(props.get("project_name"), props.get("project_name_en"))
        for key, value in props.items():
            if isinstance(value, str):
                props[key] = str(escape(value))
    return collection


def _details(kind: str, names: tuple[str, ...]):
    """A folium tooltip or popup listing ``names``; labels are escaped like the values."""
    keys = [FIELD_PROPERTY.get(name, name) for name in names]
    aliases = [str(escape(_(f"field_{name}"))) for name in names]
    if kind == "tooltip":
        return folium.GeoJsonTooltip(fields=keys, aliases=aliases, sticky=True, class_name="parcel-tip")
    return folium.GeoJsonPopup(fields=keys, aliases=aliases, class_name="parcel-popup", localize=False)


def build_map(parcels: dict, grid: dict | None, *, assets: MapAssets, center: tuple[float, float],
              zoom: int) -> RenderedMap:
    """The approval map: the grid, parcels by status, project parcels only, and a layer switcher.

    Each embedded FeatureCollection carries a foreign member ``layer`` ("grid", "parcels",
    "project_parcels") naming it, for tests and for scripts added later.

    ``parcels`` must have been through ``prepare_for_display``.
    """
    m = LocalMap(assets, location=list(center), zoom_start=zoom, tiles=None, min_zoom=9, max_zoom=20,
                 zoom_snap=0.25, zoom_delta=0.5)

    if grid is not None and grid["features"]:
        folium.GeoJson({**grid, "layer": "grid"}, name=_("layer_grid"), style_function=_grid_style,
                       interactive=False).add_to(m)

    folium.GeoJson(
        {**parcels, "layer": "parcels"},
        name=_("layer_parcels"),
        style_function=_status_style,
        highlight_function=_highlight,
        tooltip=_details("tooltip", TOOLTIP_FIELDS),
        popup=_details("popup", POPUP_FIELDS),
    ).add_to(m)

    project_parcels = {
        "type": "FeatureCollection",
        "layer": "project_parcels",
        "features": [f for f in parcels["features"] if f["properties"]["category"] != "none"],
    }
    if project_parcels["features"]:
        folium.GeoJson(
            project_parcels,
            name=_("layer_project_parcels"),
            style_function=_project_style,
            highlight_function=_highlight,
            tooltip=_details("tooltip", TOOLTIP_FIELDS),
            popup=_details("popup", POPUP_FIELDS),
            show=False,
        ).add_to(m)

    bbox = parcels.get("bbox")
    MapSetup("Leaflet", [[bbox[1], bbox[0]], [bbox[3], bbox[2]]] if bbox else None).add_to(m)

    folium.LayerControl(collapsed=False, position="topright").add_to(m)

    root = m.get_root()
    root.render()
    return RenderedMap(
        header=Markup(root.header.render()),
        html=Markup(root.html.render()),
        script=Markup(root.script.render()),
    )


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
