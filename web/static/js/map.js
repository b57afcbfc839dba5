/* The planners' city map: vector tiles drawn by Leaflet.VectorGrid (vendored), popups from
 * /api/map/parcels/<id>. Every value from the server is put into the page as text
 * (textContent), never as HTML. Configuration comes from web/mapview.py (map_config). */
(function () {
  "use strict";

  // Leaflet.VectorGrid 1.3.0 calls L.DomEvent.fakeStop when a feature is clicked; Leaflet 1.8
  // removed it ("fakeStop is not a function"). What it did: keep the map from handling the same
  // click (which would close the popup just opened). Leaflet 1.9 marks such events _stopped.
  if (typeof L.DomEvent.fakeStop !== "function") {
    L.DomEvent.fakeStop = function (e) {
      e._stopped = true;
      L.DomEvent.stopPropagation(e);
    };
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function row(dl, label, value) {
    if (value === undefined || value === null || value === "") { return; }
    dl.appendChild(el("dt", null, label));
    dl.appendChild(el("dd", null, value));
  }

  function GisMapView(map, config) {
    this.map = map;
    this.config = config;
    this.labels = config.labels;
    this.state = {tilesLoaded: 0, popups: 0, errors: 0};
  }

  GisMapView.prototype.label = function (key, fallback) {
    var text = this.labels[key];
    return text === undefined ? fallback : text;
  };

  GisMapView.prototype.parcelStyle = function (props) {
    var c = this.config, category = props.category || "none", plain = category === "none";
    // an in-flight project's outline shows its days-left colour when due soon or overdue
    var clock = (props.clock === "red" || props.clock === "yellow") ? c.clockColours[props.clock] : null;
    return {
      fill: true, fillColor: c.colours[category] || c.colours.none, fillOpacity: plain ? 0.45 : 0.85,
      stroke: true, color: clock || (plain ? c.style.outline : c.colours[category]),
      weight: clock ? 3 : (plain ? 0.4 : 1.2)
    };
  };

  GisMapView.prototype.cellStyle = function (props) {
    var density = Math.min(0.15 + (props.parcels || 0) / 60, 0.75);
    return {fill: true, fillColor: this.config.colours.none, fillOpacity: density, stroke: false};
  };

  GisMapView.prototype.footprintStyle = function (props) {
    var c = this.config, overlapping = props.is_overlapping === true || props.is_overlapping === "true";
    return {
      fill: true, fillColor: c.colours[props.category] || c.colours.none, fillOpacity: 0.6,
      stroke: true, color: overlapping ? c.style.overlap : c.style.highlight, weight: overlapping ? 3 : 1.5,
      dashArray: overlapping ? "5 3" : null
    };
  };

  GisMapView.prototype.layerStyle = function () {
    var colour = this.config.style.layer;
    return {fill: true, fillColor: colour, fillOpacity: 0.12, stroke: true, color: colour, weight: 1, radius: 4};
  };

  GisMapView.prototype.tileLayer = function (url, styles, options) {
    var self = this;
    var layer = L.vectorGrid.protobuf(url, L.extend({
      rendererFactory: L.canvas.tile,
      vectorTileLayerStyles: styles,
      interactive: true,
      maxNativeZoom: this.config.maxZoom,
      minZoom: this.config.minZoom,
      maxZoom: this.config.maxZoom,
      getFeatureId: function (f) { return f.id; }
    }, options || {}));
    layer.on("load", function () { self.state.tilesLoaded += 1; });
    layer.on("tileerror", function () { self.state.errors += 1; });
    return layer;
  };

  GisMapView.prototype.openDetails = function (latlng, parcelId) {
    var self = this, box = el("div", "gis-popup", this.label("map_loading", "…"));
    var popup = L.popup({maxWidth: 360, className: "parcel-popup"}).setLatLng(latlng).setContent(box).openOn(this.map);
    fetch(this.config.detailsUrl + encodeURIComponent(parcelId), {credentials: "same-origin",
                                                                  headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error(response.status); }
        return response.json();
      })
      .then(function (details) {
        box.textContent = "";
        self.fillDetails(box, details);
        popup.update();
        self.state.popups += 1;
      })
      .catch(function () { box.textContent = self.label("map_load_failed", "error"); });
  };

  GisMapView.prototype.fillDetails = function (box, d) {
    var self = this, en = this.config.lang === "en";
    var dl = el("dl");
    row(dl, this.label("field_parcel_code"), d.parcel_code);
    row(dl, this.label("field_holder"), d.holder);
    row(dl, this.label("field_land_use"), d.land_use);
    row(dl, this.label("field_area"), d.area_m2);
    box.appendChild(dl);
    if (!d.projects.length) {
      box.appendChild(el("p", null, this.label("map_no_project")));
      return;
    }
    d.projects.forEach(function (p) {
      box.appendChild(el("h4", null, (en && p.name_en) ? p.name_en : p.name));
      var pdl = el("dl");
      row(pdl, self.label("field_project_code"), p.code);
      row(pdl, self.label("field_applicant_org"), p.applicant_org);
      row(pdl, self.label("field_stage"), self.label("stage_" + p.stage, String(p.stage)));
      row(pdl, self.label("field_status"), self.label("status_" + p.category, p.status));
      row(pdl, self.label("map_stage_status"), self.label("map_stage_" + p.stage_status, p.stage_status));
      row(pdl, self.label("map_days_left"), p.days_left);
      box.appendChild(pdl);
      if (p.is_overlapping) { box.appendChild(el("p", "overlap", self.label("map_overlap_flag"))); }
      if (p.tasks.length) {
        box.appendChild(el("div", "tasks-title", self.label("map_departments")));
        var table = el("table", "tasks");
        p.tasks.forEach(function (t) {
          var tr = el("tr");
          tr.appendChild(el("td", null, en ? t.department_en : t.department_zh));
          tr.appendChild(el("td", null, self.label("map_task_" + t.status, t.status)));
          var clock = el("td");
          if (t.colour) {
            var dot = el("span", "clock");
            dot.style.backgroundColor = self.config.clockColours[t.colour] || "#999";
            dot.title = self.label("map_clock_" + t.colour, t.colour);
            clock.appendChild(dot);
            clock.appendChild(document.createTextNode(t.days_left === null ? self.label("map_clock_stopped")
                                                                           : String(t.days_left)));
          }
          tr.appendChild(clock);
          table.appendChild(tr);
        });
        box.appendChild(table);
      }
    });
  };

  GisMapView.prototype.build = function () {
    var self = this, c = this.config, map = this.map;
    // the city's extent before any tile layer is added: no tiles are fetched for the initial view
    if (c.bounds) { map.fitBounds(c.bounds, {animate: false, padding: [12, 12]}); }
    map.attributionControl.setPrefix(c.attribution);
    L.control.scale({imperial: false, position: "bottomright"}).addTo(map);

    var parcels = this.tileLayer(c.tiles.parcels, {
      parcels: function (props) { return self.parcelStyle(props); },
      cells: function (props) { return self.cellStyle(props); }
    });
    parcels.on("click", function (e) {
      var props = e.layer && e.layer.properties;
      if (props && props.parcel_id) { self.openDetails(e.latlng, props.parcel_id); }
    });
    // Each VectorGrid layer draws its own canvases; a canvas on top takes every click. The
    // overlays (footprints, layers) sit in a pane above the parcels that lets clicks through.
    var pane = map.createPane("gisOverlays");
    pane.style.zIndex = 450;
    pane.style.pointerEvents = "none";
    var footprints = this.tileLayer(c.tiles.footprints, {footprints: function (props) { return self.footprintStyle(props); }},
                                    {interactive: false, pane: "gisOverlays"});
    parcels.addTo(map);
    footprints.addTo(map);

    var overlays = {};
    overlays[this.label("parcels")] = parcels;
    overlays[this.label("footprints")] = footprints;
    this.layers = {parcels: parcels, footprints: footprints};
    c.layers.forEach(function (spec) {
      var layer = self.tileLayer(spec.url, {features: function () { return self.layerStyle(); }},
                                 {interactive: false, pane: "gisOverlays"});
      overlays[spec.title] = layer;
      self.layers[spec.name] = layer;
    });
    L.control.layers(null, overlays, {collapsed: false, position: "topright"}).addTo(map);
  };

  window.GisMap = {
    init: function (map, config) {
      var view = new GisMapView(map, config);
      view.build();
      window.gisMap = map;
      window.gisMapView = view;
      return view;
    }
  };
}());
