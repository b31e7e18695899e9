// Usage over time on the audit page: jobs started, succeeded and failed per day (bars) and the grant charges
// made on chain before data was touched (a line), read from the json_script block and drawn with Chart.js.
// The same numbers are in the table beside the chart, for readers without it.
(function () {
  "use strict";
  var SERIES = [
    ["started", gettext("Jobs started"), "#2f6fde", "bar"],
    ["succeeded", gettext("Jobs succeeded"), "#17a398", "bar"],
    ["failed", gettext("Jobs failed"), "#d1495b", "bar"],
    ["charges", gettext("Grant charges on chain"), "#8a5cf6", "line"],
  ];

  function drawUsage(canvas) {
    var source = document.getElementById("usage-data");
    if (!source || typeof Chart === "undefined") return;
    var usage = JSON.parse(source.textContent);
    new Chart(canvas, {
      data: {
        labels: usage.days,
        datasets: SERIES.map(function (series) {
          return {
            type: series[3], label: series[1], data: usage[series[0]], backgroundColor: series[2],
            borderColor: series[2], borderRadius: 3, maxBarThickness: 14, pointRadius: 2, tension: 0.2,
          };
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: true, position: "bottom", labels: { boxWidth: 12 } } },
        scales: { x: { grid: { display: false } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }
  document.querySelectorAll("canvas[data-chart=usage]").forEach(drawUsage);
})();
