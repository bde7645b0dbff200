// The compare page: GET /compare (final test metrics per seed group, mean and 95% interval; every
// group minus the baseline per metric and modality, drawn as a forest plot; groups that could not
// be paired and why) and GET /compare/curves (per step, each group's mean over seeds with its 95%
// band; one chart per metric key; the spec differences). The server labels the groups and gives
// each its colour position (`color_index`) over the whole selection, so a group has one label and
// one colour in the table, the pairs and the curves.

import { api, el, errorText, fmt, page, pct, setLive, showBanner } from "./api.js";
import { PALETTE, smooth, theme, tint } from "./charts.js";

const chosen = document.getElementById("compare-data").dataset;
const view = { smoothing: 0, maxPoints: 300, keys: null, curves: null, report: null, baseline: chosen.baseline || "" };
const charts = [];
const colorIndex = new Map();
const SVG = "http://www.w3.org/2000/svg";

function selection() {
  return { ids: chosen.ids, tag: chosen.tag, sweep: chosen.sweep };
}

function groupColor(label) {
  return PALETTE[(colorIndex.get(label) ?? 0) % PALETTE.length];
}

function learnColors(groups) {
  for (const g of groups) colorIndex.set(g.label, g.color_index);
}

function swatch(label) {
  const node = el("span", { class: "swatch", dataset: { color: groupColor(label) } });
  node.style.backgroundColor = groupColor(label);
  return node;
}

function metricName(metric) {
  if (metric.startsWith("modality_acc.")) return `${metric.slice("modality_acc.".length)} acc`;
  return { acc: "acc", macro_f1: "macro-F1", map: "mAP" }[metric] || metric;
}

function interval(stats) {
  if (!stats || stats.mean === null) return "–";
  if (stats.lo === null) return pct(stats.mean);
  return `${pct(stats.mean)} [${pct(stats.lo)}, ${pct(stats.hi)}]`;
}

function points(x) {
  return x === null || x === undefined ? "–" : `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(1)}`;
}

// ------------------------------------------------------------------------------ final metrics

// BalanceBenchmark's measures (result.json's `balance`): Shapley values of fused test accuracy in
// points (they may be negative), their gap, and the FLOPs of training; "–" for a group whose runs
// did not record them.
function shapley(stats) {
  if (!stats || stats.mean === null) return "–";
  const p = (x) => (100 * x).toFixed(1);
  return stats.lo === null ? p(stats.mean) : `${p(stats.mean)} [${p(stats.lo)}, ${p(stats.hi)}]`;
}

function flops(x) {
  if (typeof x !== "number") return "–";
  const [unit, scale] = x >= 1e12 ? ["TFLOP", 1e12] : x >= 1e9 ? ["GFLOP", 1e9] : ["MFLOP", 1e6];
  return `${(x / scale).toFixed(x / scale >= 100 ? 0 : 1)} ${unit}`;
}

function balanceColumns(groups) {
  const measured = groups.filter((g) => g.balance);
  if (!measured.length) return [];
  const mods = [...new Set(measured.flatMap((g) => Object.keys(g.balance.shapley_acc)))];
  return [
    { name: "Shapley gap", key: "shapley_gap", text: (b) => shapley(b.shapley_gap) },
    ...mods.map((m) => ({ name: `${m} Shapley`, key: `shapley_acc.${m}`, text: (b) => shapley(b.shapley_acc[m]) })),
    { name: "train FLOPs", key: "train_flops", text: (b) => flops(b.train_flops) },
  ];
}

