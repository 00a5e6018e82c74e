/* The order ticket's notional preview: quantity × limit price (a LIMIT or STOP_LIMIT
 * order) or × the security's reference price (a MARKET or STOP order, which has no
 * price of its own), shown under the form as the trader types, to the cent with
 * thousands separators. Exact decimal arithmetic (BigInt), never floating point.
 * The reference price and currency come from the ticket's symbol search. Plain
 * JavaScript; without it the ticket works as before, without the preview. */
(function () {
  "use strict";

  var TEN = BigInt(10);
  var PRICED = { LIMIT: true, STOP_LIMIT: true };

  /* "1,234.5" -> { units: 12345n, scale: 1 }; null when it is not a plain number. */
  function decimal(text) {
    var match = /^(\d{1,15})(?:\.(\d{1,12}))?$/.exec(String(text || "").replace(/[,\s_]/g, ""));
    if (!match) return null;
    var fraction = match[2] || "";
    return { units: BigInt(match[1] + fraction), scale: fraction.length };
  }

  /* A whole number of shares as the ticket reads it: "10000", "10,000", "10 000". */
  function shares(text) {
    var cleaned = String(text || "").replace(/[,\s_]/g, "");
    return /^\d{1,15}$/.test(cleaned) ? BigInt(cleaned) : null;
  }

  function grouped(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  /* units × 10^-scale to the cent (half up), with thousands separators. */
  function amount(units, scale) {
    var cents;
    if (scale <= 2) {
      cents = units * TEN ** BigInt(2 - scale);
    } else {
      var divisor = TEN ** BigInt(scale - 2);
      cents = (units + divisor / BigInt(2)) / divisor;
    }
    var digits = cents.toString().padStart(3, "0");
    return grouped(digits.slice(0, -2)) + "." + digits.slice(-2);
  }

  function plainPrice(text) {
    return String(text || "").replace(/[,\s]/g, "");
  }

  function wireNotional(form, out) {
    var url = form.getAttribute("data-search-url");
    var securities = {}; // symbol -> search result, or null when there is none
    var asked = {};
    var timer = null;

    function value(name) {
      var element = form.elements[name];
      return element ? element.value : "";
    }

    function say(text) {
      out.textContent = text;
      out.hidden = !text;
    }

    function refresh() {
      var quantity = shares(value("quantity"));
      var type = value("order_type");
      var symbol = value("symbol").trim().toUpperCase();
      var security = securities[symbol];
      var currency = security ? " " + security.currency : "";
      if (quantity === null) {
        say("");
        out.removeAttribute("data-notional");
        return;
      }
      var price;
      var basis;
      if (PRICED[type]) {
        price = plainPrice(value("limit_price"));
        basis = "limit price";
        if (!decimal(price)) {
          say("Notional: enter a limit price.");
          out.removeAttribute("data-notional");
          return;
        }
      } else {
        if (!symbol) {
          say("Notional: enter a symbol.");
          out.removeAttribute("data-notional");
          return;
        }
        if (security === undefined) {
          say("Notional: looking up the reference price of " + symbol + "…");
          out.removeAttribute("data-notional");
          return;
        }
        if (!security || !security.reference_price) {
          say("Notional: no reference price for " + symbol + ".");
          out.removeAttribute("data-notional");
          return;
        }
        price = plainPrice(security.reference_price);
        basis = "reference price, " + type.toLowerCase().replace("_", " ") + " order";
      }
      var parsed = decimal(price);
      var total = amount(quantity * parsed.units, parsed.scale);
      out.setAttribute("data-notional", total);
      say(
        "Notional: " + total + currency + " (" + grouped(quantity.toString()) + " × " + price + " " + basis + ")"
      );
    }

    function lookUp() {
      var symbol = value("symbol").trim().toUpperCase();
      if (!symbol || !url || asked[symbol]) {
        refresh();
        return;
      }
      asked[symbol] = true;
      refresh();
      fetch(url + "?q=" + encodeURIComponent(symbol), { credentials: "same-origin" })
        .then(function (response) {
          return response.ok ? response.json() : { results: [] };
        })
        .then(function (data) {
          var found = null;
          (data.results || []).forEach(function (result) {
            if (result.symbol === symbol) found = result;
          });
          securities[symbol] = found;
          refresh();
        })
        .catch(function () {
          delete asked[symbol];
        });
    }

    form.addEventListener("input", function (event) {
      if (event.target.name === "symbol") {
        window.clearTimeout(timer);
        timer = window.setTimeout(lookUp, 150);
      }
      refresh();
    });
    form.addEventListener("change", refresh);
    lookUp();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("ticket");
    var out = document.getElementById("ticket-notional");
    if (form && out) wireNotional(form, out);
  });
})();
