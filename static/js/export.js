/* The ZIP export page (templates/gallery/export.html): poll the export's JSON state once a
   second and move the progress bar; show the download link (or the reason) when it ends. */
(function () {
  "use strict";
  var box = document.getElementById("export");
  if (!box) return;
  var url = box.dataset.statusUrl;
  var bar = document.getElementById("export-progress");
  var count = document.getElementById("export-count");
  var label = document.getElementById("export-status");
  var error = document.getElementById("export-error");
  var ready = document.getElementById("export-ready");
  var link = document.getElementById("export-download");
  var expired = document.getElementById("export-expired");
  var expiry = document.getElementById("export-expiry");

  function show(s) {
    bar.max = Math.max(s.total, 1);
    bar.value = s.status === "completed" ? bar.max : s.done;
    bar.textContent = s.done + " of " + s.total;
    count.textContent = s.done + " of " + s.total;
    label.textContent = s.status_label;
    box.dataset.status = s.status;
    error.textContent = s.error || "";
    error.hidden = !s.error;
    expired.hidden = !s.expired;
    if (s.download_url) {
      link.href = s.download_url;
      if (s.expires_at) expiry.textContent = "(link valid until " + new Date(s.expires_at).toLocaleString() + ")";
      ready.hidden = false;
    } else {
      ready.hidden = true;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (s) {
        show(s);
        if (s.status === "queued" || s.status === "running") setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  var status = box.dataset.status;
  if (status === "queued" || status === "running") setTimeout(poll, 1000);
})();
