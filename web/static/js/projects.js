/* The project page's map: parcels, footprints and the check evidence (failing red, warnings
   orange); with Leaflet.draw, the applicant draws a footprint and saves it through the API.
   Every label is a DOM text node (never innerHTML). */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("projects-config").textContent);
  var map = L.map("projects-map", { preferCanvas: false }).setView(cfg.map.center, cfg.map.zoom);
  var lang = cfg.lang;

  function label(parts) {
    var div = document.createElement("div");
    parts.forEach(function (text) {
      var line = document.createElement("div");
      line.textContent = text;
      div.appendChild(line);
    });
    return div;
  }

  var parcels = L.geoJSON(cfg.data.parcels, {
    style: { color: "#14509a", weight: 2, dashArray: "6 4", fillColor: "#e6eef8", fillOpacity: 0.35 },
    onEachFeature: function (f, layer) { layer.bindTooltip(label([f.properties.code, f.properties.land_use])); }
  }).addTo(map);
  var buildings = L.geoJSON(cfg.data.buildings, {
    style: { color: "#1f2933", weight: 1.5, fillColor: "#52606d", fillOpacity: 0.55 },
    onEachFeature: function (f, layer) {
      layer.bindTooltip(label([f.properties.name, f.properties.height_m + " m · " + f.properties.use]));
    }
  }).addTo(map);
  var evidence = L.geoJSON(cfg.data.evidence, {
    style: function (f) {
      var fail = f.properties.outcome === "fail";
      return { color: fail ? "#d62828" : "#e8590c", weight: fail ? 4 : 3, fillColor: fail ? "#d62828" : "#f08c00",
               fillOpacity: 0.5, className: "evidence evidence-" + f.properties.outcome };
    },
    onEachFeature: function (f, layer) {
      layer.bindTooltip(label([lang === "en" ? f.properties.message_en : f.properties.message_zh]));
    }
  }).addTo(map);

  var extent = L.featureGroup([parcels, buildings, evidence]);
  if (extent.getLayers().length && extent.getBounds().isValid()) {
    map.fitBounds(extent.getBounds().pad(0.25));
  }
  L.control.layers(null, { "parcels": parcels, "buildings": buildings, "evidence": evidence }, { collapsed: true })
    .addTo(map);

  // Highlight a result's evidence when its row is hovered.
  document.querySelectorAll("tr.result").forEach(function (row) {
    row.addEventListener("mouseenter", function () {
      evidence.eachLayer(function (l) {
        if (String(l.feature.properties.id) === row.dataset.result) { l.setStyle({ weight: 7 }); l.bringToFront(); }
      });
    });
    row.addEventListener("mouseleave", function () { evidence.resetStyle(); });
  });

  if (!cfg.editable || !L.Control.Draw) { return; }
  var drawn = new L.FeatureGroup().addTo(map);
  map.addControl(new L.Control.Draw({
    draw: { polygon: { allowIntersection: false, showArea: true }, rectangle: true, polyline: false, circle: false,
            marker: false, circlemarker: false },
    edit: { featureGroup: drawn }
  }));
  map.on(L.Draw.Event.CREATED, function (e) {
    drawn.clearLayers();
    drawn.addLayer(e.layer);
    var box = document.getElementById("draw-box");
    if (box) { box.open = true; }
  });

  var form = document.getElementById("draw-form");
  var status = document.getElementById("draw-status");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var layers = drawn.getLayers();
    if (!layers.length) { status.textContent = cfg.messages.draw_missing; return; }
    var body = { geometry: layers[0].toGeoJSON().geometry, crs: "EPSG:4326" };
    new FormData(form).forEach(function (v, k) { body[k] = v; });
    fetch(cfg.buildings_url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json",
                 "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (res.ok) { window.location.reload(); return; }
      var err = res.data.error || {};
      status.textContent = "";
      status.appendChild(label([err.message || "error"].concat(err.problems || [])));
      status.classList.add("error");
    });
  });
})();
