// The operator dashboard's charts: order value (bars) and orders (line) per day, and platform fees per day,
// over the last 30 days, read from the json_script block and drawn with Chart.js. Amounts arrive in integer
// cents and are shown in the marketplace's currency in the page's language; the same numbers are in the
// table below the charts, for readers without them.
(function () {
  "use strict";
  var source = document.getElementById("operator-daily");
  if (!source || typeof Chart === "undefined") return;
  var daily = JSON.parse(source.textContent);
  var root = document.documentElement;
  var lang = root.lang || "en";
  var currency = root.dataset.currency || "USD";
  var moneyFormat = new Intl.NumberFormat(lang, { style: "currency", currency: currency });
  var dayFormat = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric", timeZone: "UTC" });
  var labels = daily.days.map(function (iso) { return dayFormat.format(new Date(iso + "T00:00:00Z")); });

  function money(cents) { return moneyFormat.format(cents / 100); }

  function moneyTooltip(ctx) {
    return ctx.dataset.label + ": " + (ctx.dataset.yAxisID === "count" ? ctx.parsed.y : money(ctx.parsed.y * 100));
  }

  var common = {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    plugins: {
      legend: { display: true, position: "bottom", labels: { boxWidth: 12 } },
      tooltip: { callbacks: { label: moneyTooltip } },
    },
  };

  function moneyAxis() {
    return { beginAtZero: true, ticks: { callback: function (value) { return money(value * 100); } } };
  }

  var volume = document.querySelector("canvas[data-chart=operator-volume]");
  if (volume) {
    new Chart(volume, {
      data: {
        labels: labels,
        datasets: [
          { type: "bar", label: gettext("Order value"), yAxisID: "money", backgroundColor: "#2f6fde",
            borderRadius: 3, maxBarThickness: 14,
            data: daily.value.map(function (cents) { return cents / 100; }) },
          { type: "line", label: gettext("Orders"), yAxisID: "count", borderColor: "#e08a1e",
            backgroundColor: "#e08a1e", pointRadius: 2, tension: 0.2, data: daily.orders },
        ],
      },
      options: Object.assign({}, common, {
        scales: {
          x: { grid: { display: false } },
          money: Object.assign(moneyAxis(), { position: "left" }),
          count: { position: "right", beginAtZero: true, grid: { display: false }, ticks: { precision: 0 } },
        },
      }),
    });
  }

  var fees = document.querySelector("canvas[data-chart=operator-fees]");
  if (fees) {
    new Chart(fees, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [{ label: gettext("Platform fees"), yAxisID: "money", backgroundColor: "#17a398", borderRadius: 3,
                     maxBarThickness: 14, data: daily.fees.map(function (cents) { return cents / 100; }) }],
      },
      options: Object.assign({}, common, {
        scales: { x: { grid: { display: false } }, money: moneyAxis() },
      }),
    });
  }
})();
