// Quality bars for a product page: reads the metrics from the json_script block, draws with Chart.js.
(function () {
  "use strict";
  function drawQuality(canvas) {
    var source = document.getElementById("quality-data");
    if (!source || typeof Chart === "undefined") return;
    var quality = JSON.parse(source.textContent);
    var labels = ["Completeness", "Uniqueness"];
    var values = [quality.completeness, quality.uniqueness].map(function (v) {
      return v === null || v === undefined ? 0 : Math.round(v * 1000) / 10;
    });
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [{ data: values, backgroundColor: ["#2f6fde", "#17a398"], borderRadius: 4, barThickness: 22 }],
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (ctx) { return ctx.parsed.x + " %"; } } },
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
