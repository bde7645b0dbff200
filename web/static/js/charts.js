// Metric charts drawn with uPlot (vendored): metric keys "family/series/quantity" become one panel
// per family and quantity with a line per series (a modality, or "fused"); every chart shades
// the training stages with the modality they train and marks epoch ends; the x axis is the step,
// the epoch or the wall time; lines can be smoothed (debiased EMA). New points are appended to
// the data a chart already holds.
//
// For every page that draws lines (compare.js too): `alignLines` puts lines logged at different
// steps on one x axis and breaks a line where it has no point for a stretch (a stage of another
// modality) instead of joining across it; `theme` gives axes and text the page's colours (dark
// mode); `downloadBlob`, `csvText` and `chartPng` export what a chart draws; `explain` is the
// metric glossary's line for a key (the page's body carries igm_core/catalog/glossary.py's table).

import { duration, el, fmt } from "./api.js";

const FAMILIES = ["train", "val", "grad", "gm", "sam", "ogm"];
export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
// a stretch without a point of a line longer than this many times its median spacing is a break
export const GAP_FACTOR = 8;

// A colour "#rrggbb" at opacity `alpha`.
export function tint(color, alpha) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

// A custom property of the page's stylesheet (light or dark), e.g. cssVar("--fg").
export function cssVar(name, fallback = "") {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

// uPlot axes in the page's colours: [x axis, y axis] options to spread over a chart's own.
export function theme() {
  const fg = cssVar("--fg", "#1d2330");
  const grid = cssVar("--grid", "rgba(0,0,0,0.07)");
  const axis = { stroke: fg, grid: { stroke: grid }, ticks: { stroke: grid } };
  return [axis, { ...axis, size: 56 }];
}

let glossary = null;

// The glossary's line for a metric key or a panel id ("gm/min_gain"); "" when it has none.
export function explain(key) {
  if (glossary === null) {
    glossary = JSON.parse(document.body.dataset.glossary || "{}");
  }
  const parts = key.split("/");
  if (parts.length < 2) return "";
  const family = parts[0];
  const quantity = parts[parts.length - 1];
  return glossary[`${family}/${quantity}`] || glossary[`${family}/${quantity.split(".").pop()}`] || "";
}

export function parseKey(key) {
  const parts = key.split("/");
  if (parts.length >= 3) return { family: parts[0], series: parts[1], quantity: parts.slice(2).join("/") };
  if (parts.length === 2) return { family: parts[0], series: "", quantity: parts[1] };
  return { family: "other", series: "", quantity: key };
}

// {family: [{id, family, quantity, keys}]} in the order train, val, grad, gm, sam, ogm, others;
// test/ keys (one point at the end) are left to the results table.
export function layout(keys) {
  const panels = new Map();
  for (const key of keys) {
    const { family, quantity } = parseKey(key);
    if (family === "test") continue;
    const id = `${family}/${quantity}`;
    if (!panels.has(id)) panels.set(id, { id, family, quantity, keys: [] });
    panels.get(id).keys.push(key);
  }
  const rank = (f) => (FAMILIES.includes(f) ? FAMILIES.indexOf(f) : FAMILIES.length);
  const families = [...new Set([...panels.values()].map((p) => p.family))];
  families.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return families.map((family) => ({
    family,
    panels: [...panels.values()].filter((p) => p.family === family).sort((a, b) => a.quantity.localeCompare(b.quantity)),
  }));
}

export function colorOf(series, modalities) {
  if (series === "fused" || series === "") return cssVar("--fused", "#222222");
  const i = modalities.indexOf(series);
  if (i >= 0) return PALETTE[i % PALETTE.length];
  let h = 0;
  for (const c of series) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

// Linear interpolation of x over (xp, fp), extended past both ends with the nearest slope.
function interp(x, xp, fp) {
  const n = xp.length;
  if (n === 0) return x;
  if (n === 1) return fp[0] + (x - xp[0]);
  let lo = 0;
  let hi = n - 1;
  if (x <= xp[0]) hi = 1;
  else if (x >= xp[n - 1]) lo = n - 2;
  else {
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xp[mid] <= x) lo = mid;
      else hi = mid;
    }
  }
  const span = xp[hi] - xp[lo];
  return span ? fp[lo] + ((x - xp[lo]) * (fp[hi] - fp[lo])) / span : fp[lo];
}

