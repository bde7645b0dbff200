// The run table: one page of GET /experiments with the chosen columns (spec values and result
// metrics by dotted key: optimizer.lr, test.acc, ...), sorted, filtered and paged by the server;
// columns, conditions and sort kept in the page's address; CSV of what is shown (or of every
// matching experiment); kept live by polling GET /experiments/changes with the same query.

import { api, badge, el, errorText, fmt, page, poll, setLive, showBanner, when } from "./api.js";
import { csvText, saveCsv } from "./csv.js";

const table = document.getElementById("run-table");
const form = document.getElementById("filters");
const chips = document.getElementById("conditions");
// the filters of GET /experiments as the server's model names them (server/filters.py)
const FILTERS = form.getAttribute("data-filters").split(" ");
const FIXED = [
  { key: "name", label: "Name" },
  { key: "status", label: "Status" },
  { key: "method", label: "Method" },
  { key: "dataset", label: "Dataset" },
];
const MAX_EXPORT = 20000;

const state = {
  columns: (table.dataset.columns || "").split(" ").filter(Boolean),
  sort: table.dataset.sort || "-created_at",
  offset: Number(table.dataset.offset) || 0,
  limit: Number(table.dataset.limit) || 50,
  rows: [],
  count: 0,
  cursor: null,
  keys: new Set(),
};

// {name: value} of the filter form; a filter given several times (conditions) as a list
function filters() {
  const data = new FormData(form);
  const out = {};
  for (const name of FILTERS) {
    const all = data.getAll(name).map((v) => String(v).trim()).filter(Boolean);
    out[name] = all.length > 1 ? all : all[0] || "";
  }
  return out;
}

function query(extra = {}) {
  return { ...filters(), columns: state.columns.join(","), sort: state.sort, limit: state.limit,
    offset: state.offset, ...extra };
}

function syncUrl() {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters())) for (const x of [v].flat()) if (x) params.append(k, x);
  params.set("columns", state.columns.join(","));
  if (state.sort !== "-created_at") params.set("sort", state.sort);
  if (state.offset) params.set("offset", String(state.offset));
  if (state.limit !== 50) params.set("limit", String(state.limit));
  const qs = params.toString();
  history.replaceState(null, "", `${page("/ui/table")}?${qs}`);
  document.querySelector('link[rel="alternate"]').href = `${page("/experiments")}?${qs}`;
  const sweep = filters().sweep;
  const plots = document.getElementById("sweep-plots");
  plots.hidden = !sweep;
  plots.href = page(`/ui/sweeps/${encodeURIComponent(sweep || "")}`);
}

// ------------------------------------------------------------------------------ cells

