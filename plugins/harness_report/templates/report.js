// Sortable tables and gallery filters. No framework, no network.
"use strict";
(function () {
  // Each distinct picture is embedded once (a JSON table of data URIs); cards refer to it by key.
  var table = document.getElementById("pictures");
  var pictures = table ? JSON.parse(table.textContent) : {};
  document.querySelectorAll("img[data-pic]").forEach(function (img) {
    img.src = pictures[img.dataset.pic];
  });

  // Click a header of a .sortable table: sort its rows by that column's data-sort
  // (or text); click again to reverse. Empty values always go last.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, index) {
      th.setAttribute("tabindex", "0");
      function sort() {
        var numeric = th.dataset.type === "num";
        var descending = th.getAttribute("aria-sort") === "ascending";
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        function value(row) {
          var cell = row.cells[index];
          var raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
          if (raw === "") return null;
          return numeric ? parseFloat(raw) : raw.toLowerCase();
        }
        rows.sort(function (a, b) {
          var va = value(a), vb = value(b);
          if (va === null && vb === null) return 0;
          if (va === null) return 1;
          if (vb === null) return -1;
          var order = va < vb ? -1 : va > vb ? 1 : 0;
          return descending ? -order : order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) { if (event.key === "Enter") sort(); });
    });
  });

  // Gallery filters: a card shows when it matches every chosen value.
  var filters = ["model", "category", "outcome"].map(function (name) {
    return { name: name, select: document.getElementById("filter-" + name) };
  });
  var cards = document.querySelectorAll(".card");
  var count = document.getElementById("gallery-count");
  function apply() {
    var shown = 0;
    cards.forEach(function (card) {
      var ok = filters.every(function (f) { return !f.select || !f.select.value || card.dataset[f.name] === f.select.value; });
      card.hidden = !ok;
      if (ok) shown += 1;
    });
    if (count) count.textContent = shown + " of " + cards.length + " cards";
  }
  filters.forEach(function (f) { if (f.select) f.select.addEventListener("change", apply); });
  apply();
})();
