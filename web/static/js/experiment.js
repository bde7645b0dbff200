// One experiment: its row (GET /experiments/{id}) polled while it runs, a headline (test
// accuracies, the selected checkpoint, each modality's gradient norm), the timeline (stages,
// epochs, clock) and the metric charts (GET .../metrics, new points appended with after_step),
// test metrics, confusion matrices as heatmaps, artifacts, and cancel / retry / delete. The
// charts' state (x axis, smoothing, points per line, key filter, zoom, log-scale panels) lives in
// the page's URL: a copied link opens the same view.

import {
  FINISHED, api, badge, download, duration, el, errorText, fmt, page, pct, poll, progressText, runSeconds,
  setLive, showBanner, when,
} from "./api.js";
import { Panel, explain, layout } from "./charts.js";

const root = document.getElementById("experiment");
const ID = root.dataset.id;
const KEY_CHUNK = 4; // keys per metrics request; the chunks are fetched in parallel
const view = {
  xMode: "step", smoothing: 0, maxPoints: 1000, timeline: null, modalities: [], name: "",
  zoom: null, // {min, max} in steps, shared by every panel; null: all of the run
  logY: new Set(), // ids of the panels drawn on a log scale
  onZoom: (range) => setZoom(range),
  onLogY: (id, on) => setLogY(id, on),
};
const DEFAULTS = { x: "step", smooth: "0", points: "1000" };
const store = new Map(); // metric key -> {steps, values, total, maxPoints}
const panels = new Map(); // panel id -> Panel
let exp = null;
let keys = [];
let tick = 0;
let finishedSeen = false;

// ------------------------------------------------------------------------------ the row

function renderTimeline() {
  const items = [["created", exp.created_at, "queued"]];
  if (exp.started_at) items.push(["started", exp.started_at, `attempt ${exp.attempts} of ${exp.max_attempts}${exp.worker ? ` on ${exp.worker}` : ""}`]);
  if (exp.heartbeat_at && !exp.finished_at) items.push(["last heartbeat", exp.heartbeat_at, ""]);
  if (exp.finished_at) items.push([exp.status, exp.finished_at, `after ${duration(runSeconds(exp))}`]);
  document.getElementById("timeline").replaceChildren(...items.map(([what, at, note]) =>
    el("li", {}, el("strong", { text: what }), ` ${when(at)} `, el("span", { class: "muted", text: note }))));
}

function renderResults() {
  const summary = exp.summary;
  document.getElementById("results").hidden = !summary;
  if (!summary || !summary.test) return;
  const t = summary.test;
  const rows = [["fused accuracy", pct(t.acc)], ["macro-F1", fmt(t.macro_f1)], ["mAP", fmt(t.map)], ["loss", fmt(t.loss)]];
  for (const [m, acc] of Object.entries(t.modality_acc || {})) rows.push([`${m} accuracy (its head alone)`, pct(acc)]);
  document.getElementById("test-metrics").replaceChildren(...rows.map(([k, v]) =>
    el("tr", {}, el("th", { text: k }), el("td", { class: "num", text: v }))));
  const best = summary.best;
  document.getElementById("best-note").textContent = best
    ? `checkpoint selected on validation: stage ${best.stage + 1}, epoch ${best.epoch + 1} (${fmt(best.score)})` : "";
}

// The last logged value of a key: [step, value] or null.
function lastPoint(key) {
  const series = store.get(key);
  if (!series || !series.steps.length) return null;
  return [series.steps.at(-1), series.values.at(-1)];
}

function headlineItem(name, label, value, note, title) {
  return el("div", { class: "headline-item", dataset: { headline: name }, title: title || "" },
    el("span", { class: "headline-label", text: label }),
    el("strong", { class: "headline-value", text: value }),
    note ? el("span", { class: "headline-note muted small", text: note }) : null);
}

