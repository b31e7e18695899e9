// Quality bars for a product page: one bar group per contributing dataset (completeness, uniqueness,
// validity, consistency, freshness), read from the json_script block and drawn with Chart.js. A measure a
// dataset lacks (imported before it was measured, or freshness without a date column) has no bar.
// Series charts (canvas[data-chart=series], below): bars and lines over labels, e.g. a provider's sales.
(function () {
  "use strict";
  var COLOURS = {
    completeness: "#2f6fde", uniqueness: "#17a398", validity: "#8a5cd1", consistency: "#e08a1e", freshness: "#9aa5b8",
  };

  var percentFormat = new Intl.NumberFormat(document.documentElement.lang || "en",
                                            { style: "percent", maximumFractionDigits: 1 });
  function percentText(value) { return percentFormat.format(value / 100); }

  function percentOf(value) {
    return value === null || value === undefined ? null : Math.round(value * 1000) / 10;
  }

  function drawQuality(canvas) {
    var source = document.getElementById("quality-data");
    if (!source || typeof Chart === "undefined") return;
    var rows = JSON.parse(source.textContent);
    if (!Array.isArray(rows)) rows = [Object.assign({ label: gettext("This dataset") }, rows)];
    var metrics = [["completeness", gettext("Completeness")], ["uniqueness", gettext("Uniqueness")],
                   ["validity", gettext("Validity")], ["consistency", gettext("Consistency")],
                   ["freshness", gettext("Freshness")]];
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
          tooltip: { callbacks: { label: function (ctx) {
            return interpolate(gettext("%(measure)s: %(value)s"), { measure: ctx.dataset.label, value: percentText(ctx.parsed.x) }, true);
          } } },
        },
        scales: {
          x: { min: 0, max: 100, ticks: { callback: function (v) { return percentText(v); } } },
          y: { grid: { display: false } },
        },
      },
    });
  }
  document.querySelectorAll("canvas[data-chart=quality]").forEach(drawQuality);

  // Series charts (the provider's sales and grant usage): <canvas data-chart="series" data-source="ID"
  // data-series="KEY"> reads {labels, horizontal, datasets: [{label, data, format: "money"|"count",
  // type: "bar"|"line", axis: "right"}]} from the json_script block ID (its KEY entry). Money is in cents,
  // shown in the marketplace's currency in the page's language.
  var SERIES_COLOURS = ["#2f6fde", "#e08a1e", "#17a398", "#8a5cd1", "#9aa5b8"];
  var lang = document.documentElement.lang || "en";
  var currency = document.documentElement.dataset.currency || "USD";
  var moneyFormat = new Intl.NumberFormat(lang, { style: "currency", currency: currency });
  var countFormat = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });

  function formatted(format, value) {
    return format === "money" ? moneyFormat.format(value / 100) : countFormat.format(value);
  }

  function drawSeries(canvas) {
    var source = document.getElementById(canvas.dataset.source || "");
    if (!source || typeof Chart === "undefined" || canvas.dataset.drawn) return;
    var spec = JSON.parse(source.textContent);
    if (canvas.dataset.series) spec = spec[canvas.dataset.series];
    if (!spec || !spec.datasets) return;
    canvas.dataset.drawn = "1";
    var horizontal = Boolean(spec.horizontal);
    var value = horizontal ? "x" : "y";
    var scales = {};
    scales[horizontal ? "y" : "x"] = { grid: { display: false } };
    spec.datasets.forEach(function (series) {
      var axis = series.axis === "right" ? "y1" : value;
      if (scales[axis]) return;
      scales[axis] = {
        beginAtZero: true,
        position: axis === "y1" ? "right" : undefined,
        grid: { display: axis !== "y1" },
        ticks: { precision: 0, callback: function (v) { return formatted(series.format, v); } },
      };
    });
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (series, index) {
          var colour = SERIES_COLOURS[index % SERIES_COLOURS.length];
          var dataset = { label: series.label, data: series.data, type: series.type || "bar",
                          backgroundColor: colour, borderColor: colour, borderRadius: 4, maxBarThickness: 28 };
          if (series.axis === "right") dataset.yAxisID = "y1";
          return dataset;
        }),
      },
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: true, position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: { label: function (ctx) {
            var series = spec.datasets[ctx.datasetIndex];
            return interpolate(gettext("%(series)s: %(value)s"),
                               { series: series.label, value: formatted(series.format, ctx.parsed[value]) }, true);
          } } },
        },
        scales: scales,
      },
    });
  }
  document.querySelectorAll("canvas[data-chart=series]").forEach(drawSeries);
})();
