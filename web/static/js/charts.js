// Metric charts drawn with uPlot (vendored): metric keys "family/series/quantity" become one panel
// per family and quantity with a line per series (a modality, or "fused"); every chart shades
// the training stages with the modality they train and marks epoch ends; the x axis is the step,
// the epoch or the wall time; lines can be smoothed (debiased EMA). New points are appended to
// the data a chart already holds.

import { duration, el, fmt } from "./api.js";

const FAMILIES = ["train", "val", "grad", "gm", "sam", "ogm"];
export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

// A colour "#rrggbb" at opacity `alpha`.
export function tint(color, alpha) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
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
  if (series === "fused" || series === "") return "#222222";
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
    tl.stages.forEach((st, i) => {
      if (st.start_step === null) return;
      const end = st.end_step === null ? st.start_step : st.end_step;
      const x0 = u.valToPos(xOf(view, st.start_step), "x", true);
      const x1 = u.valToPos(xOf(view, end), "x", true);
      const color = colorOf(st.modalities.length === 1 ? st.modalities[0] : "fused", view.modalities);
      c.fillStyle = tint(color, i % 2 ? 0.09 : 0.05);
      c.fillRect(x0, top, Math.max(0, x1 - x0), height);
      if (i > 0) {
        c.strokeStyle = "rgba(0,0,0,0.35)";
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
      c.strokeStyle = "rgba(0,0,0,0.08)";
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

// One chart: the keys of one quantity, a line per series; data per key in `store`.
export class Panel {
  constructor(def, view, store) {
    this.def = def;
    this.view = view;
    this.store = store; // key -> {steps, values, total}
    this.maxPoints = view.maxPoints;
    this.chart = null;
    this.note = el("span", { class: "muted small" });
    this.more = el("button", { type: "button", class: "small more", text: "more points" });
    this.box = el("div", { class: "chart" });
    this.node = el("div", { class: "chart-panel", dataset: { panel: def.id, keys: def.keys.join(",") } },
      el("div", { class: "chart-title" }, el("strong", { text: def.quantity }), " ", this.note, " ", this.more),
      this.box);
  }

  data() {
    const keys = this.def.keys.filter((k) => this.store.has(k));
    const all = new Set();
    for (const k of keys) for (const s of this.store.get(k).steps) all.add(s);
    const steps = [...all].sort((a, b) => a - b);
    const index = new Map(steps.map((s, i) => [s, i]));
    const lines = keys.map((k) => {
      const { steps: ks, values } = this.store.get(k);
      const line = new Array(steps.length).fill(null);
      const sm = smooth(values, this.view.smoothing);
      ks.forEach((s, i) => { line[index.get(s)] = sm[i]; });
      return line;
    });
    return { keys, data: [steps.map((s) => xOf(this.view, s)), ...lines] };
  }

  options(keys, width) {
    const view = this.view;
    return {
      width,
      height: 190,
      scales: { x: { time: false } },
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: xLabel(view), value: (u, v) => xText(view, v) },
        ...keys.map((k) => {
          const { series } = parseKey(k);
          return { label: series || k, stroke: colorOf(series, view.modalities), width: 1.5,
            spanGaps: true, points: { show: false }, value: (u, v) => fmt(v) };
        }),
      ],
      axes: [{ values: (u, splits) => splits.map((v) => xText(view, v)) }, { size: 56 }],
      plugins: [stagePlugin(view)],
    };
  }

  draw() {
    const { keys, data } = this.data();
    const drawn = keys.reduce((n, k) => n + this.store.get(k).steps.length, 0);
    const total = keys.reduce((n, k) => n + this.store.get(k).total, 0);
    this.note.textContent = `${drawn.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} points`;
    this.more.hidden = drawn >= total || this.maxPoints >= 10000;
    const last = keys.length ? Math.max(...keys.map((k) => this.store.get(k).steps.at(-1) ?? -1)) : -1;
    this.node.dataset.points = String(drawn);
    this.node.dataset.total = String(total);
    this.node.dataset.lastStep = String(last);
    if (!keys.length) return;
    const fresh = !this.chart || this.chart.series.length !== keys.length + 1;
    if (fresh) {
      if (this.chart) this.chart.destroy();
      this.chart = new uPlot(this.options(keys, this.box.clientWidth || 400), data, this.box);
    } else {
      this.chart.setData(data);
    }
    this.node.dataset.drawn = "1";
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
