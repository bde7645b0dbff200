// The compare page: GET /compare (final test metrics per seed group, mean and 95% interval, the
// best mean of each column starred, paired differences) and GET /compare/curves (per step, each
// group's mean over seeds with its 95% band; one chart per metric key; the spec differences).

import { api, el, errorText, fmt, page, pct, setLive, showBanner } from "./api.js";
import { PALETTE, smooth, tint } from "./charts.js";

const chosen = document.getElementById("compare-data").dataset;
const view = { smoothing: 0, maxPoints: 300, keys: null, curves: null };
const charts = [];

function selection() {
  return { ids: chosen.ids, tag: chosen.tag, sweep: chosen.sweep };
}

function interval(stats, asPct) {
  const show = asPct ? pct : (x) => fmt(x, 3);
  if (!stats || stats.mean === null) return "–";
  if (stats.lo === null) return `${show(stats.mean)} (one seed)`;
  return `${show(stats.mean)} [${show(stats.lo)}, ${show(stats.hi)}]`;
}

function renderFinal(report) {
  const groups = report.groups;
  const modalities = [...new Set(groups.flatMap((g) => Object.keys(g.modality_acc)))];
  const columns = [
    ...["acc", "macro_f1", "map"].map((m) => ({ name: m, get: (g) => g.metrics[m], pct: m === "acc" })),
    ...modalities.map((m) => ({ name: `${m} acc`, get: (g) => g.modality_acc[m], pct: true })),
  ];
  const best = columns.map((c) => Math.max(...groups.map((g) => c.get(g)?.mean ?? -Infinity)));
  const head = el("tr", {}, el("th", { text: "group" }), el("th", { text: "seeds" }),
    columns.map((c) => el("th", { text: c.name })), el("th", { text: "wall time" }));
  const rows = groups.map((g) => el("tr", { dataset: { group: g.label } },
    el("th", {}, el("span", { class: "swatch", dataset: { color: groupColor(g.label) } }), g.label),
    el("td", { text: `${g.n}: ${g.seeds.join(", ")}` }),
    columns.map((c, i) => {
      const stats = c.get(g);
      const isBest = groups.length > 1 && stats && stats.mean === best[i];
      return el("td", { class: isBest ? "num best" : "num", title: isBest ? "best mean in this column" : "" },
        `${isBest ? "★ " : ""}${interval(stats, c.pct)}`);
    }),
    el("td", { class: "num", text: g.wall_time_s ? `${fmt(g.wall_time_s, 1)} s` : "–" })));
  document.getElementById("final").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
  paintSwatches();
  const pairs = report.pairs.map((p) => el("tr", {},
    el("td", { text: `${p.b} − ${p.a}` }), el("td", { text: p.metric }), el("td", { text: p.seeds.join(", ") }),
    el("td", { class: "num", text: fmt(p.mean_diff, 4) }),
    el("td", { class: "num", text: p.lo === null ? "–" : `[${fmt(p.lo, 4)}, ${fmt(p.hi, 4)}]` }),
    el("td", { text: p.significant === null ? "no interval (one seed)" : p.significant ? "interval excludes 0" : "within the interval: not shown to differ" })));
  document.getElementById("pairs").replaceChildren(
    el("tr", {}, ["pair (B − A)", "metric", "paired seeds", "mean difference", "95% interval", "reading"].map((t) => el("th", { text: t }))),
    ...(pairs.length ? pairs : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: "no two groups share a dataset and their seeds" }))]));
  document.getElementById("compare-warnings").replaceChildren(...report.warnings.map((w) => el("li", { text: w })));
  document.getElementById("final-panel").hidden = false;
}

const colors = new Map();
function groupColor(label) {
  if (!colors.has(label)) colors.set(label, PALETTE[colors.size % PALETTE.length]);
  return colors.get(label);
}

function paintSwatches() {
  for (const s of document.querySelectorAll(".swatch[data-color]")) s.style.backgroundColor = s.dataset.color;
}

