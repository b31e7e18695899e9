// The buyer's spend per month on the orders page (Chart.js): net spend and refunds stacked, from the
// json_script block the page renders; amounts are cents, shown in the page's language and currency. The
// same numbers are in the table below the chart.
(function () {
  "use strict";
  var source = document.getElementById("order-spend-data");
  var canvas = document.getElementById("spend-chart");
  if (!source || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var root = document.documentElement;
  var money = new Intl.NumberFormat(root.lang || "en", {
    style: "currency", currency: root.dataset.currency || "USD",
  });
  function amount(cents) { return money.format(cents / 100); }

  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        { label: gettext("Net spend"), data: data.spent, backgroundColor: "#2f6fde", borderRadius: 4, maxBarThickness: 28 },
        { label: gettext("Refunded"), data: data.refunded, backgroundColor: "#9aa5b8", borderRadius: 4, maxBarThickness: 28 },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { display: true, position: "bottom", labels: { boxWidth: 12 } },
        tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + amount(ctx.parsed.y); } } },
      },
      scales: {
        x: { stacked: true, grid: { display: false } },
        y: { stacked: true, beginAtZero: true, ticks: { callback: function (value) { return amount(value); } } },
      },
    },
  });
})();
