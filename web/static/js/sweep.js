// A sweep's page: its succeeded points (GET /experiments?sweep=...&status=succeeded, the run
// table's query) drawn as scatters of a swept value against fused and weak-modality test
// accuracy and as parallel coordinates of every swept value and both accuracies, coloured by a
// chosen key (a swept key, a result metric, or any spec key read through `columns`). The
// choices are kept in the page's address (x, color, weak, log).

import { api, el, errorText, page, pct, setLive, showBanner } from "./api.js";
import { axisOf, colorScale, parallel, scatter, shownValue, wide } from "./sweep_plots.js";

const meta = document.getElementById("sweep-data").dataset;
const SWEPT = (meta.swept || "").split(" ").filter(Boolean);
const SUMMARY_PARTS = ["test", "val", "best", "run"];
const MAX_POINTS = 10000;
const given = new URLSearchParams(window.location.search);
const state = { points: [], x: "", color: "", weak: "", log: false, plots: [], modalities: [] };

function walk(value, parts) {
  for (const p of parts) {
    if (value === null || typeof value !== "object") return undefined;
    value = value[p];
  }
  return value;
}

// The value of `key` for an experiment: swept, read through `columns`, or from its summary.
function valueOf(exp, key) {
  if (exp.sweep_values && key in exp.sweep_values) return exp.sweep_values[key];
  if (exp.values && key in exp.values) return exp.values[key];
  const parts = key.split(".");
  return SUMMARY_PARTS.includes(parts[0]) ? walk(exp.summary, parts) : undefined;
}

const fromSummary = (key) => SUMMARY_PARTS.includes(key.split(".")[0]);
const weakAcc = (exp) => walk(exp.summary, ["test", "modality_acc", state.weak]);
const fusedAcc = (exp) => walk(exp.summary, ["test", "acc"]);

async function count(status) {
  return (await api("/experiments", { query: { sweep: meta.sweep, status, limit: 1 } })).count;
}

async function load() {
  const extra = state.color && !SWEPT.includes(state.color) && !fromSummary(state.color) ? state.color : "";
  const rows = [];
  for (let offset = 0; offset < MAX_POINTS; offset += 500) {
    const list = await api("/experiments", { query: { sweep: meta.sweep, status: "succeeded", limit: 500,
      offset, sort: "created_at", columns: extra } });
    rows.push(...list.data);
    if (rows.length >= list.count || !list.data.length) break;
  }
  const [all, failed] = await Promise.all([count(""), count("failed")]);
  state.points = rows;
  state.counts = { all, failed, succeeded: rows.length };
}

// ------------------------------------------------------------------------------ choices

function modalities() {
  const sums = new Map();
  for (const exp of state.points) {
    for (const [m, v] of Object.entries(walk(exp.summary, ["test", "modality_acc"]) || {})) {
      if (typeof v !== "number") continue;
      const [s, n] = sums.get(m) || [0, 0];
      sums.set(m, [s + v, n + 1]);
    }
  }
  // the weak modality: the lowest mean test accuracy over the sweep's points
  return [...sums.entries()].map(([m, [s, n]]) => ({ name: m, mean: s / n })).sort((a, b) => a.mean - b.mean);
}

function chooseDefaults() {
  const others = SWEPT.filter((k) => k !== "seed");
  state.x = given.get("x") || others[0] || SWEPT[0] || "seed";
  state.color = given.get("color") ||
    (SWEPT.includes("method.name") ? "method.name" : others.find((k) => k !== state.x) || state.x);
  state.modalities = modalities();
  const names = state.modalities.map((m) => m.name);
  state.weak = names.includes(given.get("weak")) ? given.get("weak") : names[0] || "";
  state.log = given.has("log") ? given.get("log") === "1" : wide(state.points.map((e) => valueOf(e, state.x)));
}