function renderFinal(report) {
  const groups = report.groups;
  const modalities = [...new Set(groups.flatMap((g) => Object.keys(g.modality_acc)))];
  const columns = [
    ...["acc", "macro_f1", "map"].map((m) => ({ metric: m, get: (g) => g.metrics[m] })),
    ...modalities.map((m) => ({ metric: `modality_acc.${m}`, get: (g) => g.modality_acc[m] })),
  ];
  const balance = balanceColumns(groups);
  const leads = new Map(report.leads.map((l) => [l.metric, l]));
  const head = el("tr", {}, el("th", { text: "group" }), el("th", { text: "seeds" }),
    columns.map((c) => el("th", { text: metricName(c.metric) })),
    balance.map((c) => el("th", { class: "balance", text: c.name })), el("th", { text: "wall time" }));
  const rows = groups.map((g) => el("tr", { dataset: { group: g.label, color: groupColor(g.label) } },
    el("th", {}, swatch(g.label), g.label, g.label === report.baseline ? el("span", { class: "tag", text: "baseline" }) : null),
    el("td", {}, `${g.n}: ${g.seeds.join(", ")}`, g.interval_note ? el("div", { class: "muted small", text: g.interval_note }) : null),
    columns.map((c) => {
      const lead = leads.get(c.metric);
      const mine = lead && lead.group === g.label;
      const star = mine && lead.star;
      return el("td", { class: star ? "num best" : "num", title: mine ? lead.reason : "", dataset: { metric: c.metric } },
        `${star ? "★ " : ""}${interval(c.get(g))}`);
    }),
    balance.map((c) => el("td", { class: "num balance", dataset: { balance: c.key }, text: g.balance ? c.text(g.balance) : "–" })),
    el("td", { class: "num", text: g.wall_time_s ? `${fmt(g.wall_time_s, 1)} s` : "–" })));
  document.getElementById("final").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
  document.getElementById("final-panel").hidden = false;
}

// ------------------------------------------------------------------------------ pairs

function pairOrder(report) {
  const order = [report.metric, ...report.pair_metrics.filter((m) => m !== report.metric)];
  return [...report.pairs].sort((a, b) => order.indexOf(a.metric) - order.indexOf(b.metric));
}

function reading(p) {
  if (p.lo_pp === null) return p.note || "no interval";
  const verdict = p.significant
    ? `interval excludes 0: ${p.diff_pp > 0 ? "higher" : "lower"} than the baseline`
    : "interval includes 0: not shown to differ";
  return p.note ? `${verdict} (${p.note})` : verdict;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// One row per pair: its point, its interval, and a shared zero line.
function forest(pairs) {
  const reach = Math.max(1, ...pairs.flatMap((p) => [p.diff_pp, p.lo_pp ?? 0, p.hi_pp ?? 0].map(Math.abs))) * 1.1;
  const labelW = 340;
  const plotW = 420;
  const rowH = 22;
  const top = 24;
  const height = top + rowH * pairs.length + 8;
  const x = (v) => labelW + ((v + reach) / (2 * reach)) * plotW;
  const width = labelW + plotW + 260;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "differences against the baseline, percentage points" });
  root.append(svg("line", { x1: x(0), x2: x(0), y1: top - 6, y2: height - 4, class: "zero" }));
  for (const v of [-reach / 1.1, 0, reach / 1.1]) {
    root.append(svg("text", { x: x(v), y: 12, "text-anchor": "middle", class: "tick" }, `${points(v)} pp`));
  }
  pairs.forEach((p, i) => {
    const y = top + i * rowH + rowH / 2;
    const color = groupColor(p.b);
    const row = svg("g", { "data-pair": `${p.b} − ${p.a}`, "data-metric": p.metric, "data-color": color });
    row.append(svg("text", { x: labelW - 8, y: y + 4, "text-anchor": "end" }, `${p.b} − ${p.a} · ${metricName(p.metric)}`));
    if (p.lo_pp !== null) {
      row.append(svg("line", { x1: x(p.lo_pp), x2: x(p.hi_pp), y1: y, y2: y, stroke: color, "stroke-width": 2, class: "interval" }));
    }
    row.append(svg("circle", { cx: x(p.diff_pp), cy: y, r: 4.5, fill: p.significant ? color : "none", class: p.significant ? "" : "hollow", stroke: color, "stroke-width": 2 }));
    const side = p.lo_pp === null ? "too few seeds for an interval" : `[${points(p.lo_pp)}, ${points(p.hi_pp)}]`;
    row.append(svg("text", { x: labelW + plotW + 8, y: y + 4, class: "value" }, `${points(p.diff_pp)} ${side}`));
    root.append(row);
  });
  return root;
}

