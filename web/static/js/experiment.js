// One experiment: its row (GET /experiments/{id}) polled while it runs, the timeline (stages,
// epochs, clock) and the metric charts (GET .../metrics, new points appended with after_step),
// test metrics, confusion matrices as heatmaps, artifacts, and cancel / retry / delete.

import {
  FINISHED, api, badge, download, duration, el, errorText, fmt, page, pct, poll, progressText, runSeconds,
  setLive, showBanner, when,
} from "./api.js";
import { Panel, layout } from "./charts.js";

const root = document.getElementById("experiment");
const ID = root.dataset.id;
const KEY_CHUNK = 4; // keys per metrics request; the chunks are fetched in parallel
const view = { xMode: "step", smoothing: 0, maxPoints: 1000, timeline: null, modalities: [] };
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
  });
  const smoothing = document.getElementById("smoothing");
  smoothing.addEventListener("input", () => {
    view.smoothing = Number(smoothing.value);
    document.getElementById("smoothing-value").textContent = smoothing.value;
    drawAll();
  });
  document.getElementById("max-points").addEventListener("change", async (event) => {
    view.maxPoints = Number(event.target.value);
    for (const p of panels.values()) p.maxPoints = view.maxPoints;
    for (const s of store.values()) s.maxPoints = view.maxPoints;
    await loadAllMetrics();
  });
  document.getElementById("key-filter").addEventListener("input", buildPanels);
  window.addEventListener("resize", () => { for (const p of panels.values()) p.resize(); });
  document.getElementById("artifacts").addEventListener("click", (event) => {
    const a = event.target.closest("a[download]");
    if (!a) return;
    event.preventDefault();
    download(a.href, a.download).catch((err) => showBanner(errorText(err)));
  });
}

async function start() {
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