function renderHeadline() {
  const test = exp.summary && exp.summary.test;
  const accs = (test && test.modality_acc) || {};
  const weak = Object.entries(accs).filter(([, v]) => typeof v === "number").sort((a, b) => a[1] - b[1])[0];
  const running = exp.progress && typeof exp.progress.val_acc === "number";
  const items = [headlineItem("fused", "fused test acc", test ? pct(test.acc) : "–",
    test ? "" : running ? `val ${pct(exp.progress.val_acc)} so far` : "when it ends", explain("test/fused/acc"))];
  for (const m of exp.spec.modalities || []) {
    const acc = accs[m];
    items.push(headlineItem(`acc-${m}`, `${m} test acc`, typeof acc === "number" ? pct(acc) : "–",
      weak && weak[0] === m && Object.keys(accs).length > 1 ? "weakest: its head alone" : "its head alone",
      explain("test/acc")));
  }
  const best = exp.summary && exp.summary.best;
  items.push(headlineItem("checkpoint", "selected checkpoint",
    best ? `stage ${best.stage + 1}, epoch ${best.epoch + 1}` : "–",
    best ? `val ${exp.spec.selection || "acc"} ${fmt(best.score)}` : "chosen on validation at the end"));
  for (const m of exp.spec.modalities || []) {
    const last = lastPoint(`grad/${m}/norm`);
    items.push(headlineItem(`grad-${m}`, `${m} grad norm`, last ? fmt(last[1]) : "–",
      last ? `last logged, step ${last[0].toLocaleString("en-US")}` : "none logged yet", explain("grad/norm")));
  }
  document.getElementById("headline").replaceChildren(...items);
}

function renderActions() {
  const s = exp.status;
  document.getElementById("cancel").disabled = !(s === "queued" || s === "running");
  document.getElementById("retry").disabled = !(s === "failed" || s === "cancelled");
  document.getElementById("delete").disabled = !FINISHED.includes(s);
  const twins = document.getElementById("compare-twins");
  twins.hidden = !exp.twins.length;
  twins.href = page(`/ui/compare?ids=${[exp.id, ...exp.twins].join(",")}`);
}

function renderRow() {
  root.dataset.status = exp.status;
  document.getElementById("status").replaceWith(Object.assign(badge(exp.status), { id: "status" }));
  const bar = document.getElementById("progress-bar");
  const fraction = exp.status === "succeeded" ? 1 : exp.progress?.fraction;
  bar.value = typeof fraction === "number" ? fraction : 0;
  document.getElementById("progress-text").textContent = progressText(exp) || exp.status;
  document.getElementById("f-attempts").textContent = `${exp.attempts} of ${exp.max_attempts}`;
  document.getElementById("f-worker").textContent = exp.worker || "none yet";
  document.getElementById("error-section").hidden = !exp.error;
  document.getElementById("error").textContent = exp.error || "";
  document.getElementById("traceback").textContent = exp.traceback_tail || "";
  document.getElementById("traceback-details").hidden = !exp.traceback_tail;
  renderTimeline();
  renderResults();
  renderActions();
  renderHeadline();
}

async function act(action) {
  const out = document.getElementById("action-result");
  try {
    if (action === "delete") {
      if (!window.confirm(`Delete experiment ${exp.name}?`)) return;
      await api(`/experiments/${ID}`, { method: "DELETE" });
      window.location.href = page("/");
      return;
    }
    exp = await api(`/experiments/${ID}/${action}`, { method: "POST" });
    out.textContent = action === "cancel" && exp.status === "running"
      ? "cancel requested: the run stops at its next step" : `${action}: ${exp.status}`;
    renderRow();
  } catch (err) {
    out.textContent = `${action}: ${errorText(err)}`;
  }
}

// ------------------------------------------------------------------------------ chart state

const POINTS = [250, 500, 1000, 2000, 5000, 10000];