function controls() {
  const xSel = document.getElementById("x-key");
  const keys = SWEPT.length ? SWEPT : ["seed"];
  xSel.replaceChildren(...keys.map((k) => el("option", { value: k, text: k, selected: k === state.x })));
  const weak = document.getElementById("weak-modality");
  weak.replaceChildren(...state.modalities.map((m) => el("option", { value: m.name, selected: m.name === state.weak,
    text: `${m.name} (mean ${pct(m.mean)})` })));
  document.getElementById("color-key").value = state.color;
  const suggestions = [...SWEPT, "test.acc", "test.macro_f1", ...state.modalities.map((m) => `test.modality_acc.${m.name}`),
    "method.name", "optimizer.lr", "seed"];
  document.getElementById("color-keys").replaceChildren(...[...new Set(suggestions)].map((k) => el("option", { value: k })));
  document.getElementById("log-x").checked = state.log;
}

function syncUrl() {
  const params = new URLSearchParams({ x: state.x, color: state.color, weak: state.weak, log: state.log ? "1" : "0" });
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
}

// ------------------------------------------------------------------------------ drawing

// Points at their x positions; categories spread a little around their place so that points
// of the same category do not hide each other.
function placed(axis, y) {
  const per = new Map();
  const out = [];
  for (const exp of state.points) {
    const xv = valueOf(exp, state.x);
    const x = axis.pos(xv);
    const yv = y(exp);
    if (x === null || x === undefined || typeof yv !== "number") continue;
    out.push({ exp, x, y: yv, xv });
    if (!axis.numeric) per.set(x, (per.get(x) || 0) + 1);
  }
  if (!axis.numeric) {
    const seen = new Map();
    for (const p of out) {
      const n = per.get(p.x);
      const i = seen.get(p.x) || 0;
      seen.set(p.x, i + 1);
      p.x += n > 1 ? -0.2 + (0.4 * i) / (n - 1) : 0;
    }
  }
  return out;
}

function drawScatter(id, y, yLabel, scale, axis) {
  const figure = document.getElementById(id);
  const box = figure.querySelector(".canvas");
  const hoverLine = figure.querySelector(".hover");
  const points = placed(axis, y).map((p) => ({ ...p, group: scale.group(valueOf(p.exp, state.color)) }));
  box.replaceChildren();
  figure.dataset.points = String(points.length);
  const hover = (p) => {
    hoverLine.textContent = p ? `${p.exp.name}: ${state.x}=${shownValue(p.xv)}, ${state.color}=` +
      `${shownValue(valueOf(p.exp, state.color))}, ${yLabel} ${pct(p.y)} (click to open)` : "";
  };
  const open = (p) => { window.location.href = page(`/ui/experiments/${p.exp.id}`); };
  state.plots.push(scatter(box, { points, axis, groups: scale.groups, xLabel: state.x, yLabel, hover, open }));
  return points;
}

function drawParallel(scale) {
  const keys = SWEPT.filter((k) => k !== "seed");
  const shownKeys = keys.length ? keys : SWEPT;
  const columns = [
    ...shownKeys.map((k) => ({ name: k, get: (e) => valueOf(e, k) })),
    { name: "test acc", get: fusedAcc, text: pct },
    { name: `${state.weak || "weak"} acc`, get: weakAcc, text: pct },
  ];
  // the x key's axis as the scatters draw it; the others log-scaled where they span a decade
  const axes = columns.map((c) => {
    const values = state.points.map(c.get);
    const log = c.name === state.x ? state.log : !c.text && wide(values);
    return { name: c.name, text: c.text, axis: axisOf(values, log) };
  });
  const lines = state.points.map((e) => ({ values: columns.map((c) => c.get(e)),
    color: scale.groups[scale.group(valueOf(e, state.color))].color }));
  const figure = document.getElementById("parallel");
  const box = figure.querySelector(".canvas");
  box.replaceChildren();
  figure.dataset.lines = String(lines.length);
  if (lines.length) state.plots.push(parallel(box, { axes, lines }));
}

