// The layer upload page: sends the form to the JSON API with XMLHttpRequest so that the upload's
// progress shows, then renders the result report. Every value is put in with textContent.
(function () {
  "use strict";
  var form = document.getElementById("layers-upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var M = JSON.parse(document.getElementById("layers-messages").textContent);
  var box = document.getElementById("layers-progress");
  var bar = document.getElementById("layers-progress-bar");
  var text = document.getElementById("layers-progress-text");
  var result = document.getElementById("layers-result");
  var submit = document.getElementById("layers-submit");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }

  function fill(template, n) { return template.replace("{n}", String(n)); }

  function table(headers, rows) {
    var head = el("tr", {}, headers.map(function (h) { return el("th", {}, [h]); }));
    var body = el("tbody", {}, rows.map(function (r) {
      return el("tr", {}, r.map(function (c) { return el("td", {}, [c == null || c === "" ? "—" : String(c)]); }));
    }));
    return el("table", {"class": "layers-table layers-problems"}, [el("thead", {}, [head]), body]);
  }

  function count(cls, label, n) {
    return el("li", {"class": cls}, [label + " ", el("strong", {}, [n])]);
  }

  // each affected project by its code and name, linked to its page for those who may open it
  function affected(projects) {
    if (!projects.length) { return el("p", {"class": "layers-affected"}, [M.none]); }
    var items = [];
    projects.forEach(function (p, i) {
      var name = (M.lang === "en" && p.name_en) || p.name || "";
      var code = p.code || "#" + p.id;
      if (i) { items.push(el("br")); }
      items.push(p.url ? el("a", {"class": "layers-project", "href": p.url, "title": name}, [code])
        : el("span", {"class": "layers-project", "title": name}, [code]));
      if (p.code) { items.push(" " + name); }
    });
    return el("p", {"class": "layers-affected"}, items);
  }

  function showReport(r) {
    var parts = [el("h2", {}, [M.title]), el("p", {}, [fill(M.ok, r.version)]),
      el("ul", {"class": "layers-counts"}, [count("layers-added", M.added, r.added),
        count("layers-changed", M.changed, r.changed), count("layers-removed", M.removed, r.removed),
        count("", M.unchanged, r.unchanged), count("", M.features, r.features)]),
      el("p", {"class": "layers-muted"}, [M.source_crs + ": " + (r.source_crs || "—") + " · " + M.seconds + ": " + r.seconds])];
    if (r.repair_details && r.repair_details.length) {
      parts.push(el("h3", {}, [M.repairs + " (" + r.repair_details.length + ")"]));
      parts.push(table([M.feature, M.field, M.problem], r.repair_details.map(function (p) {
        return [p.feature, p.field, p.message];
      })));
    }
    parts.push(el("h3", {}, [M.affected]));
    parts.push(affected(r.affected_projects || []));
    if (M.kind === "vector" && r.version > 1) {
      var url = form.getAttribute("data-diff") + "?from=" + (r.version - 1) + "&to=" + r.version;
      parts.push(el("p", {}, [el("a", {"class": "button button-primary", "href": url, "id": "layers-diff-link"}, [M.view_diff])]));
    }
    return el("div", {"class": "layers-report layers-report-ok", "id": "layers-report", "data-outcome": "published"}, parts);
  }

  function showRefusal(status, body) {
    var e = (body && body.error) || {message: "HTTP " + status};
    var details = e.problem_details || (e.problems || [e.message]).map(function (p) {
      return {feature: null, field: null, message: p, where: null};
    });
    var parts = [el("h2", {}, [M.title]), el("p", {}, [el("strong", {}, [M.refused])]),
      el("p", {}, [(e.where ? e.where + ": " : "") + e.message]),
      el("h3", {}, [M.problems + " (" + details.length + ")"]),
      table([M.feature, M.field, M.problem, M.where], details.map(function (p) {
        return [p.feature, p.field, p.message, p.where];
      }))];
    if (e.more) { parts.push(el("p", {"class": "layers-muted"}, [fill(M.more, e.more)])); }
    return el("div", {"class": "layers-report layers-report-refused", "id": "layers-report",
      "data-outcome": "refused", "data-status": String(status), "role": "alert"}, parts);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var data = new FormData(form);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("data-api"));
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("input[name=csrf_token]").value);
    xhr.setRequestHeader("Accept", "application/json");
    result.textContent = "";
    box.hidden = false;
    box.setAttribute("data-progress", "0");
    bar.value = 0;
    bar.max = 100;
    text.textContent = M.uploading + " 0%";
    submit.disabled = true;
    xhr.upload.addEventListener("progress", function (ev) {
      if (ev.lengthComputable) {
        var pct = Math.round(ev.loaded / ev.total * 100);
        bar.value = pct;
        box.setAttribute("data-progress", String(pct));
        text.textContent = M.uploading + " " + pct + "% (" + (ev.loaded / 1048576).toFixed(1) + " / " +
          (ev.total / 1048576).toFixed(1) + " MB)";
      }
    });
    xhr.upload.addEventListener("load", function () {
      bar.value = 100;
      bar.removeAttribute("value");  // indeterminate while the server checks and imports
      text.textContent = M.processing;
    });
    xhr.addEventListener("load", function () {
      submit.disabled = false;
      box.hidden = true;
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      result.textContent = "";
      result.appendChild(xhr.status === 201 && body ? showReport(body) : showRefusal(xhr.status, body));
    });
    xhr.addEventListener("error", function () {
      submit.disabled = false;
      box.hidden = true;
      result.textContent = M.network;
    });
    xhr.send(data);
  });
})();
