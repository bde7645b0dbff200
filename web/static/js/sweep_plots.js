// The sweep page's plots, drawn with uPlot (vendored): a colour scale for a chosen key, a scatter
// of one value against an accuracy (a point per experiment, one uPlot series per colour), and
// parallel coordinates (an axis per key, each scaled to its range; a line per experiment).

import { fmt } from "./api.js";
import { PALETTE, cssVar, theme } from "./charts.js";

// colour stops of a perceptually even ramp (viridis), low to high
const RAMP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
const NONE = { label: "(no value)", color: "#98a2b3" };
const BINS = 6;
const MAX_CATEGORIES = 8;

function mix(a, b, t) {
  const c = (h, i) => parseInt(h.slice(i, i + 2), 16);
  const v = [1, 3, 5].map((i) => Math.round(c(a, i) + (c(b, i) - c(a, i)) * t));
  return `#${v.map((x) => x.toString(16).padStart(2, "0")).join("")}`;
}

function ramp(t) {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  return mix(RAMP[i], RAMP[i + 1], x - i);
}

export function shownValue(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return fmt(v);
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function byValue(a, b) {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return shownValue(a).localeCompare(shownValue(b));
}

// The distinct values of `values` (no nulls), in order.
export function categories(values) {
  const seen = new Map();
  for (const v of values) if (v !== null && v !== undefined) seen.set(JSON.stringify(v), v);
  return [...seen.values()].sort(byValue);
}

// {groups: [{label, color}], group(v) -> index}: up to MAX_CATEGORIES distinct values each get a
// colour (numbers along the ramp, the rest from the palette); more numbers fall in BINS even bins.
export function colorScale(values) {
  const cats = categories(values);
  const numeric = cats.length > 0 && cats.every((v) => typeof v === "number");
  let groups;
  let group;
  if (numeric && cats.length > MAX_CATEGORIES) {
    const lo = cats[0];
    const hi = cats[cats.length - 1];
    const step = (hi - lo) / BINS;
    groups = Array.from({ length: BINS }, (_, i) => ({
      label: `${fmt(lo + i * step)} – ${fmt(lo + (i + 1) * step)}`,
      color: ramp((i + 0.5) / BINS),
    }));
    group = (v) => (typeof v === "number" ? Math.min(BINS - 1, Math.floor((v - lo) / step)) : BINS);
  } else {
    const index = new Map(cats.map((v, i) => [JSON.stringify(v), i]));
    groups = cats.map((v, i) => ({
      label: shownValue(v),
      color: numeric ? ramp(cats.length > 1 ? i / (cats.length - 1) : 0.5) : PALETTE[i % PALETTE.length],
    }));
    group = (v) => (v === null || v === undefined ? groups.length : index.get(JSON.stringify(v)));
  }
  return { groups: [...groups, NONE], group };
}

// Whether numbers are all positive and span a decade or more (a log axis shows them best).
export function wide(values) {
  const xs = values.filter((v) => typeof v === "number");
  return xs.length > 1 && Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 10;
}

// An axis for the values of one key: numbers (log-scaled when asked) or categories at 0..n-1.
export function axisOf(values, log) {
  const cats = categories(values);
  const numeric = cats.length > 0 && cats.every((v) => typeof v === "number");
  if (numeric) {
    const useLog = log && cats[0] > 0;
    return { numeric: true, log: useLog, cats, pos: (v) => (typeof v === "number" ? v : null) };
  }
  const index = new Map(cats.map((v, i) => [JSON.stringify(v), i]));
  return { numeric: false, log: false, cats,
    pos: (v) => (v === null || v === undefined ? null : index.get(JSON.stringify(v))) };
}

const pctAxis = (u, splits) => splits.map((v) => `${(100 * v).toFixed(0)}%`);

// an x range a little wider than the data, so that points at its ends are drawn whole
function padded(log) {
  return (u, lo, hi) => {
    if (lo === null) return [0, 1];
    if (log) return [lo / 1.3, hi * 1.3];
    const span = hi - lo || Math.abs(hi) || 1;
    return [lo - 0.05 * span, hi + 0.05 * span];
  };
}

// A scatter of points [{x, y, group}] (x: a position on `axis`) in `box`, drawn in uPlot's
// scatter mode (a series per colour, each its own x and y arrays, so equal x values are all
// drawn); `hover(point|null)` follows the pointer, `open(point)` runs on a click. Returns the
// uPlot instance.
export function scatter(box, { points, axis, groups, xLabel, yLabel, hover, open }) {
  const byGroup = groups.map((_, g) => points.filter((p) => p.group === g));
  const data = [null, ...byGroup.map((ps) => [ps.map((p) => p.x), ps.map((p) => p.y)])];
  const cats = axis.cats.map(shownValue);
  const opts = {
    mode: 2,
    width: box.clientWidth || 480,
    height: 300,
    legend: { show: false },
    cursor: { show: false },
    scales: {
      x: axis.numeric ? { time: false, distr: axis.log ? 3 : 1, range: padded(axis.log) }
        : { time: false, range: [-0.5, cats.length - 0.5] },
      y: { range: (u, lo, hi) => (lo === null ? [0, 1] : [Math.max(0, lo - 0.03), Math.min(1, hi + 0.03)]) },
    },
    series: [{}, ...groups.map((g) => ({
      label: g.label, stroke: g.color, fill: g.color, paths: uPlot.paths.points(),
      points: { show: false, size: 9, width: 1 },
      facets: [{ scale: "x", auto: true }, { scale: "y", auto: true }],
    }))],
    axes: [
      axis.numeric ? { ...theme()[0], label: xLabel } : { ...theme()[0], label: xLabel,
        splits: () => cats.map((_, i) => i), values: (u, splits) => splits.map((v) => cats[v] ?? "") },
      { ...theme()[1], label: yLabel, values: pctAxis },
    ],
  };
  const plot = new uPlot(opts, data, box);
  // the point nearest the pointer, within 12 CSS pixels
  const nearest = (event) => {
    let best = null;
    let dist = 144;
    for (const p of points) {
      const dx = plot.valToPos(p.x, "x") - event.offsetX;
      const dy = plot.valToPos(p.y, "y") - event.offsetY;
      if (dx * dx + dy * dy < dist) [best, dist] = [p, dx * dx + dy * dy];
    }
    return best;
  };
  plot.over.addEventListener("mousemove", (event) => hover(nearest(event)));
  plot.over.addEventListener("mouseleave", () => hover(null));
  plot.over.addEventListener("click", (event) => {
    const p = nearest(event);
    if (p) open(p);
  });
  return plot;
}

// Parallel coordinates: `axes` [{name, axis, text(value)}] and `lines` [{values: one per axis,
// color}]; each axis is labelled with its ends (numbers) or its values (categories).
export function parallel(box, { axes, lines }) {
  const norms = axes.map(({ axis }) => {
    const pos = axis.cats.map((v) => axis.pos(v));
    const f = (x) => (axis.log ? Math.log10(x) : x);
    const lo = Math.min(...pos.map(f));
    const hi = Math.max(...pos.map(f));
    return (v) => {
      const p = axis.pos(v);
      if (p === null || p === undefined) return null;
      return hi > lo ? (f(p) - lo) / (hi - lo) : 0.5;
    };
  });
  const data = [axes.map((_, i) => i), ...lines.map((l) => l.values.map((v, i) => norms[i](v)))];
  function drawAxes(u) {
    const c = u.ctx;
    const dpr = window.devicePixelRatio || 1;
    c.save();
    c.font = `${10 * dpr}px sans-serif`;
    c.fillStyle = cssVar("--fg", "#344054");
    c.strokeStyle = cssVar("--muted", "rgba(0,0,0,0.45)");
    c.textAlign = "right";
    axes.forEach(({ axis, text }, i) => {
      const x = u.valToPos(i, "x", true);
      c.beginPath();
      c.moveTo(x, u.valToPos(0, "y", true));
      c.lineTo(x, u.valToPos(1, "y", true));
      c.stroke();
      // a grid's few values each; the ends of a range or of a metric (`text` formats one)
      const ends = axis.numeric && (axis.cats.length > 6 || text);
      const ticks = ends ? [axis.cats[0], axis.cats[axis.cats.length - 1]] : axis.cats;
      for (const v of ticks.slice(0, 12)) {
        const y = norms[i](v);
        if (y !== null) c.fillText((text || shownValue)(v), x - 4 * dpr, u.valToPos(y, "y", true) + 4 * dpr);
      }
    });
    c.restore();
  }
  const names = axes.map((a) => a.name);
  const opts = {
    width: box.clientWidth || 900,
    height: 320,
    legend: { show: false },
    cursor: { show: false },
    scales: { x: { time: false, range: [-0.25, axes.length - 0.75] }, y: { range: [-0.06, 1.08] } },
    series: [{}, ...lines.map((l) => ({ stroke: l.color, width: 1.4, points: { show: false } }))],
    axes: [{ ...theme()[0], splits: () => names.map((_, i) => i), values: (u, splits) => splits.map((v) => names[v] ?? "") },
      { show: false }],
    hooks: { draw: [drawAxes] },
  };
  return new uPlot(opts, data, box);
}
