// The diff map: the changed features of two layer versions in three colours (added, removed,
// changed; the old shape of a changed feature dashed). Popups are built with textContent.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("layers-diff-data").textContent);
  var C = data.colours, L_ = data.labels;
  var map = L.map("layers-diff-map", {zoomSnap: 0.25, fadeAnimation: false, zoomAnimation: false});
  map.attributionControl.setPrefix("");
  L.control.scale({imperial: false, position: "bottomright"}).addTo(map);

  function style(feature) {
    var kind = feature.properties.kind;
    if (kind === "changed_before") {
      return {color: C.changed_before, weight: 2, dashArray: "5 4", fill: false};
    }
    if (kind === "removed") {
      return {color: C.removed, weight: 2, fillColor: C.removed, fillOpacity: 0.3, dashArray: "2 3"};
    }
    return {color: C[kind], weight: 2, fillColor: C[kind], fillOpacity: 0.45};
  }

  function popup(feature) {
    var p = feature.properties;
    var box = document.createElement("div");
    box.className = "layers-popup";
    var h = document.createElement("strong");
    h.textContent = (L_[p.kind] || p.kind) + " · " + p.key;
    box.appendChild(h);
    var attrs = p.attrs || {};
    var table = document.createElement("table");
    Object.keys(attrs).sort().forEach(function (k) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.textContent = k;
      var td = document.createElement("td");
      var value = attrs[k] == null ? "" : String(attrs[k]);
      if (p.old_attrs && p.old_attrs[k] !== attrs[k]) {
        value = String(p.old_attrs[k]) + " → " + value;
        td.className = "layers-popup-changed";
      }
      td.textContent = value;
      tr.appendChild(th);
      tr.appendChild(td);
      table.appendChild(tr);
    });
    box.appendChild(table);
    return box;
  }

  // removed features last, so that they stay visible where a new feature takes their place
  var order = {changed_before: 0, changed: 1, added: 2, removed: 3};
  data.geojson.features.sort(function (a, b) { return order[a.properties.kind] - order[b.properties.kind]; });
  var layer = L.geoJSON(data.geojson, {
    style: style,
    pointToLayer: function (feature, latlng) {
      var s = style(feature);
      s.radius = 6;
      return L.circleMarker(latlng, s);
    },
    onEachFeature: function (feature, lyr) { lyr.bindPopup(function () { return popup(feature); }); }
  }).addTo(map);
  // the layer's other features as of the later version, faint, beneath the changes: fetched for
  // the view once it is close enough for them to be few. Where they are more than the limit the
  // map draws none (a part of them would leave holes that look like missing features) and the
  // legend says to zoom in.
  var context = L.geoJSON(null, {interactive: false, pointToLayer: function (f, latlng) {
    return L.circleMarker(latlng, {radius: 3});
  }, style: {color: C.context, weight: 1, fill: false, opacity: 0.8}});
  var mapBox = document.getElementById("layers-diff-map");
  var hint = document.getElementById("layers-diff-context-more");
  var asked = 0;
  function showContext(fc) {
    context.clearLayers();
    if (hint) { hint.hidden = !(fc && fc.truncated); }
    if (fc && !fc.truncated) {
      context.addData(fc);
      context.addTo(map);
      context.bringToBack();
    } else {
      map.removeLayer(context);
    }
    mapBox.setAttribute("data-context", fc && !fc.truncated ? String(fc.features.length) : "0");
  }
  function loadContext() {
    var mine = ++asked;
    if (!data.features_url || map.getZoom() < data.context_zoom) {
      showContext(null);
      return;
    }
    var b = map.getBounds();
    var url = data.features_url + "?version=" + data.to + "&limit=" + data.context_limit + "&bbox=" +
      [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); }).join(",");
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; })  // the changes stay on the map without their surroundings
      .then(function (fc) { if (mine === asked) { showContext(fc); } });
  }
  map.on("moveend", loadContext);  // also the first view's, set below

  // a key in the table below the map: fit the map to that feature (its new shape) and open it
  var byKey = {};
  layer.eachLayer(function (lyr) {
    if (lyr.feature.properties.kind !== "changed_before") { byKey[lyr.feature.properties.key] = lyr; }
  });
  Array.prototype.forEach.call(document.querySelectorAll("#layers-changes-table a.layers-zoom"), function (a) {
    a.addEventListener("click", function (event) {
      var lyr = byKey[a.getAttribute("data-key")];
      if (!lyr) { return; }  // beyond what the map draws: the link just scrolls to it
      event.preventDefault();
      document.getElementById("layers-diff-map").scrollIntoView({block: "center"});
      if (lyr.getBounds) {
        map.fitBounds(lyr.getBounds().pad(0.5), {animate: false, maxZoom: 18});
      } else {
        map.setView(lyr.getLatLng(), 18, {animate: false});
      }
      lyr.openPopup();
    });
  });
  var bounds = layer.getBounds();
  if (bounds.isValid()) {
    map.fitBounds(bounds.pad(0.15), {animate: false, maxZoom: 17});
  } else {
    map.setView(data.center, data.zoom, {animate: false});
  }
  mapBox.setAttribute("data-ready", String(data.geojson.features.length));
})();