// The view as the URL gives it (a shared link, a reload), reflected in the controls.
function readUrl() {
  const q = new URLSearchParams(window.location.search);
  if (["step", "epoch", "wall"].includes(q.get("x"))) view.xMode = q.get("x");
  const smoothing = Number(q.get("smooth"));
  if (q.has("smooth") && smoothing >= 0 && smoothing <= 0.99) view.smoothing = smoothing;
  if (POINTS.includes(Number(q.get("points")))) view.maxPoints = Number(q.get("points"));
  const [min, max] = (q.get("zoom") || "").split(":").map((v) => (v === "" ? NaN : Number(v)));
  if (Number.isFinite(min) && Number.isFinite(max) && max > min) view.zoom = { min, max };
  for (const id of (q.get("logy") || "").split(",")) if (id) view.logY.add(id);
  document.getElementById("x-axis").value = view.xMode;
  document.getElementById("smoothing").value = String(view.smoothing);
  document.getElementById("smoothing-value").textContent = String(view.smoothing);
  document.getElementById("max-points").value = String(view.maxPoints);
  document.getElementById("key-filter").value = (q.get("filter") || "").slice(0, 100);
  showZoom();
}

// The view into the URL (replaced, not pushed: the back button still leaves the page).
function writeUrl() {
  const q = new URLSearchParams();
  if (view.xMode !== DEFAULTS.x) q.set("x", view.xMode);
  if (String(view.smoothing) !== DEFAULTS.smooth) q.set("smooth", String(view.smoothing));
  if (String(view.maxPoints) !== DEFAULTS.points) q.set("points", String(view.maxPoints));
  const filter = document.getElementById("key-filter").value.trim();
  if (filter) q.set("filter", filter);
  if (view.zoom) q.set("zoom", `${view.zoom.min}:${view.zoom.max}`);
  if (view.logY.size) q.set("logy", [...view.logY].sort().join(","));
  const qs = q.toString();
  history.replaceState(null, "", `${window.location.pathname}${qs ? `?${qs}` : ""}`);
}

function showZoom() {
  const z = view.zoom;
  document.getElementById("reset-zoom").hidden = !z;
  document.getElementById("zoom-note").textContent = z
    ? `steps ${z.min.toLocaleString("en-US")}–${z.max.toLocaleString("en-US")}` : "drag across a chart to zoom";
}

// A range of steps (from a drag on any chart) or null (a double click, "all steps"): every
// chart shows it, and keeps it while new points arrive.
function setZoom(range) {
  view.zoom = range && range.max > range.min
    ? { min: Math.max(0, Math.floor(range.min)), max: Math.ceil(range.max) } : null;
  for (const panel of panels.values()) panel.applyZoom();
  showZoom();
  writeUrl();
}

function setLogY(id, on) {
  if (on) view.logY.add(id);
  else view.logY.delete(id);
  panels.get(id)?.redrawFromScratch();
  writeUrl();
}

// ------------------------------------------------------------------------------ charts

function metricsQuery(list, extra) {
  return { keys: list.join(","), ...extra };
}

async function fetchKeys(list, afterStep) {
  const chunks = [];
  for (let i = 0; i < list.length; i += KEY_CHUNK) chunks.push(list.slice(i, i + KEY_CHUNK));
  const answers = await Promise.all(chunks.map((chunk) => {
    const maxPoints = Math.max(...chunk.map((k) => store.get(k)?.maxPoints || view.maxPoints));
    const extra = { max_points: maxPoints };
    if (afterStep !== undefined) extra.after_step = afterStep;
    return api(`/experiments/${ID}/metrics`, { query: metricsQuery(chunk, extra) });
  }));
  return Object.assign({}, ...answers.map((a) => a.metrics));
}

function buildPanels() {
  const holder = document.getElementById("charts");
  const filter = document.getElementById("key-filter").value.trim().toLowerCase();
  const sections = layout(keys).map(({ family, panels: defs }) => {
    const grid = el("div", { class: "chart-grid" });
    for (const def of defs) {
      let panel = panels.get(def.id);
      if (!panel || panel.def.keys.join() !== def.keys.join()) {
        panel = new Panel(def, view, store);
        panel.more.addEventListener("click", () => morePoints(panel));
        panels.set(def.id, panel);
      }
      panel.node.hidden = Boolean(filter) && !def.id.toLowerCase().includes(filter);
      grid.append(panel.node);
    }
    return el("details", { open: true, class: "family", dataset: { family } },
      el("summary", {}, el("strong", { text: `${family}/` }), ` ${defs.length} panel${defs.length > 1 ? "s" : ""}`), grid);
  });
  holder.replaceChildren(...(sections.length ? sections : [el("p", { class: "muted", text: "no metrics logged yet" })]));
}

