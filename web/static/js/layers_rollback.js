// The roll-back confirmation page: a last confirm() before the form is sent.
(function () {
  "use strict";
  var form = document.getElementById("layers-rollback-form");
  if (!form) { return; }
  form.addEventListener("submit", function (event) {
    if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
  });
})();