// The x value of a step under the view's x mode ("step", "epoch" or "wall").
export function xOf(view, step) {
  const tl = view.timeline;
  if (view.xMode === "epoch" && tl && tl.steps_per_epoch) {
    const ends = [0, ...tl.epoch_end_steps];
    return interp(step, ends, ends.map((_, i) => i));
  }
  if (view.xMode === "wall" && tl && tl.clock.steps.length > 1) {
    return interp(step, tl.clock.steps, tl.clock.seconds);
  }
  return step;
}

// The step of an x value: xOf's inverse (x modes are increasing in the step).
export function stepOf(view, x) {
  const tl = view.timeline;
  if (view.xMode === "epoch" && tl && tl.steps_per_epoch) {
    const ends = [0, ...tl.epoch_end_steps];
    return interp(x, ends.map((_, i) => i), ends);
  }
  if (view.xMode === "wall" && tl && tl.clock.steps.length > 1) {
    return interp(x, tl.clock.seconds, tl.clock.steps);
  }
  return x;
}

function xLabel(view) {
  return { step: "step", epoch: "epoch", wall: "wall time" }[view.xMode] || "step";
}

function xText(view, v) {
  if (v === null || v === undefined) return "–";
  if (view.xMode === "wall") return duration(v);
  if (view.xMode === "epoch") return v.toFixed(2);
  return Math.round(v).toLocaleString("en-US");
}

export function smooth(values, weight) {
  if (!weight) return values;
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return null;
    last = last * weight + (1 - weight) * v;
    n += 1;
    return last / (1 - weight ** n);
  });
}

