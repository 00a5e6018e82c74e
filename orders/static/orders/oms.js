/* The trader pages' behaviour: live regions, confirmations, the ticket's fields by
 * order type, its symbol search and its allocation grid. Plain JavaScript; every page
 * works without it (forms post, pages reload), it only saves the reloads — the grid's
 * rows are added here, but post as plain form fields. */
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

  /* ---- the ticket's "Allocate to funds" grid: add and remove rows (posted as
   * alloc_account_N / alloc_value_N), percent or shares, the running total. While the
   * grid has rows the order is a block for those funds: the account box is off (a
   * disabled field is not posted). */
  function number(text) {
    var cleaned = String(text || "").replace(/[,\s_%]/g, "");
    return /^\d+(\.\d+)?$/.test(cleaned) ? parseFloat(cleaned) : NaN;
  }

  function wireAllocationGrid(form, grid) {
    var body = grid.querySelector("#alloc-rows tbody");
    var template = grid.querySelector("#alloc-row-template");
    var add = grid.querySelector("#alloc-add");
    var total = grid.querySelector("#alloc-total");
    var head = grid.querySelector("#alloc-value-head");
    var account = form.elements.account;
    var accountField = form.querySelector('[data-field="account"]');
    var next = 0;
    body.querySelectorAll("[data-alloc-row]").forEach(function (row) {
      next = Math.max(next, parseInt(row.getAttribute("data-alloc-row"), 10) + 1);
    });

    function mode() {
      var checked = grid.querySelector('input[name="alloc_mode"]:checked');
      return checked ? checked.value : "percent";
    }

    function relabel() {
      body.querySelectorAll("tr.alloc-row").forEach(function (row, index) {
        row.querySelector("select").setAttribute("aria-label", "Fund " + (index + 1));
        row.querySelector("input").setAttribute("aria-label", "Allocation " + (index + 1));
      });
    }

    function refresh() {
      var rows = body.querySelectorAll("tr.alloc-row");
      var block = rows.length > 0;
      if (account) account.disabled = block;
      if (accountField) accountField.classList.toggle("is-block", block);
      var byPercent = mode() === "percent";
      head.textContent = byPercent ? "Percent" : "Shares";
      grid.setAttribute("data-mode", mode());
      if (!block) {
        total.textContent = "—";
        total.setAttribute("data-state", "");
        return;
      }
      var sum = 0;
      var valid = true;
      rows.forEach(function (row) {
        var value = number(row.querySelector("input").value);
        if (isNaN(value)) valid = false; else sum += value;
      });
      var target = byPercent ? 100 : number(form.elements.quantity ? form.elements.quantity.value : "");
      var shown = byPercent ? String(Math.round(sum * 1e6) / 1e6) + "%" : sum.toLocaleString("en-US");
      if (byPercent) {
        total.textContent = shown + " of 100%";
      } else {
        total.textContent = shown + (isNaN(target) ? " (enter the order quantity)" : " of " + target.toLocaleString("en-US"));
      }
      var ok = valid && !isNaN(target) && Math.abs(sum - target) < 1e-9;
      total.setAttribute("data-state", ok ? "ok" : "off");
    }

    function addRow() {
      var html = template.innerHTML.replace(/__n__/g, String(next)).replace(/__label__/g, String(next + 1));
      next += 1;
      var holder = document.createElement("tbody");
      holder.innerHTML = html.trim();
      var row = holder.firstElementChild;
      body.appendChild(row);
      relabel();
      refresh();
      return row;
    }

    grid.classList.add("js");
    add.hidden = false;
    add.addEventListener("click", function () {
      addRow().querySelector("select").focus();
    });
    body.addEventListener("click", function (event) {
      var remove = event.target.closest("[data-alloc-remove]");
      if (!remove) return;
      remove.closest("tr").remove();
      relabel();
      refresh();
    });
    grid.addEventListener("input", refresh);
    grid.addEventListener("change", refresh);
    if (form.elements.quantity) form.elements.quantity.addEventListener("input", refresh);
    refresh();
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireForms(document);
    document.querySelectorAll("[data-live-src]").forEach(startLive);
    var ticket = document.getElementById("ticket");
    if (ticket) wireTicket(ticket);
    var grid = ticket && document.getElementById("alloc-grid");
    if (grid) wireAllocationGrid(ticket, grid);
  });
})();
