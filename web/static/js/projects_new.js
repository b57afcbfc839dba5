/* Picking parcels on the map for a new project: parcels in view are fetched from the API when
   zoomed in; a click toggles the parcel's code in the form's list. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("projects-config").textContent);
  var map = L.map("projects-map").setView(cfg.map.center, Math.max(cfg.map.zoom, 16));
  var field = document.getElementById("parcel_codes");
  var layer = L.geoJSON(null, { style: style, onEachFeature: bind }).addTo(map);

  function codes() { return field.value.split(/[\s,，]+/).filter(Boolean); }
  function style(f) {
    var on = codes().indexOf(f.properties.code) >= 0;
    return { color: on ? "#d62828" : "#14509a", weight: on ? 3 : 1, fillOpacity: on ? 0.45 : 0.12,
             fillColor: on ? "#f08c00" : "#9cc2f0" };
  }
  function bind(f, l) {
    var tip = document.createElement("div");
    tip.textContent = f.properties.code + " · " + f.properties.land_use + " · " + f.properties.holder;
    l.bindTooltip(tip);
    l.on("click", function () {
      var list = codes(), i = list.indexOf(f.properties.code);
      if (i >= 0) { list.splice(i, 1); } else { list.push(f.properties.code); }
      field.value = list.join(" ");
      layer.setStyle(style);
    });
  }
  function load() {
    if (map.getZoom() < 15) { layer.clearLayers(); return; }
    var b = map.getBounds();
    var url = cfg.parcels_url + "?bbox=" + [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(",");
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      layer.clearLayers();
      layer.addData(data);
    });
  }
  field.addEventListener("change", function () { layer.setStyle(style); });
  map.on("moveend", load);
  load();
})();
