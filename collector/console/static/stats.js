// The statistics page's charts, drawn by chart.js (served by the console) from the JSON the page carries.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const font = {family: '"Noto Sans CJK SC", "Noto Sans SC", sans-serif', size: 13};
  Chart.defaults.font = font;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false;
  new Chart(document.getElementById("chart-satisfaction"), {
    type: "bar",
    data: {labels: data.labels, datasets: [{label: "满意度", data: data.satisfaction, backgroundColor: "#8f0d22"}]},
    options: {scales: {y: {min: 0, max: 100}}, plugins: {title: {display: true, text: "满意度"}}},
  });
  new Chart(document.getElementById("chart-grades"), {
    type: "bar",
    data: {labels: data.labels, datasets: [
      {label: "好评", data: data.good, backgroundColor: "#1a7f37"},
      {label: "中评", data: data.neutral, backgroundColor: "#d4a72c"},
      {label: "差评", data: data.bad, backgroundColor: "#c8102e"}]},
    options: {scales: {x: {stacked: true}, y: {stacked: true, ticks: {precision: 0}}},
              plugins: {title: {display: true, text: "好评、中评、差评（件）"}}},
  });
  new Chart(document.getElementById("chart-trend"), {
    data: {labels: data.days, datasets: [
      {type: "line", label: "满意度", data: data.day_satisfaction, borderColor: "#8f0d22", yAxisID: "y", spanGaps: true},
      {type: "bar", label: "差评", data: data.day_bad, backgroundColor: "#f2a7b1", yAxisID: "bad"}]},
    options: {scales: {y: {min: 0, max: 100, position: "left"},
                       bad: {position: "right", beginAtZero: true, ticks: {precision: 0}, grid: {drawOnChartArea: false}}},
              plugins: {title: {display: true, text: "每日满意度与差评"}}},
  });
  document.body.dataset.charts = "drawn";
})();
