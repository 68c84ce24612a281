/* Easel's few behaviours, in plain JavaScript (no build step, no CDN). */
(function () {
  "use strict";

  // --- The prompt form: show only the options the chosen model takes. -----------------
  function setupForm() {
    var form = document.getElementById("generate-form");
    var data = document.getElementById("model-options");
    if (!form || !data) return;
    var models = JSON.parse(data.textContent);
    var select = form.querySelector("[name=model]");

    function fill(selectEl, values, preferred) {
      var current = selectEl.value || selectEl.dataset.initial || preferred;
      selectEl.innerHTML = "";
      values.forEach(function (v) {
        var opt = document.createElement("option");
        opt.value = v; opt.textContent = v;
        if (v === current) opt.selected = true;
        selectEl.appendChild(opt);
      });
    }

    function apply() {
      var m = models[select.value];
      if (!m) return;
      form.querySelectorAll("[data-option]").forEach(function (el) {
        var key = el.dataset.option;
        var on = Array.isArray(m[key]) ? m[key].length > 0 : !!m[key];
        el.hidden = !on;
        el.querySelectorAll("input, select, textarea").forEach(function (i) { i.disabled = !on; });
      });
      fill(form.querySelector("[name=size]"), m.sizes, (m.defaults || {}).size);
      fill(form.querySelector("[name=aspect_ratio]"), m.aspect_ratios, (m.defaults || {}).aspect_ratio);
      var n = form.querySelector("[name=num_images]");
      Array.prototype.forEach.call(n.options, function (o) { o.disabled = Number(o.value) > m.max_images; });
      if (Number(n.value) > m.max_images) n.value = "1";
      var prompt = form.querySelector("[name=prompt]");
      prompt.maxLength = m.prompt_max_length;
      var note = document.getElementById("offline-note");
      if (note) note.hidden = !m.offline;
    }
    select.addEventListener("change", apply);
    apply();

    // One click, one generation: the button locks after the first submit.
    form.addEventListener("submit", function () {
      form.querySelectorAll("[data-once]").forEach(function (b) {
        setTimeout(function () { b.disabled = true; b.textContent = "Sending…"; }, 0);
      });
    });
  }

  // --- Cards of unfinished generations refresh themselves. -----------------------------
  function poll(card, delay) {
    var url = card.dataset.poll;
    if (!url) return;
    setTimeout(function () {
      if (document.hidden) { poll(card, Math.min(delay * 2, 15000)); return; }
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var tpl = document.createElement("template");
          tpl.innerHTML = html.trim();
          var fresh = tpl.content.firstElementChild;
          card.replaceWith(fresh);
          if (fresh.dataset.poll) poll(fresh, 1000);
        })
        .catch(function () { poll(card, Math.min(delay * 2, 15000)); });
    }, delay);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupForm();
    document.querySelectorAll("[data-poll]").forEach(function (c) { poll(c, 1000); });
  });
})();
