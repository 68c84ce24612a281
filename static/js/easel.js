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
      // Prompt templates: one select per {name} the model uses, filled with its choices.
      var names = m.template || [];
      form.querySelectorAll("[data-template-field]").forEach(function (el) {
        var name = el.dataset.templateField;
        var on = names.indexOf(name) >= 0;
        el.hidden = !on;
        var sel = el.querySelector("select");
        sel.disabled = !on;
        if (on) fill(sel, (m.template_choices || {})[name] || [], "");
      });
      var label = document.getElementById("prompt-label");
      if (label) {
        if (!label.dataset.plain) label.dataset.plain = label.textContent;
        label.textContent = names.length ? label.dataset.templateLabel : label.dataset.plain;
      }
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
  // Polling stops at a final status (the fresh card has no data-poll) and backs off while
  // the tab is hidden; a visible tab polls every second.
  function poll(card, delay) {
    var url = card.dataset.poll;
    if (!url) return;
    setTimeout(function () {
      if (!card.isConnected) return;
      if (document.hidden) { poll(card, Math.min(delay * 2, 15000)); return; }
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var node = fresh(card, html);
          if (node.dataset.poll) poll(node, 1000);
        })
        .catch(function () { poll(card, Math.min(delay * 2, 15000)); });
    }, delay);
  }

  // With live updates (body[data-events], generator/events.py) one EventSource brings every
  // card's fresh HTML as its generation changes, instead of a request per card a second. The
  // server ends a stream after a while (`end`): a new one is opened for the cards still at
  // work. Any failure (no EventSource, the endpoint refused, the connection lost) falls back
  // to polling the cards that are left.
  function fresh(card, html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    var node = tpl.content.firstElementChild;
    card.replaceWith(node);
    tickElapsed(node);
    ago(node);
    return node;
  }

  function activeCards() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-poll]"));
  }

  function listen(url) {
    var cards = activeCards();
    if (!cards.length) return;
    if (!url || !window.EventSource) { cards.forEach(function (c) { poll(c, 1000); }); return; }
    var ids = cards.map(function (c) { return c.id.replace(/^gen-/, ""); });
    var source = new EventSource(url + "?ids=" + encodeURIComponent(ids.join(",")));
    var ended = false;
    source.addEventListener("card", function (e) {
      var data = JSON.parse(e.data);
      var card = document.getElementById("gen-" + data.id);
      if (card) fresh(card, data.html);
    });
    source.addEventListener("gone", function (e) {  // deleted meanwhile (another tab)
      var card = document.getElementById("gen-" + JSON.parse(e.data).id);
      if (card) card.remove();
    });
    source.addEventListener("end", function () {
      ended = true;
      source.close();
      listen(url);
    });
    source.onerror = function () {
      if (ended) return;
      source.close();
      activeCards().forEach(function (c) { poll(c, 1000); });
    };
  }

  // --- Elapsed time on cards whose provider reports no progress. -----------------------
  function fmtElapsed(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  }
  function tickElapsed(root) {
    (root || document).querySelectorAll("[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (isNaN(since)) return;
      var word = el.closest("[data-status]") && el.closest("[data-status]").dataset.status === "running" ? "running " : "waiting ";
      el.textContent = word + fmtElapsed((Date.now() - since) / 1000);
    });
  }

  // --- Stars: toggled in place, without leaving the page. --------------------------------
  // A card's star is a button of the page's #card-actions form (formaction = its URL); the
  // detail page's star is a form of its own. Without JavaScript both post and come back.
  function setupStars() {
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      var button = ev.submitter;
      var url;
      if (form.matches && form.matches("[data-star]")) {
        button = form.querySelector("button");
        url = form.action;
      } else if (button && button.matches("[data-star]")) {
        url = button.formAction;
      } else {
        return;
      }
      ev.preventDefault();
      fetch(url, {
        method: "POST", credentials: "same-origin", body: new FormData(form),
        headers: { "X-Requested-With": "fetch" }
      })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          button.setAttribute("aria-pressed", data.favorite ? "true" : "false");
          button.textContent = data.favorite ? "★" : "☆";
        })
        .catch(function () { form.action = url; form.submit(); });  // the plain post, no fetch
    });
  }

  // --- "3 hours ago" for the dates on cards (the card HTML carries the date itself). -----
  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  function ago(root) {
    if (!relative) return;
    (root || document).querySelectorAll("time[data-ago]").forEach(function (el) {
      var when = Date.parse(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      if (!el.title) el.title = el.textContent;
      var s = (when - Date.now()) / 1000;
      var steps = [[60, "second"], [3600, "minute", 60], [86400, "hour", 3600], [2592000, "day", 86400], [31536000, "month", 2592000]];
      var text = relative.format(Math.round(s / 31536000), "year");
      for (var i = 0; i < steps.length; i++) {
        if (Math.abs(s) < steps[i][0]) { text = relative.format(Math.round(s / (steps[i][2] || 1)), steps[i][1]); break; }
      }
      el.textContent = text;
    });
  }

  // --- Copy prompt. ----------------------------------------------------------------------
  function setupCopy() {
    document.querySelectorAll("[data-copy-text]").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = button.dataset.copyText;
        var what = button.dataset.copyWhat || "Prompt";
        var scope = button.closest("[data-copy-scope]") || document;
        var status = scope.querySelector(".copy-status");
        function done(ok) { if (status) status.textContent = ok ? what + " copied." : "Could not copy; select the " + what.toLowerCase() + " instead."; }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(fallback(text)); });
        } else {
          done(fallback(text));
        }
      });
    });
    function fallback(text) {
      var area = document.createElement("textarea");
      area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
      document.body.appendChild(area); area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      return ok;
    }
  }

  // --- Before/after compare slider (a plain range input, so keys work). -------------------
  function setupCompare() {
    document.querySelectorAll("[data-compare]").forEach(function (fig) {
      var range = fig.querySelector(".compare-range");
      var wrap = fig.querySelector(".compare-before-wrap");
      if (!range || !wrap) return;
      function apply() {
        wrap.style.clipPath = "inset(0 " + (100 - Number(range.value)) + "% 0 0)";
        range.setAttribute("aria-valuetext", range.value + "% before");
      }
      range.addEventListener("input", apply);
      fig.classList.add("is-live");
      apply();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupForm();
    setupStars();
    setupCopy();
    setupCompare();
    tickElapsed();
    ago();
    setInterval(function () { if (!document.hidden) tickElapsed(); }, 1000);
    setInterval(function () { if (!document.hidden) ago(); }, 60000);
    listen(document.body.dataset.events);
  });
})();
