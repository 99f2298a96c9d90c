// fimlake console: progressive enhancement only. Pages are complete without this file; it
// draws charts from their JSON data, keeps the query history in local storage, runs a query on
// Ctrl+Enter, keeps a page's parameters when the time range changes, and asks before deletes.
(function () {
  "use strict";
  var palette = ["#1f5fbf", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599", "#f08c00", "#495057", "#5c940d", "#a61e4d"];

  function chartData(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function stacked(values) {
    var sums = [];
    return values.map(function (v) {
      return v.map(function (x, i) { sums[i] = (sums[i] || 0) + (x || 0); return sums[i]; });
    });
  }

  function drawSeries(el, d) {
    var width = Math.max(el.clientWidth || 800, 300);
    var kind = d.kind || "timechart";
    var isStacked = kind === "stacked" || kind === "areachart";
    var values = d.series.map(function (s) { return s.values; });
    var ys = isStacked ? stacked(values) : values;
    var series = [{}];
    var order = d.series.map(function (s, i) { return i; });
    if (isStacked) { order.reverse(); }
    var data = [d.x];
    order.forEach(function (i) {
      var color = palette[i % palette.length];
      var s = { label: d.series[i].label || "(none)", stroke: color, width: 1.5, spanGaps: true };
      if (isStacked) {
        s.fill = color + "cc";
        if (kind === "stacked" && window.uPlot.paths && window.uPlot.paths.bars) {
          s.paths = window.uPlot.paths.bars({ size: [0.8, 60] });
        }
      }
      series.push(s);
      data.push(ys[i]);
    });
    // The y axis is as wide as its longest label (counts reach the millions).
    var yAxis = { size: function (u, values) {
      var longest = (values || []).reduce(function (m, v) { return Math.max(m, String(v).length); }, 1);
      return 16 + longest * 8;
    } };
    new window.uPlot({ width: width, height: 260, series: series, scales: { x: { time: true } }, axes: [{}, yAxis] },
      data, el);
  }

  function drawBars(el, d) {
    var width = Math.max(el.clientWidth || 800, 300);
    var xs = d.labels.map(function (_, i) { return i; });
    var series = [{}];
    var data = [xs];
    d.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: palette[i % palette.length], fill: palette[i % palette.length] + "cc",
        paths: window.uPlot.paths.bars({ size: [0.6, 80] }) });
      data.push(s.values);
    });
    new window.uPlot({ width: width, height: 260, series: series,
      scales: { x: { time: false } },
      axes: [{ values: function (u, splits) { return splits.map(function (v) { return d.labels[v] === undefined ? "" : d.labels[v]; }); } }, {}] },
      data, el);
  }

  function drawPie(el, d) {
    var ns = "http://www.w3.org/2000/svg";
    var values = d.series[0].values.map(function (v) { return Math.max(v || 0, 0); });
    var total = values.reduce(function (a, b) { return a + b; }, 0) || 1;
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 420 220");
    svg.setAttribute("class", "pie");
    svg.setAttribute("width", "420");
    var angle = -Math.PI / 2;
    values.forEach(function (v, i) {
      var a2 = angle + 2 * Math.PI * v / total;
      var large = a2 - angle > Math.PI ? 1 : 0;
      var p = document.createElementNS(ns, "path");
      var x1 = 110 + 100 * Math.cos(angle), y1 = 110 + 100 * Math.sin(angle);
      var x2 = 110 + 100 * Math.cos(a2), y2 = 110 + 100 * Math.sin(a2);
      p.setAttribute("d", values.length === 1 ? "M10,110a100,100 0 1,0 200,0a100,100 0 1,0 -200,0" :
        "M110,110L" + x1 + "," + y1 + "A100,100 0 " + large + ",1 " + x2 + "," + y2 + "Z");
      p.setAttribute("fill", palette[i % palette.length]);
      svg.appendChild(p);
      var t = document.createElementNS(ns, "text");
      t.setAttribute("x", "230");
      t.setAttribute("y", String(20 + i * 18));
      t.setAttribute("fill", palette[i % palette.length]);
      t.textContent = d.labels[i] + ": " + v;
      svg.appendChild(t);
      angle = a2;
    });
    el.appendChild(svg);
  }

  function drawCharts() {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var d = chartData(el.getAttribute("data-chart"));
      if (!d || !window.uPlot) { return; }
      el.innerHTML = "";
      if (d.kind === "piechart") { drawPie(el, d); }
      else if (d.labels) { drawBars(el, d); }
      else { drawSeries(el, d); }
      el.setAttribute("data-drawn", "1");
    });
  }

  var HISTORY_KEY = "fimlake.queryHistory";
  function history() {
    try { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (e) { return []; }
  }
  function remember(text) {
    var h = history().filter(function (q) { return q !== text; });
    h.unshift(text);
    localStorage.setItem(HISTORY_KEY, JSON.stringify(h.slice(0, 50)));
  }
  function showHistory(form) {
    var list = document.getElementById("history");
    var h = history();
    if (!list || h.length === 0) { return; }
    list.innerHTML = "";
    h.forEach(function (q) {
      var li = document.createElement("li");
      li.textContent = q.replace(/\s+/g, " ");
      li.title = q;
      li.addEventListener("click", function () { form.querySelector("textarea").value = q; });
      list.appendChild(li);
    });
  }

  function huntEditor() {
    var form = document.getElementById("hunt-form");
    if (!form) { return; }
    var area = form.querySelector("textarea");
    area.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", function () { if (area.value.trim()) { remember(area.value); } });
    showHistory(form);
  }

  // The range picker keeps the page's other parameters (filters), but not its cursor.
  function rangePicker() {
    document.querySelectorAll("form.range").forEach(function (form) {
      var params = new URLSearchParams(window.location.search);
      ["range", "from", "to", "after", "before", "page"].forEach(function (k) { params.delete(k); });
      params.forEach(function (value, key) {
        var input = document.createElement("input");
        input.type = "hidden"; input.name = key; input.value = value;
        form.appendChild(input);
      });
      var select = form.querySelector("select[name=range]");
      var custom = form.querySelectorAll("input[type=datetime-local]");
      function toggle() { custom.forEach(function (i) { i.disabled = select.value !== "custom"; }); }
      select.addEventListener("change", function () { toggle(); if (select.value !== "custom") { form.requestSubmit(); } });
      toggle();
    });
  }

  function confirmations() {
    document.querySelectorAll("[data-confirm]").forEach(function (b) {
      b.addEventListener("click", function (e) { if (!window.confirm(b.getAttribute("data-confirm"))) { e.preventDefault(); } });
    });
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
  }

  // Sections whose data takes longer than the page load afterwards (the page works without).
  function fragments() {
    document.querySelectorAll("[data-fragment]").forEach(function (el) {
      fetch(el.getAttribute("data-fragment"), { credentials: "same-origin" })
        .then(function (r) { return r.text().then(function (t) { return { ok: r.ok, text: t }; }); })
        .then(function (r) { el.innerHTML = r.text; el.setAttribute("data-loaded", r.ok ? "1" : "error"); })
        .catch(function (e) { el.setAttribute("data-loaded", "error: " + e); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    fragments();
    huntEditor();
    rangePicker();
    confirmations();
  });
})();
