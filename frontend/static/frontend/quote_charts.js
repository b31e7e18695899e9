// The quote's charts (Chart.js): the price by contribution class, the providers' overlap on the buyer's
// ids, and the split of the price among the providers. The data is the json_script block the quote's
// status partial renders (the same numbers as the tables under each chart, their text alternative); the
// partial is swapped in by htmx once the quote is priced, so drawing runs again after each swap.
// Amounts are cents of the marketplace's currency, shown in the page language's form.
(function () {
  "use strict";
  var PALETTE = ["#2f6fde", "#17a398", "#e0a100", "#c2417a", "#7a5cd6", "#5b8c2a", "#d9622b", "#3a8fb7"];
  var root = document.documentElement;
  var lang = root.lang || "en";
  var currency = root.dataset.currency || "USD";
  var moneyFormat = new Intl.NumberFormat(lang, { style: "currency", currency: currency });
  var countFormat = new Intl.NumberFormat(lang);

  function money(cents) { return moneyFormat.format(cents / 100); }
  function ids(count) { return interpolate(gettext("%s ids"), [countFormat.format(count)]); }

  function bar(canvas, labels, values, format) {
    return new Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ data: values, backgroundColor: PALETTE, borderRadius: 4, maxBarThickness: 22 }] },
      options: {
        indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: false },
                   tooltip: { callbacks: { label: function (ctx) { return format(ctx.parsed.x); } } } },
        scales: { x: { beginAtZero: true, ticks: { callback: function (v) { return format(v); } } },
                  y: { grid: { display: false } } },
      },
    });
  }

  function draw() {
    var source = document.getElementById("quote-chart-data");
    if (!source || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    document.querySelectorAll("#quote-charts canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      canvas.dataset.drawn = "1";
      var kind = canvas.dataset.chart;
      if (kind === "quote-price") {
        bar(canvas, data.price.map(function (p) { return p.label; }), data.price.map(function (p) { return p.cents; }), money);
      } else if (kind === "quote-overlap") {
        bar(canvas, data.overlap.map(function (o) { return o.label; }), data.overlap.map(function (o) { return o.ids; }), ids);
      } else if (kind === "quote-split") {
        new Chart(canvas, {
          type: "doughnut",
          data: { labels: data.split.map(function (s) { return s.label; }),
                  datasets: [{ data: data.split.map(function (s) { return s.cents; }), backgroundColor: PALETTE }] },
          options: { responsive: true, maintainAspectRatio: false, animation: false,
                     plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } },
                                tooltip: { callbacks: { label: function (ctx) {
                                  return interpolate(gettext("%(provider)s: %(amount)s"),
                                                     { provider: ctx.label, amount: money(ctx.parsed) }, true);
                                } } } } },
        });
      }
    });
  }

  draw();
  document.body.addEventListener("htmx:afterSettle", draw);
})();