function drawAll() {
  for (const panel of panels.values()) panel.draw();
  if (exp) renderHeadline();
  const drawn = [...panels.values()].filter((p) => p.node.dataset.drawn).length;
  document.getElementById("charts-note").textContent = keys.length
    ? `${keys.length} keys in ${panels.size} panels` : "";
  const holder = document.getElementById("charts");
  holder.dataset.ready = drawn === panels.size ? "1" : "";
  holder.dataset.panels = String(panels.size);
}

async function fetchAllMetrics() {
  const all = await fetchKeys(keys);
  for (const [key, series] of Object.entries(all)) {
    store.set(key, { ...series, maxPoints: store.get(key)?.maxPoints || view.maxPoints });
  }
}

async function loadAllMetrics() {
  await fetchAllMetrics();
  drawAll();
}

async function morePoints(panel) {
  panel.maxPoints = Math.min(10000, panel.maxPoints * 4);
  for (const k of panel.def.keys) store.set(k, { ...(store.get(k) || {}), maxPoints: panel.maxPoints });
  const got = await fetchKeys(panel.def.keys);
  for (const [key, series] of Object.entries(got)) store.set(key, { ...series, maxPoints: panel.maxPoints });
  panel.draw();
}

// New points only: keys grouped by the last step they hold, one request per group.
async function appendMetrics() {
  const groups = new Map();
  for (const key of keys) {
    const last = store.get(key)?.steps.at(-1) ?? -1;
    if (!groups.has(last)) groups.set(last, []);
    groups.get(last).push(key);
  }
  const refetch = [];
  for (const [last, group] of groups) {
    const got = await fetchKeys(group, last);
    for (const [key, series] of Object.entries(got)) {
      const have = store.get(key) || { steps: [], values: [], total: 0, maxPoints: view.maxPoints };
      have.steps = have.steps.concat(series.steps);
      have.values = have.values.concat(series.values);
      have.total += series.total;
      store.set(key, have);
      if (have.steps.length > 2 * have.maxPoints) refetch.push(key);
    }
  }
  if (refetch.length) {
    const got = await fetchKeys(refetch);
    for (const [key, series] of Object.entries(got)) store.set(key, { ...series, maxPoints: store.get(key).maxPoints });
  }
  drawAll();
}

async function loadTimeline() {
  view.timeline = await api(`/experiments/${ID}/timeline`);
  const link = document.getElementById("mlflow-link");
  link.hidden = !view.timeline.mlflow_url;
  if (view.timeline.mlflow_url) link.href = view.timeline.mlflow_url;
}

async function loadKeys() {
  const fresh = (await api(`/experiments/${ID}/metrics`)).keys;
  const added = fresh.filter((k) => !keys.includes(k));
  keys = fresh;
  if (added.length || !panels.size) buildPanels();
  return added;
}

// ------------------------------------------------------------------------------ results

async function loadArtifacts() {
  const { artifacts } = await api(`/experiments/${ID}/artifacts`);
  const files = artifacts.filter((a) => !a.is_dir);
  const list = document.getElementById("artifacts");
  list.replaceChildren(...(files.length ? files.map((a) => el("li", {},
    el("a", { href: a.url, download: a.path.split("/").pop(), text: a.path }),
    el("span", { class: "muted", text: ` ${fmt(a.size)} bytes` }))) : [el("li", { class: "muted", text: "none yet" })]));
  if (files.some((a) => a.path === "confusion_matrices.json")) {
    renderConfusion(await api(`/experiments/${ID}/artifacts/confusion_matrices.json`));
  }
}