function renderPairs(report) {
  const pairs = pairOrder(report);
  document.getElementById("baseline-note").textContent = report.baseline
    ? `baseline: ${report.baseline} (${report.baseline_rule})`
    : report.baseline_rule;
  document.getElementById("forest").replaceChildren(...(pairs.length ? [forest(pairs)] : []));
  const head = el("tr", {}, ["pair (B − baseline)", "metric", "paired seeds", "difference, points", "95% interval", "reading"].map((t) => el("th", { text: t })));
  const rows = pairs.map((p) => el("tr", { dataset: { pair: `${p.b} − ${p.a}`, metric: p.metric, color: groupColor(p.b) } },
    el("td", {}, swatch(p.b), `${p.b} − ${p.a}`), el("td", { text: metricName(p.metric) }),
    el("td", { text: p.seeds.join(", ") }), el("td", { class: "num", text: points(p.diff_pp) }),
    el("td", { class: "num", text: p.lo_pp === null ? "–" : `[${points(p.lo_pp)}, ${points(p.hi_pp)}]` }),
    el("td", { text: reading(p) })));
  const none = report.groups.length < 2 ? "one group: nothing to pair" : "no group could be paired with the baseline";
  document.getElementById("pairs").replaceChildren(head,
    ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: none }))]));
  document.getElementById("unpaired").replaceChildren(...report.unpaired.map((u) =>
    el("li", { dataset: { group: u.group } }, swatch(u.group), `${u.group} is not paired with the baseline: ${u.reason}`)));
  document.getElementById("compare-warnings").replaceChildren(...report.warnings.map((w) => el("li", { text: w })));
  const picker = document.getElementById("baseline");
  picker.replaceChildren(...report.groups.map((g) => el("option", { value: g.label, selected: g.label === report.baseline, text: g.label })));
  document.getElementById("pairs-panel").hidden = report.groups.length < 2;
}

// ------------------------------------------------------------------------------ curves

// A line on the chart's common steps: `undefined` at steps only other groups have (uPlot draws
// over them), `null` over the whole stretch of a break the server marked (n = 0: the runs logged
// nothing there), so that, with spanGaps off, uPlot leaves the stretch empty.
function aligned(c, values, index, length) {
  const line = new Array(length).fill(undefined);
  const sm = smooth(values, view.smoothing);
  c.steps.forEach((s, i) => { line[index.get(s)] = c.n[i] === 0 ? null : sm[i] ?? undefined; });
  for (let i = 0; i < length; i += 1) {
    if (line[i] !== null) continue;
    for (let j = i - 1; j >= 0 && line[j] === undefined; j -= 1) line[j] = null;
    for (let j = i + 1; j < length && line[j] === undefined; j += 1) line[j] = null;
  }
  return line;
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
    const lines = [c.mean, c.lo, c.hi].map((values) => aligned(c, values, index, steps.length));
    const color = groupColor(g.label);
    const at = data.length;
    data.push(...lines);
    series.push({ label: `${g.label} (n=${g.ids.length})`, stroke: color, width: 2, spanGaps: false, points: { show: false }, value: (u, v) => fmt(v) },
      { label: "lo", stroke: "transparent", spanGaps: false, points: { show: false } },
      { label: "hi", stroke: "transparent", spanGaps: false, points: { show: false } });
    bands.push({ series: [at + 2, at + 1], fill: tint(color, 0.15) });
  }
  const breaks = groups.reduce((n, g) => n + g.curves[key].n.filter((k) => k === 0).length, 0);
  const box = el("div", { class: "chart" });
  const node = el("div", { class: "chart-panel", dataset: { key, bands: String(bands.length), breaks: String(breaks) } },
    el("div", { class: "chart-title" }, el("strong", { text: key })), box);
  document.getElementById("curves").append(node);
  const chart = new uPlot({
    width: box.clientWidth || 500, height: 220, scales: { x: { time: false } }, series, bands,
    axes: theme(),
    legend: { live: true }, cursor: { drag: { x: true, y: false } },
  }, data, box);
  const rows = chart.root.querySelectorAll(".u-legend .u-series");
  series.forEach((s, i) => { if ((s.label === "lo" || s.label === "hi") && rows[i]) rows[i].classList.add("band-edge"); });
  node.dataset.drawn = "1";
  node.uplot = chart;  // as on the experiment page: the chart behind a panel
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
    `${curves.runs.length} runs in ${curves.groups.length} groups; band: 95% t-interval over seeds (from 3)`;
  const picker = document.getElementById("curve-keys");
  picker.replaceChildren(...curves.keys.map((k) => el("option", { value: k, selected: curves.shown.includes(k), text: k })));
  renderDiff(curves);
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