function shown(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return fmt(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function headerCell(key, label, numeric) {
  const th = el("th", { class: `sortable${numeric ? " num" : ""}`, dataset: { sortKey: key },
    title: `sort by ${key}` }, label);
  th.classList.toggle("sorted-asc", state.sort === key);
  th.classList.toggle("sorted-desc", state.sort === `-${key}`);
  th.addEventListener("click", () => {
    state.sort = state.sort === `-${key}` ? key : `-${key}`;
    state.offset = 0;
    reload();
  });
  return th;
}

function renderHead() {
  const cells = FIXED.map((c) => headerCell(c.key, c.label, false));
  for (const key of state.columns) {
    const th = headerCell(key, key, true);
    th.dataset.column = key;
    th.append(" ", el("button", { type: "button", class: "small link remove-column", title: `remove ${key}`,
      "aria-label": `remove column ${key}`, onclick: (event) => {
        event.stopPropagation();
        setColumns(state.columns.filter((c) => c !== key));
      } }, "×"));
    cells.push(th);
  }
  cells.push(headerCell("created_at", "Created", false), el("th", { text: "Error" }));
  document.getElementById("head-row").replaceChildren(...cells);
}

function row(exp) {
  const values = exp.values || {};
  const name = el("td", { class: "name" }, el("a", { href: page(`/ui/experiments/${exp.id}`), text: exp.name }));
  const error = exp.error_excerpt || "";
  return el("tr", { dataset: { id: exp.id, status: exp.status } },
    name,
    el("td", {}, badge(exp.status)),
    el("td", { text: exp.method }),
    el("td", { text: exp.dataset }),
    state.columns.map((key) => {
      const text = shown(values[key]);
      return el("td", { class: "num value", dataset: { column: key }, title: text, text });
    }),
    el("td", { class: "when", text: when(exp.created_at) }),
    el("td", { class: "error-excerpt", title: error, text: error }),
  );
}

function render() {
  renderHead();
  const width = FIXED.length + state.columns.length + 2;
  const body = state.rows.length ? state.rows.map(row)
    : [el("tr", { class: "placeholder" }, el("td", { colspan: String(width), text: "no experiments match" }))];
  document.getElementById("rows").replaceChildren(...body);
  const first = state.count ? state.offset + 1 : 0;
  const last = Math.min(state.offset + state.limit, state.count);
  const n = (x) => x.toLocaleString("en-US");
  document.getElementById("page-info").textContent = `${n(first)}–${n(last)} of ${n(state.count)}`;
  document.getElementById("table-count").textContent = `${n(state.count)} matching`;
  document.getElementById("prev-page").disabled = state.offset === 0;
  document.getElementById("next-page").disabled = state.offset + state.limit >= state.count;
  table.dataset.ready = "1";
}

// ------------------------------------------------------------------------------ key suggestions

function leaves(value, prefix, out) {
  if (out.size > 400 || prefix.split(".").length > 8) return;
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out.add(prefix);
  }
}

async function suggest(rows) {
  const before = state.keys.size;
  for (const exp of rows) {
    leaves(exp.summary || {}, "", state.keys);
    for (const k of Object.keys(exp.sweep_values || {})) state.keys.add(k);
  }
  if (!state.specRead && rows.length) {
    state.specRead = true;
    try {
      leaves((await api(`/experiments/${rows[0].id}`)).spec, "", state.keys);
    } catch {
      state.specRead = false;
    }
  }
  if (state.keys.size === before) return;
  const options = [...state.keys].sort().map((k) => el("option", { value: k }));
  document.getElementById("key-list").replaceChildren(...options);
}

// ------------------------------------------------------------------------------ loading

async function refresh() {
  // the feed's first answer only gives the cursor to poll from: no filters to count
  const [feed, list] = await Promise.all([api("/experiments/changes"), api("/experiments", { query: query() })]);
  state.cursor = feed.cursor;
  state.rows = list.data;
  state.count = list.count;
  render();
  suggest(list.data);
}

// Loads the page for the current state; on a refused query (a bad key or condition) `undo`
// restores the state before the change and the server's message is shown.
async function reload(undo) {
  try {
    await refresh();
    syncUrl();
    showBanner("");
    setLive("live", true);
  } catch (err) {
    showBanner(errorText(err));
    if (undo) {
      undo();
      await refresh().catch(() => {});
    }
  }
}

async function applyChanges() {
  const feed = await api("/experiments/changes", {
    query: { ...filters(), columns: state.columns.join(","), since: state.cursor },
  });
  state.cursor = feed.cursor;
  const shownIds = new Set(state.rows.map((e) => e.id));
  const changed = feed.data.some((e) => shownIds.has(e.id) &&
    state.rows.find((r) => r.id === e.id).updated_at !== e.updated_at);
  if (feed.truncated || feed.count !== state.count || changed) await refresh();
}

function setColumns(columns) {
  const before = state.columns;
  state.columns = [...new Set(columns)];
  reload(() => { state.columns = before; });
}

function addCondition(text) {
  const chip = el("span", { class: "chip" }, el("input", { type: "hidden", name: "match", value: text }),
    el("code", { text }));
  chips.append(chip);
  removable(chip);
  state.offset = 0;
  reload(() => chip.remove());
}

function removable(chip) {
  chip.append(el("button", { type: "button", class: "small link", "aria-label": "remove condition",
    title: "remove this condition", onclick: () => { chip.remove(); state.offset = 0; reload(); } }, "×"));
}

// ------------------------------------------------------------------------------ CSV

function csvRows(rows) {
  const head = ["id", "name", "status", "method", "dataset", ...state.columns, "created_at", "error"];
  const body = rows.map((e) => ["id", "name", "status", "method", "dataset"].map((k) => e[k])
    .concat(state.columns.map((k) => (e.values || {})[k]), [e.created_at, e.error_excerpt]));
  return [head, ...body];
}

async function exportAll() {
  const status = document.getElementById("export-status");
  const rows = [];
  for (let offset = 0; offset < Math.min(state.count, MAX_EXPORT); offset += 500) {
    status.textContent = `reading ${offset.toLocaleString("en-US")} of ${state.count.toLocaleString("en-US")}…`;
    const list = await api("/experiments", { query: query({ limit: 500, offset }) });
    rows.push(...list.data);
    if (list.data.length < 500) break;
  }
  status.textContent = state.count > MAX_EXPORT ? `the first ${MAX_EXPORT.toLocaleString("en-US")} exported` : "";
  saveCsv(csvText(csvRows(rows.slice(0, MAX_EXPORT))), "igm-runs-all");
}

// ------------------------------------------------------------------------------ set-up

function setup() {
  for (const chip of chips.querySelectorAll(".chip")) removable(chip);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.offset = 0;
    reload();
  });
  for (const input of form.querySelectorAll("select")) input.addEventListener("change", () => {
    state.offset = 0;
    reload();
  });
  const condition = document.getElementById("new-condition");
  const addCond = () => {
    const text = condition.value.trim();
    if (!text) return;
    condition.value = "";
    addCondition(text);
  };
  document.getElementById("add-condition").addEventListener("click", addCond);
  condition.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); addCond(); }
  });
  const column = document.getElementById("new-column");
  const addCol = () => {
    const key = column.value.trim();
    if (!key) return;
    column.value = "";
    setColumns([...state.columns, key]);
  };
  document.getElementById("add-column").addEventListener("click", addCol);
  column.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); addCol(); }
  });
  document.getElementById("page-size").addEventListener("change", (event) => {
    state.limit = Number(event.target.value);
    state.offset = 0;
    reload();
  });
  document.getElementById("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    reload();
  });
  document.getElementById("next-page").addEventListener("click", () => {
    state.offset += state.limit;
    reload();
  });
  document.getElementById("export-page").addEventListener("click", () => {
    saveCsv(csvText(csvRows(state.rows)), "igm-runs");
  });
  document.getElementById("export-all").addEventListener("click", () => {
    exportAll().catch((err) => showBanner(`export: ${errorText(err)}`));
  });
  reload();
  poll(applyChanges, 2000);
}

setup();
