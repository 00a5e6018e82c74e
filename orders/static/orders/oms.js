/* The trader pages' behaviour: live regions, confirmations, the ticket's fields by
 * order type and its symbol search. Plain JavaScript; every page works without it
 * (forms post, pages reload), it only saves the reloads. */
(function () {
  "use strict";

  /* ---- live regions: [data-live-src] is fetched again every data-live-every ms and
   * its parts ([data-live-part], or the region itself) replaced when they changed —
   * except a part the trader is using (focus inside, a form typed into, errors shown). */
  function busy(part) {
    if (part.contains(document.activeElement) && document.activeElement !== document.body) return true;
    if (part.querySelector("form[data-dirty]")) return true;
    return Boolean(part.querySelector(".error"));
  }

  function rowVersions(root) {
    var versions = {};
    root.querySelectorAll("tr[data-order-id]").forEach(function (tr) {
      versions[tr.getAttribute("data-order-id")] = tr.getAttribute("data-v");
    });
    return versions;
  }

  function replacePart(current, html) {
    if (current.innerHTML.trim() === html.trim() || busy(current)) return;
    var before = rowVersions(current);
    current.innerHTML = html;
    current.querySelectorAll("tr[data-order-id]").forEach(function (tr) {
      var id = tr.getAttribute("data-order-id");
      if (before[id] !== tr.getAttribute("data-v")) tr.classList.add("flash");
    });
    wireForms(current);
  }

  function startLive(region) {
    var every = parseInt(region.getAttribute("data-live-every"), 10) || 1000;
    var inFlight = false;
    function tick() {
      if (inFlight || document.hidden) return;
      inFlight = true;
      fetch(region.getAttribute("data-live-src"), {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
        cache: "no-cache", // revalidate: the server answers 304 when nothing changed
      })
        .then(function (response) {
          if (response.status === 401 || response.status === 403 || response.redirected) {
            window.location.reload(); // signed out: let the login page say so
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) return;
          var template = document.createElement("template");
          template.innerHTML = html;
          var parts = region.querySelectorAll("[data-live-part]");
          if (!parts.length) {
            replacePart(region, html);
          } else {
            parts.forEach(function (part) {
              var fresh = template.content.querySelector('[data-live-part="' + part.getAttribute("data-live-part") + '"]');
              if (fresh) replacePart(part, fresh.innerHTML);
            });
          }
          region.setAttribute("data-live-updated", String(Date.now()));
        })
        .catch(function () { /* the next tick tries again */ })
        .finally(function () { inFlight = false; });
    }
    window.setInterval(tick, every);
  }

  /* ---- forms: confirmation, dirty tracking, no double submit. */
  function wireForms(root) {
    root.querySelectorAll("form").forEach(function (form) {
      if (form.__wired) return;
      form.__wired = true;
      form.addEventListener("input", function () { form.setAttribute("data-dirty", ""); });
      form.addEventListener("submit", function (event) {
        var question = form.getAttribute("data-confirm");
        if (question && !window.confirm(question)) {
          event.preventDefault();
          return;
        }
        if (form.__submitting) { event.preventDefault(); return; }
        form.__submitting = true;
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.setAttribute("aria-busy", "true"); });
      });
    });
  }

  /* ---- the ticket: fields by order type, time in force and side; symbol search. */
  function wireTicket(form) {
    function field(name) { return form.querySelector('[data-field="' + name + '"]'); }
    function value(name) { var el = form.elements[name]; return el ? el.value : ""; }
    function show(name, visible) {
      var f = field(name);
      if (!f) return;
      f.hidden = !visible;
      var input = f.querySelector("input,select,textarea");
      if (input) input.disabled = !visible;
    }
    function refresh() {
      var type = value("order_type");
      show("limit_price", type === "LIMIT" || type === "STOP_LIMIT");
      show("stop_price", type === "STOP" || type === "STOP_LIMIT");
      show("expire_at", value("time_in_force") === "GTD");
      show("short_exempt_reason", value("side") === "SELL_SHORT");
    }
    ["order_type", "time_in_force", "side"].forEach(function (name) {
      if (form.elements[name]) form.elements[name].addEventListener("change", refresh);
    });
    refresh();

    var symbol = form.elements.symbol;
    var options = document.getElementById("symbol-options");
    var hint = document.getElementById("symbol-hint");
    var url = form.getAttribute("data-search-url");
    var timer = null;
    var known = {};
    function describe() {
      var s = known[symbol.value.trim().toUpperCase()];
      hint.textContent = s ? s.name + (s.reference_price ? " · ref " + s.reference_price + " " + s.currency : "") : "";
    }
    function search() {
      var q = symbol.value.trim();
      if (!q) { options.innerHTML = ""; describe(); return; }
      fetch(url + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { results: [] }; })
        .then(function (data) {
          options.innerHTML = "";
          data.results.forEach(function (s) {
            known[s.symbol] = s;
            var option = document.createElement("option");
            option.value = s.symbol;
            option.textContent = s.name;
            options.appendChild(option);
          });
          describe();
        })
        .catch(function () {});
    }
    if (symbol && options && url) {
      symbol.addEventListener("input", function () {
        window.clearTimeout(timer);
        timer = window.setTimeout(search, 150);
      });
      symbol.addEventListener("change", describe);
      if (symbol.value) search();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireForms(document);
    document.querySelectorAll("[data-live-src]").forEach(startLive);
    var ticket = document.getElementById("ticket");
    if (ticket) wireTicket(ticket);
  });
})();
