// The catalog's compare bar. Ticking products works without this script: each card's checkbox belongs to
// the compare form (its form attribute), a plain GET to /products/compare/?id=..&id=..; the script only
// says, as boxes are ticked, how many are and whether that many can be compared.
(function () {
  "use strict";
  var form = document.getElementById("compare-form");
  var status = document.getElementById("compare-count");
  if (!form || !status) return;
  var least = Number(form.dataset.least || 2);
  var most = Number(form.dataset.most || 4);

  function ticked() {
    return Array.prototype.filter.call(form.elements, function (box) { return box.name === "id" && box.checked; }).length;
  }

  function update() {
    var count = ticked();
    if (!count) {
      status.textContent = "";
    } else if (count < least || count > most) {
      status.textContent = interpolate(gettext("%(count)s ticked: choose %(least)s to %(most)s."),
                                       { count: count, least: least, most: most }, true);
    } else {
      status.textContent = interpolate(gettext("%(count)s ticked: ready to compare."), { count: count }, true);
    }
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.getAttribute && event.target.getAttribute("form") === "compare-form") update();
  });
  update();
})();