function median(xs) {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

// uPlot data for lines ({steps, values}) logged at different steps, on the union of their steps.
// Between two points of a line its value is `undefined` (uPlot draws straight across) unless the
// stretch is a gap: longer than GAP_FACTOR times the line's median spacing, or holding what
// `breakAt(lineIndex, s0, s1)` says a line must not cross (a stage of another modality); inside
// a gap it is `null` (uPlot leaves the stretch out), with a step of its own in the middle when no
// other line has one there. Returns {steps, lines, real}: real[i] is false for such added steps.
export function alignLines(lines, { breakAt } = {}) {
  const all = new Set();
  for (const line of lines) for (const s of line.steps) all.add(s);
  const gaps = lines.map((line, j) => {
    const { steps } = line;
    const spacing = median(steps.slice(1).map((s, i) => s - steps[i]));
    const out = [];
    for (let i = 1; i < steps.length; i += 1) {
      const [s0, s1] = [steps[i - 1], steps[i]];
      if (s1 - s0 > GAP_FACTOR * spacing || (breakAt && breakAt(j, s0, s1))) out.push([s0, s1]);
    }
    return out;
  });
  const real = new Set(all);
  for (const list of gaps) for (const [s0, s1] of list) all.add((s0 + s1) / 2);
  const steps = [...all].sort((a, b) => a - b);
  const index = new Map(steps.map((s, i) => [s, i]));
  const out = lines.map((line, j) => {
    const values = new Array(steps.length).fill(undefined);
    line.steps.forEach((s, i) => { values[index.get(s)] = line.values[i]; });
    // uPlot leaves out the stretch between the points around a run of nulls: all of the gap
    for (const [s0, s1] of gaps[j]) for (let k = index.get(s0) + 1; k < index.get(s1); k += 1) values[k] = null;
    return values;
  });
  return { steps, lines: out, real: steps.map((s) => real.has(s)) };
}

// A stage-aware rule for alignLines: a line of modality `series` breaks across a stage that does
// not train it and where it has no point (the steps of a stage are start_step + 1 .. end_step:
// a validation point at a stage's last step belongs to it, so lines logged at every epoch's end
// are never broken; the series "fused" breaks across a stage of one modality).
export function stageBreaks(timeline, seriesOf) {
  const stages = (timeline && timeline.stages) || [];
  return (j, s0, s1) => {
    const series = seriesOf(j);
    return stages.some((st) => {
      if (st.start_step === null || st.end_step === null || st.end_step <= st.start_step) return false;
      const trains = series === "fused" ? st.modalities.length > 1 : st.modalities.includes(series);
      return !trains && s0 <= st.start_step && s1 > st.end_step;
    });
  };
}

// ------------------------------------------------------------------------------ export

export function downloadBlob(blob, name) {
  const link = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function csvCell(v) {
  if (v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v))) return "";
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// CSV of a header row and rows of cells.
export function csvText(header, rows) {
  return [header, ...rows].map((r) => r.map(csvCell).join(",")).join("\n") + "\n";
}

// A PNG of a uPlot chart on the page's background, with a title and the series' names.
export function chartPng(chart, title) {
  const canvas = chart.ctx.canvas;
  const dpr = window.devicePixelRatio || 1;
  const head = Math.round(40 * dpr);
  const out = document.createElement("canvas");
  out.width = canvas.width;
  out.height = canvas.height + head;
  const c = out.getContext("2d");
  c.fillStyle = cssVar("--panel", "#ffffff");
  c.fillRect(0, 0, out.width, out.height);
  c.fillStyle = cssVar("--fg", "#1d2330");
  c.font = `bold ${13 * dpr}px sans-serif`;
  c.fillText(title, 8 * dpr, 16 * dpr);
  c.font = `${11 * dpr}px sans-serif`;
  let x = 8 * dpr;
  chart.series.slice(1).forEach((s) => {
    if (!s.show || s.label === "lo" || s.label === "hi") return;
    c.fillStyle = typeof s.stroke === "function" ? s.stroke(chart, 1) : s.stroke || "#000";
    c.fillRect(x, 25 * dpr, 10 * dpr, 10 * dpr);
    c.fillStyle = cssVar("--fg", "#1d2330");
    c.fillText(String(s.label), x + 14 * dpr, 34 * dpr);
    x += (22 + 7 * String(s.label).length) * dpr;
  });
  c.drawImage(canvas, 0, head);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

// ------------------------------------------------------------------------------ one panel

function stagePlugin(view) {
  function draw(u) {
    const tl = view.timeline;
    if (!tl) return;
    const c = u.ctx;
    const { left, top, width, height } = u.bbox;
    const dpr = window.devicePixelRatio || 1;
    c.save();
    c.beginPath();
    c.rect(left, top, width, height);
    c.clip();
    c.font = `${10 * dpr}px sans-serif`;
    const edge = cssVar("--stage-edge", "rgba(0,0,0,0.35)");
    tl.stages.forEach((st, i) => {
      if (st.start_step === null) return;
      const end = st.end_step === null ? st.start_step : st.end_step;
      const x0 = u.valToPos(xOf(view, st.start_step), "x", true);
      const x1 = u.valToPos(xOf(view, end), "x", true);
      const color = colorOf(st.modalities.length === 1 ? st.modalities[0] : "fused", view.modalities);
      c.fillStyle = color.startsWith("#") ? tint(color, i % 2 ? 0.09 : 0.05) : "rgba(128,128,128,0.06)";
      c.fillRect(x0, top, Math.max(0, x1 - x0), height);
      if (i > 0) {
        c.strokeStyle = edge;
        c.setLineDash([4 * dpr, 3 * dpr]);
        c.beginPath();
        c.moveTo(x0, top);
        c.lineTo(x0, top + height);
        c.stroke();
      }
      c.fillStyle = color;
      c.fillText(st.modalities.join("+"), Math.max(x0, left) + 3 * dpr, top + 11 * dpr);
    });
    if (tl.epoch_end_steps.length < 200) {
      c.strokeStyle = cssVar("--grid", "rgba(0,0,0,0.08)");
      c.setLineDash([]);
      for (const s of tl.epoch_end_steps) {
        const x = u.valToPos(xOf(view, s), "x", true);
        c.beginPath();
        c.moveTo(x, top);
        c.lineTo(x, top + height);
        c.stroke();
      }
    }
    c.restore();
  }
  return { hooks: { drawClear: [draw] } };
}

// One chart: the keys of one quantity, a line per series; data per key in `store`. The view holds
// what every panel shares: x mode, smoothing, zoom (in steps; null: everything), the panels drawn
// on a log scale, and onZoom(range) that a drag (a range) or a double click (null) calls.
export class Panel {
  constructor(def, view, store) {
    this.def = def;
    this.view = view;
    this.store = store; // key -> {steps, values, total}
    this.maxPoints = view.maxPoints;
    this.chart = null;
    this.drawnData = null;
    this.note = el("span", { class: "muted small" });
    this.more = el("button", { type: "button", class: "small more", text: "more points" });
    this.logButton = el("button", { type: "button", class: "small log-y", text: "log y", "aria-pressed": "false",
      title: "logarithmic y axis (points at or below 0 are left out)" });
    this.pngButton = el("button", { type: "button", class: "small png", text: "PNG", title: "download this chart as PNG" });
    this.csvButton = el("button", { type: "button", class: "small csv", text: "CSV", title: "download the points drawn as CSV" });
    this.box = el("div", { class: "chart" });
    const words = explain(def.id);
    this.node = el("div", { class: "chart-panel", dataset: { panel: def.id, keys: def.keys.join(",") } },
      el("div", { class: "chart-title" }, el("strong", { text: def.quantity, title: words || def.id }), " ", this.note, " ",
        this.more, el("span", { class: "chart-tools" }, this.logButton, this.pngButton, this.csvButton)),
      words ? el("p", { class: "chart-help", text: words }) : null,
      this.box);
    this.logButton.addEventListener("click", () => view.onLogY(def.id, !this.logY()));
    this.pngButton.addEventListener("click", () => this.downloadPng());
    this.csvButton.addEventListener("click", () => this.downloadCsv());
  }

  logY() {
    return this.view.logY.has(this.def.id);
  }

  // {keys, data, real, hidden}: uPlot data with lines broken across their gaps; under log y the
  // points at or below 0 are left out (counted in hidden).
  data() {
    const keys = this.def.keys.filter((k) => this.store.has(k));
    const series = keys.map((k) => parseKey(k).series);
    const lines = keys.map((k) => {
      const { steps, values } = this.store.get(k);
      return { steps, values: smooth(values, this.view.smoothing) };
    });
    const aligned = alignLines(lines, { breakAt: stageBreaks(this.view.timeline, (j) => series[j]) });
    let hidden = 0;
    if (this.logY()) {
      for (const line of aligned.lines) {
        line.forEach((v, i) => {
          if (typeof v === "number" && !(v > 0)) { line[i] = null; hidden += 1; }
        });
      }
    }
    const xs = aligned.steps.map((s) => xOf(this.view, s));
    return { keys, data: [xs, ...aligned.lines], steps: aligned.steps, real: aligned.real, hidden };
  }

  options(keys, width) {
    const view = this.view;
    const [xAxis, yAxis] = theme();
    return {
      width,
      height: 190,
      scales: { x: { time: false }, y: this.logY() ? { distr: 3 } : {} },
      legend: { live: true },
      cursor: { drag: { x: true, y: false, setScale: false } },
      series: [
        { label: xLabel(view), value: (u, v) => xText(view, v) },
        ...keys.map((k) => {
          const { series } = parseKey(k);
          // points are drawn where they are sparse (uPlot's default): a lone point stays visible
          return { label: series || k, stroke: colorOf(series, view.modalities), width: 1.5,
            spanGaps: false, value: (u, v) => fmt(v) };
        }),
      ],
      axes: [{ ...xAxis, values: (u, splits) => splits.map((v) => xText(view, v)) }, yAxis],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 2) return;
          const lo = u.posToVal(u.select.left, "x");
          const hi = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          view.onZoom({ min: stepOf(view, lo), max: stepOf(view, hi) });
        }],
      },
      plugins: [stagePlugin(view)],
    };
  }

  // The view's zoom on this chart (its whole x range when there is none).
  applyZoom() {
    const u = this.chart;
    if (!u) return;
    const xs = u.data[0];
    const z = this.view.zoom;
    const min = z ? xOf(this.view, z.min) : xs[0];
    const max = z ? xOf(this.view, z.max) : xs[xs.length - 1];
    if (min === undefined || max === undefined || !(max > min)) return;
    u.setScale("x", { min, max });
    this.node.dataset.zoom = z ? `${z.min}:${z.max}` : "";
  }

  draw() {
    const { keys, data, steps, real, hidden } = this.data();
    const drawn = keys.reduce((n, k) => n + this.store.get(k).steps.length, 0);
    const total = keys.reduce((n, k) => n + this.store.get(k).total, 0);
    this.note.textContent = `${drawn.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} points` +
      (hidden ? ` (${hidden} at or below 0 left out of the log scale)` : "");
    this.more.hidden = drawn >= total || this.maxPoints >= 10000;
    const last = keys.length ? Math.max(...keys.map((k) => this.store.get(k).steps.at(-1) ?? -1)) : -1;
    this.node.dataset.points = String(drawn);
    this.node.dataset.total = String(total);
    this.node.dataset.lastStep = String(last);
    // how many stretches are left out: a run of nulls in a line is one
    this.node.dataset.breaks = String(data.slice(1).reduce((n, line) =>
      n + line.filter((v, i) => v === null && line[i - 1] !== null).length, 0));
    this.node.dataset.logY = this.logY() ? "1" : "";
    this.logButton.setAttribute("aria-pressed", String(this.logY()));
    if (!keys.length) return;
    this.drawnData = { keys, data, steps, real };
    const fresh = !this.chart || this.chart.series.length !== keys.length + 1;
    if (fresh) {
      if (this.chart) this.chart.destroy();
      this.chart = new uPlot(this.options(keys, this.box.clientWidth || 400), data, this.box);
      this.chart.over.addEventListener("dblclick", () => this.view.onZoom(null));
      this.node.uplot = this.chart; // for tests and the console: the chart as drawn
    } else {
      this.chart.setData(data);
    }
    this.applyZoom(); // after setData, which fits the x axis to the data again
    this.node.dataset.drawn = "1";
  }

  // The points drawn, one row per step a line has a point at: step, the x value when the x axis
  // is not the step, then each key's value as drawn (smoothed when smoothing is on).
  csv() {
    const { keys, data, steps, real } = this.drawnData;
    const byStep = this.view.xMode === "step";
    const header = ["step", ...(byStep ? [] : [xLabel(this.view)]), ...keys];
    const rows = [];
    steps.forEach((s, i) => {
      if (!real[i]) return;
      rows.push([s, ...(byStep ? [] : [data[0][i]]), ...data.slice(1).map((line) => line[i])]);
    });
    return csvText(header, rows);
  }

  fileName(ext) {
    return `${this.view.name || "experiment"}-${this.def.id.replace(/[^A-Za-z0-9_.-]+/g, "_")}.${ext}`;
  }

  downloadCsv() {
    if (!this.drawnData) return;
    downloadBlob(new Blob([this.csv()], { type: "text/csv" }), this.fileName("csv"));
  }

  async downloadPng() {
    if (!this.chart) return;
    downloadBlob(await chartPng(this.chart, this.def.id), this.fileName("png"));
  }

  resize() {
    if (this.chart) this.chart.setSize({ width: this.box.clientWidth || 400, height: 190 });
  }

  redrawFromScratch() {
    if (this.chart) this.chart.destroy();
    this.chart = null;
    this.draw();
  }
}