function heatmap(name, matrix) {
  const max = Math.max(1, ...matrix.flat());
  const head = el("tr", {}, el("th", { text: "true \\ predicted" }), matrix.map((_, j) => el("th", { text: String(j) })));
  const rows = matrix.map((row, i) => {
    const sum = row.reduce((a, b) => a + b, 0) || 1;
    return el("tr", {}, el("th", { text: String(i) }), row.map((v) => {
      const cell = el("td", { class: "num", text: String(v), title: `${pct(v / sum)} of class ${i}` });
      const share = v / sum;
      cell.style.backgroundColor = `rgba(31, 119, 180, ${share.toFixed(3)})`;
      if (share > 0.55) cell.classList.add("dark");
      return cell;
    }));
  });
  return el("figure", { class: "heatmap", dataset: { matrix: name } },
    el("figcaption", { text: `${name} (${max.toLocaleString("en-US")} max; shade: share of the true class)` }),
    el("table", {}, head, rows));
}

function renderConfusion(matrices) {
  const names = Object.keys(matrices).sort((a, b) => (a === "fused" ? -1 : b === "fused" ? 1 : a.localeCompare(b)));
  document.getElementById("confusion").replaceChildren(...names.map((n) => heatmap(n, matrices[n])));
}

// ------------------------------------------------------------------------------ live

async function refreshRow() {
  const before = exp ? exp.status : null;
  exp = await api(`/experiments/${ID}`);
  view.modalities = exp.spec.modalities || [];
  view.name = exp.name;
  renderRow();
  return before;
}

async function everything() {
  await refreshRow();
  if (!exp.mlflow_run_id) return;
  const timeline = loadTimeline();
  await loadKeys();
  await Promise.all([timeline, fetchAllMetrics()]);
  drawAll();
  await loadArtifacts(); // after the charts: listing them may be slow (an MLflow server)
}

async function onTick() {
  tick += 1;
  const before = await refreshRow();
  if (!exp.mlflow_run_id) return;
  const finishedNow = FINISHED.includes(exp.status);
  if (finishedNow && finishedSeen && before === exp.status) return;
  if (finishedNow || !panels.size) {
    finishedSeen = finishedNow;
    await everything();
    return;
  }
  finishedSeen = false;
  if (tick % 5 === 0 || !view.timeline) await loadTimeline();
  if (tick % 3 === 0) await loadKeys();
  await appendMetrics();
}

function setupControls() {
  for (const action of ["cancel", "retry", "delete"]) {
    document.getElementById(action).addEventListener("click", () => act(action));
  }
  document.getElementById("x-axis").addEventListener("change", (event) => {
    view.xMode = event.target.value;
    for (const p of panels.values()) p.redrawFromScratch();
    writeUrl();
  });
  const smoothing = document.getElementById("smoothing");
  smoothing.addEventListener("input", () => {
    view.smoothing = Number(smoothing.value);
    document.getElementById("smoothing-value").textContent = smoothing.value;
    drawAll();
    writeUrl();
  });
  document.getElementById("max-points").addEventListener("change", async (event) => {
    view.maxPoints = Number(event.target.value);
    for (const p of panels.values()) p.maxPoints = view.maxPoints;
    for (const s of store.values()) s.maxPoints = view.maxPoints;
    writeUrl();
    await loadAllMetrics();
  });
  document.getElementById("key-filter").addEventListener("input", () => {
    buildPanels();
    writeUrl();
  });
  document.getElementById("reset-zoom").addEventListener("click", () => setZoom(null));
  window.addEventListener("resize", () => { for (const p of panels.values()) p.resize(); });
  document.getElementById("artifacts").addEventListener("click", (event) => {
    const a = event.target.closest("a[download]");
    if (!a) return;
    event.preventDefault();
    download(a.href, a.download).catch((err) => showBanner(errorText(err)));
  });
}

async function start() {
  readUrl();
  setupControls();
  try {
    await everything();
    finishedSeen = FINISHED.includes(exp.status);
    setLive("live", true);
  } catch (err) {
    showBanner(errorText(err));
  }
  poll(onTick, 1000);
}

start();
