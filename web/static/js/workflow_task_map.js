(function () {
  var holder = document.getElementById("wf-task-map");
  if (!holder || !window.L) return;
  var data = JSON.parse(document.getElementById("wf-map-data").textContent);
  var en = data.lang === "en";
  var map = L.map(holder, { attributionControl: false });
  function tip(text) { var el = document.createElement("div"); el.textContent = text; return el; }
  var parcels = L.geoJSON(data.parcels, { style: { color: "#14509a", weight: 2, fillOpacity: 0.05, dashArray: "4 3" },
    onEachFeature: function (f, layer) { layer.bindTooltip(tip((en ? "Parcel " : "宗地 ") + f.properties.code)); } }).addTo(map);
  var buildings = L.geoJSON(data.buildings, { style: { color: "#0b2e59", weight: 1, fillColor: "#5b8def", fillOpacity: 0.6 },
    onEachFeature: function (f, layer) { layer.bindTooltip(tip(f.properties.name + " · " + f.properties.height_m + " m")); } }).addTo(map);
  var colour = { fail: "#b42318", warn: "#d97706", no_data: "#6b7280", pass: "#15803d" };
  L.geoJSON(data.evidence, { style: function (f) { return { color: colour[f.properties.outcome] || "#6b7280", weight: 3, fillOpacity: 0.25 }; },
    pointToLayer: function (f, latlng) { return L.circleMarker(latlng, { radius: 6 }); },
    onEachFeature: function (f, layer) { layer.bindPopup(tip(f.properties.rule_id + ": " + (en ? f.properties.message_en : f.properties.message_zh))); } }).addTo(map);
  var bounds = parcels.getBounds();
  if (buildings.getBounds().isValid()) bounds = bounds.isValid() ? bounds.extend(buildings.getBounds()) : buildings.getBounds();
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [20, 20] }); else map.setView([22.94, 113.38], 14);
  window.wfTaskMap = map;
})();