// One chart per key: for each group a mean line and its band (lo and hi filled between).
function curveChart(key, groups) {
  const all = new Set();
  for (const g of groups) for (const s of g.curves[key].steps) all.add(s);
  const steps = [...all].sort((a, b) => a - b);
  const index = new Map(steps.map((s, i) => [s, i]));
  const data = [steps];
  const series = [{ label: "step" }];
  const bands = [];
  for (const g of groups) {
    const c = g.curves[key];
    const lines = [c.mean, c.lo, c.hi].map((values) => {
      const line = new Array(steps.length).fill(null);
      const sm = smooth(values, view.smoothing);
      c.steps.forEach((s, i) => { line[index.get(s)] = sm[i]; });
      return line;
    });
    const color = groupColor(g.label);
    const at = data.length;
    data.push(...lines);
    series.push({ label: `${g.label} (n=${g.ids.length})`, stroke: color, width: 2, spanGaps: true, points: { show: false }, value: (u, v) => fmt(v) },
      { label: "lo", stroke: "transparent", spanGaps: true, points: { show: false } },
      { label: "hi", stroke: "transparent", spanGaps: true, points: { show: false } });
    bands.push({ series: [at + 2, at + 1], fill: tint(color, 0.15) });
  }
  const box = el("div", { class: "chart" });
  const node = el("div", { class: "chart-panel", dataset: { key, bands: String(bands.length) } },
    el("div", { class: "chart-title" }, el("strong", { text: key })), box);
  document.getElementById("curves").append(node);
  const chart = new uPlot({
    width: box.clientWidth || 500, height: 220, scales: { x: { time: false } }, series, bands,
    legend: { live: true }, cursor: { drag: { x: true, y: false } },
  }, data, box);
  const rows = chart.root.querySelectorAll(".u-legend .u-series");
  series.forEach((s, i) => { if ((s.label === "lo" || s.label === "hi") && rows[i]) rows[i].classList.add("band-edge"); });
  node.dataset.drawn = "1";
  charts.push(chart);
}

function renderCurves() {
  for (const c of charts.splice(0)) c.destroy();
  document.getElementById("curves-panel").hidden = false; // charts take their width from it
  const holder = document.getElementById("curves");
  holder.replaceChildren();
  const curves = view.curves;
  for (const key of curves.shown) curveChart(key, curves.groups.filter((g) => g.curves[key].steps.length));
  holder.dataset.ready = "1";
  document.getElementById("curves-note").textContent =
    `${curves.runs.length} runs in ${curves.groups.length} groups; band: 95% t-interval over seeds`;
  const picker = document.getElementById("curve-keys");
  picker.replaceChildren(...curves.keys.map((k) => el("option", { value: k, selected: curves.shown.includes(k), text: k })));
  renderDiff(curves);
  document.getElementById("curves-panel").hidden = false;
}

function renderDiff(curves) {
  const diff = Object.entries(curves.spec_differences);
  const head = el("tr", {}, el("th", { text: "spec key" }), curves.runs.map((r) =>
    el("th", {}, el("a", { href: page(`/ui/experiments/${r.id}`), text: `${r.name} (${r.id.slice(0, 8)})` }))));
  const rows = diff.map(([key, values]) => el("tr", {}, el("th", { text: key }),
    values.map((v) => el("td", { text: v === null ? "(absent)" : v }))));
  document.getElementById("spec-diff").replaceChildren(head, ...rows);
  document.getElementById("diff-panel").hidden = curves.runs.length < 2;
}

async function loadCurves() {
  const query = { ...selection(), max_points: view.maxPoints };
  if (view.keys) query.keys = view.keys.join(",");
  view.curves = await api("/compare/curves", { query });
  renderCurves();
}

async function start() {
  const given = selection();
  if (!given.ids && !given.tag && !given.sweep) {
    document.getElementById("compare-note").textContent =
      "Choose experiments (ids), a tag or a sweep. Runs whose specs differ only in their seed form a group: its mean, with the 95% t-interval over seeds as a band.";
    setLive("", false);
    return;
  }
  try {
    const [report] = await Promise.all([
      api("/compare", { query: { ...given, metric: chosen.metric } }).catch((err) => {
        document.getElementById("compare-note").textContent = `final metrics: ${errorText(err)}`;
        return null;
      }),
      loadCurves(),
    ]);
    if (report) renderFinal(report);
    document.body.dataset.ready = "1";
    setLive("a snapshot: reload to refresh", false);
  } catch (err) {
    showBanner(errorText(err));
  }
  document.getElementById("curve-keys").addEventListener("change", (event) => {
    view.keys = [...event.target.selectedOptions].map((o) => o.value).slice(0, 12);
    loadCurves().catch((err) => showBanner(errorText(err)));
  });
  document.getElementById("max-points").addEventListener("change", (event) => {
    view.maxPoints = Number(event.target.value);
    loadCurves().catch((err) => showBanner(errorText(err)));
  });
  const smoothing = document.getElementById("smoothing");
  smoothing.addEventListener("input", () => {
    view.smoothing = Number(smoothing.value);
    document.getElementById("smoothing-value").textContent = smoothing.value;
    renderCurves();
  });
}

start();
