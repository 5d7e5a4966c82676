(function () {
  "use strict";
  function sortTable(table, column, direction) {
    var header = table.tHead.rows[0].cells[column];
    var numeric = header.getAttribute("data-type") === "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].getAttribute("data-sort"), y = b.cells[column].getAttribute("data-sort");
      if (numeric && (x === "") !== (y === "")) { return x === "" ? 1 : -1; }  // n/a last, either way
      var order = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
      return direction === "ascending" ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", direction);
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.querySelector("button").addEventListener("click", function () {
        var next = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
        sortTable(table, column, next);
      });
    });
    table.setAttribute("data-sortable", "ready");
  });
  // index.html#sort=<column>[:asc|:desc] opens every table sorted by that column.
  var wanted = /sort=([a-z_]+)(?::(asc|desc))?/.exec(window.location.hash);
  if (wanted) {
    Array.prototype.forEach.call(tables, function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
        if (th.getAttribute("data-key") === wanted[1]) {
          sortTable(table, column, wanted[2] === "asc" ? "ascending" : "descending");
        }
      });
    });
  }
})();