// ------------------------------------------------------------------------------ loading

async function loadCurves() {
  const query = { ...selection(), max_points: view.maxPoints };
  if (view.keys) query.keys = view.keys.join(",");
  view.curves = await api("/compare/curves", { query });
  learnColors(view.curves.groups);
}

async function loadReport() {
  const query = { ...selection(), metric: chosen.metric, baseline: view.baseline || undefined };
  view.report = await api("/compare", { query });
  learnColors(view.report.groups);
}

function renderReport() {
  if (!view.report) return;
  renderFinal(view.report);
  renderPairs(view.report);
}

function loaded(text) {
  const note = document.getElementById("compare-loading");
  note.setAttribute("aria-busy", "false");
  note.hidden = !text;
  note.textContent = text || "";
}

async function chooseBaseline(label) {
  view.baseline = label;
  const params = new URLSearchParams(window.location.search);
  params.set("baseline", label);
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
  await loadReport();
  renderReport();
}

function listen() {
  const reload = () => loadCurves().then(renderCurves).catch((err) => showBanner(errorText(err)));
  document.getElementById("curve-keys").addEventListener("change", (event) => {
    view.keys = [...event.target.selectedOptions].map((o) => o.value).slice(0, 12);
    reload();
  });
  document.getElementById("max-points").addEventListener("change", (event) => {
    view.maxPoints = Number(event.target.value);
    reload();
  });
  const smoothing = document.getElementById("smoothing");
  smoothing.addEventListener("input", () => {
    view.smoothing = Number(smoothing.value);
    document.getElementById("smoothing-value").textContent = smoothing.value;
    renderCurves();
  });
  document.getElementById("baseline").addEventListener("change", (event) => {
    chooseBaseline(event.target.value).catch((err) => showBanner(errorText(err)));
  });
}

async function start() {
  const given = selection();
  if (!given.ids && !given.tag && !given.sweep) {
    document.getElementById("compare-note").textContent =
      "Choose experiments (ids or prefixes), a tag or a sweep. Runs whose specs differ only in their seed form a group.";
    loaded("");
    setLive("", false);
    return;
  }
  // each part is drawn as soon as its answer is in (both carry every group's colour position)
  const problems = [];
  const parts = { report: "the final metrics and pairs", curves: "the curves" };
  const waiting = new Set(Object.keys(parts));
  const note = () => `Loading ${[...waiting].map((k) => parts[k]).join(" and ")}…`;
  const part = (name, load, draw) => load().then(draw)
    .catch((err) => problems.push(`${name === "report" ? "final metrics" : "curves"}: ${errorText(err)}`))
    .finally(() => {
      waiting.delete(name);
      if (waiting.size) document.getElementById("compare-loading").textContent = note();
    });
  await Promise.all([part("report", loadReport, renderReport), part("curves", loadCurves, renderCurves)]);
  const problem = problems.join("; ");
  loaded(problem);
  if (problem) showBanner(problem);
  document.body.dataset.ready = "1";
  setLive("a snapshot: reload to refresh", false);
  listen();
}

start();
