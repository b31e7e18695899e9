// Quality bars for a product page: one bar group per contributing dataset (completeness, uniqueness,
// validity, consistency, freshness), read from the json_script block and drawn with Chart.js. A measure a
// dataset lacks (imported before it was measured, or freshness without a date column) has no bar.
(function () {
  "use strict";
  var COLOURS = {
    completeness: "#2f6fde", uniqueness: "#17a398", validity: "#8a5cd1", consistency: "#e08a1e", freshness: "#9aa5b8",
  };

  function percentOf(value) {
    return value === null || value === undefined ? null : Math.round(value * 1000) / 10;
  }

  function drawQuality(canvas) {
    var source = document.getElementById("quality-data");
    if (!source || typeof Chart === "undefined") return;
    var rows = JSON.parse(source.textContent);
    if (!Array.isArray(rows)) rows = [Object.assign({ label: "This dataset" }, rows)];
    var metrics = [["completeness", "Completeness"], ["uniqueness", "Uniqueness"], ["validity", "Validity"],
                   ["consistency", "Consistency"], ["freshness", "Freshness"]];
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: rows.map(function (row) { return row.label; }),
        datasets: metrics.map(function (metric) {
          return {
            label: metric[1],
            data: rows.map(function (row) { return percentOf(row[metric[0]]); }),
            backgroundColor: COLOURS[metric[0]],
            borderRadius: 4,
            maxBarThickness: 18,
          };
        }),
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: true, position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + ctx.parsed.x + " %"; } } },
        },
        scales: {
          x: { min: 0, max: 100, ticks: { callback: function (v) { return v + " %"; } } },
          y: { grid: { display: false } },
        },
      },
    });
  }
  document.querySelectorAll("canvas[data-chart=quality]").forEach(drawQuality);
})();