function legend(scale) {
  const used = new Set(state.points.map((e) => scale.group(valueOf(e, state.color))));
  const items = scale.groups.filter((g, i) => used.has(i)).map((g) => el("span", { class: "legend-item" },
    el("span", { class: "swatch", dataset: { color: g.color } }), g.label));
  document.getElementById("legend").replaceChildren(el("strong", { text: `${state.color}: ` }), ...items);
  for (const s of document.querySelectorAll("#legend .swatch")) s.style.backgroundColor = s.dataset.color;
}

function pointsTable(points) {
  const head = el("tr", {}, ["experiment", state.x, "test acc", `${state.weak} acc`, state.color]
    .map((t) => el("th", { text: t })));
  const rows = points.map((p) => el("tr", { dataset: { id: p.exp.id } },
    el("td", {}, el("a", { href: page(`/ui/experiments/${p.exp.id}`), text: p.exp.name })),
    el("td", { class: "num", text: shownValue(p.xv) }),
    el("td", { class: "num", text: pct(fusedAcc(p.exp)) }),
    el("td", { class: "num", text: pct(weakAcc(p.exp)) }),
    el("td", { text: shownValue(valueOf(p.exp, state.color)) })));
  document.getElementById("points").replaceChildren(head, ...rows);
  document.getElementById("points-count").textContent = `(${points.length})`;
}

function draw() {
  for (const p of state.plots) p.destroy();
  state.plots = [];
  const scale = colorScale(state.points.map((e) => valueOf(e, state.color)));
  const axis = axisOf(state.points.map((e) => valueOf(e, state.x)), state.log);
  document.getElementById("log-x").disabled = !axis.numeric;  // categories have no log axis
  legend(scale);
  const fused = drawScatter("scatter-fused", fusedAcc, "fused test acc", scale, axis);
  document.querySelector("#scatter-weak figcaption").textContent =
    `Weak-modality test accuracy (${state.weak || "no modality accuracies"})`;
  drawScatter("scatter-weak", weakAcc, `${state.weak} test acc`, scale, axis);
  drawParallel(scale);
  pointsTable(fused);
  const { all, failed, succeeded } = state.counts;
  const pending = all - succeeded - failed;
  document.getElementById("sweep-status").textContent =
    `${succeeded} of ${all} points finished and drawn` + (failed ? `; ${failed} failed (no metrics)` : "") +
    (pending > 0 ? `; ${pending} queued, running or cancelled` : "") +
    (fused.length < succeeded ? `; ${succeeded - fused.length} without a value for ${state.x}` : "");
  syncUrl();
  document.body.dataset.ready = "1";
}

async function recolor(key) {
  const before = state.color;
  state.color = key;
  try {
    if (!SWEPT.includes(key) && !fromSummary(key)) await load();
    showBanner("");
  } catch (err) {
    state.color = before;
    document.getElementById("color-key").value = before;
    showBanner(`colour by ${key}: ${errorText(err)}`);
  }
  draw();
}

async function main() {
  try {
    await load();
    chooseDefaults();
    if (state.color && !SWEPT.includes(state.color) && !fromSummary(state.color)) await load();
    controls();
    draw();
    setLive("loaded", false);
  } catch (err) {
    showBanner(errorText(err));
  }
  document.getElementById("x-key").addEventListener("change", (e) => { state.x = e.target.value; draw(); });
  document.getElementById("weak-modality").addEventListener("change", (e) => { state.weak = e.target.value; draw(); });
  document.getElementById("log-x").addEventListener("change", (e) => { state.log = e.target.checked; draw(); });
  document.getElementById("color-key").addEventListener("change", (e) => recolor(e.target.value.trim()));
  document.getElementById("sweep-controls").addEventListener("submit", (e) => e.preventDefault());
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(draw, 200); });
}

main();
