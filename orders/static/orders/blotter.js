/* The blotter's selection: the orders ticked for "Cancel selected", kept by order id
 * while the live rows are replaced (oms.js swaps them when an order changes), the
 * button's confirmation naming them, and "select all" for the page. Without this
 * script the ticks still post, and the server asks for the confirmation on a page. */
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("cancel-selected");
    var rows = document.getElementById("blotter-rows");
    if (!form || !rows) return;
    var button = document.getElementById("cancel-selected-button");
    var count = document.getElementById("selected-count");
    var all = document.getElementById("select-all");
    var confirmed = form.elements.confirmed;
    var selected = []; // order ids, in the order ticked

    function boxes() {
      return Array.prototype.slice.call(rows.querySelectorAll('input[type="checkbox"][name="order"]'));
    }

    function show() {
      var shown = boxes();
      button.disabled = selected.length === 0;
      count.textContent = selected.length ? selected.length + " selected" : "";
      form.setAttribute(
        "data-confirm",
        "Cancel " + selected.length + " order" + (selected.length === 1 ? "" : "s") + ": " +
          selected.map(function (id) { return "#" + id; }).join(", ") + "?"
      );
      if (all) {
        all.hidden = shown.length === 0;
        all.checked = shown.length > 0 && shown.every(function (box) { return box.checked; });
      }
    }

    /* After the live rows are replaced: tick again what is still selectable, and
     * forget what no longer is (cancelled, filled, or off this page). */
    function restore() {
      var present = {};
      boxes().forEach(function (box) {
        present[box.value] = true;
        box.checked = selected.indexOf(box.value) !== -1;
      });
      selected = selected.filter(function (id) { return present[id]; });
      show();
    }

    rows.addEventListener("change", function (event) {
      var box = event.target;
      if (!box.matches('input[type="checkbox"][name="order"]')) return;
      var at = selected.indexOf(box.value);
      if (box.checked && at === -1) selected.push(box.value);
      if (!box.checked && at !== -1) selected.splice(at, 1);
      show();
    });

    if (all) {
      all.addEventListener("change", function () {
        boxes().forEach(function (box) {
          box.checked = all.checked;
          var at = selected.indexOf(box.value);
          if (all.checked && at === -1) selected.push(box.value);
          if (!all.checked && at !== -1) selected.splice(at, 1);
        });
        show();
      });
    }

    // oms.js asks data-confirm's question first and stops the submit if declined.
    form.addEventListener("submit", function (event) {
      if (event.defaultPrevented) return;
      confirmed.value = "1"; // confirmed here: the server need not ask again
    });

    new MutationObserver(restore).observe(rows, { childList: true });
    boxes().forEach(function (box) { if (box.checked) selected.push(box.value); }); // a restored form
    show();
  });
})();
