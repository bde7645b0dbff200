// The experiments page: one page of GET /experiments (filters, search, sort, server-side
// paging), kept live by polling GET /experiments/changes; cancel, retry and delete per row;
// sweeps grouped; the submit form lives in submit.js.

import {
  FINISHED, api, badge, duration, el, errorText, page, pct, poll, progressText, runSeconds,
  setLive, showBanner, weakest, when,
} from "./api.js";
import { setupSubmit } from "./submit.js";

const table = document.getElementById("experiments");
const tbody = document.getElementById("rows");
const filtersForm = document.getElementById("filters");
const groupSweeps = document.getElementById("group-sweeps");
const LIMIT = Number(table.dataset.limit) || 50;
// the filters of GET /experiments, as the server's model names them (server/filters.py); read
// with getAttribute: the form's `dataset` property is its <select name="dataset">
const FILTERS = filtersForm.getAttribute("data-filters").split(" ");

const state = {
  sort: table.dataset.sort || "-created_at",
  offset: Number(table.dataset.offset) || 0,
  rows: new Map(), // id -> experiment summary shown
  count: 0,
  cursor: null,
  selected: new Set(),
};

function filters() {
  const data = new FormData(filtersForm);
  // a filter given several times (the conditions of `match`) as a list
  const values = (k) => data.getAll(k).map((v) => v.trim()).filter(Boolean);
  return Object.fromEntries(FILTERS.map((k) => [k, values(k).length > 1 ? values(k) : values(k)[0] || ""]));
}

function syncUrl() {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(filters())) for (const x of [v].flat()) if (x) query.append(k, x);
  if (state.sort !== "-created_at") query.set("sort", state.sort);
  if (state.offset) query.set("offset", String(state.offset));
  const qs = query.toString();
  history.replaceState(null, "", page("/") + (qs ? `?${qs}` : ""));
  document.querySelector('link[rel="alternate"]').href = page("/experiments") + (qs ? `?${qs}` : "");
}

// ------------------------------------------------------------------------------ rows

async function act(exp, action) {
  try {
    if (action === "delete") {
      if (!window.confirm(`Delete experiment ${exp.name} (${exp.id.slice(0, 8)})?`)) return;
      await api(`/experiments/${exp.id}`, { method: "DELETE" });
    } else {
      await api(`/experiments/${exp.id}/${action}`, { method: "POST" });
    }
    showBanner("");
    await refresh();
  } catch (err) {
    showBanner(`${action} ${exp.name}: ${errorText(err)}`);
  }
}

function actions(exp) {
  const out = el("span", { class: "row-actions" });
  const add = (name, label) =>
    out.append(el("button", { type: "button", class: `small ${name}`, dataset: { action: name },
      onclick: () => act(exp, name) }, label));
  if (exp.status === "queued" || exp.status === "running") add("cancel", "cancel");
  if (exp.status === "failed" || exp.status === "cancelled") add("retry", "retry");
  if (FINISHED.includes(exp.status)) add("delete", "delete");
  return out;
}

function progressCell(exp) {
  const cell = el("td", { class: "progress-cell" });
  const p = exp.progress;
  if (exp.status === "running" && p && typeof p.fraction === "number") {
    cell.append(el("progress", { max: "1", value: String(p.fraction) }), " ");
  }
  cell.append(el("span", { class: "progress-text", text: progressText(exp) }));
  return cell;
}

function row(exp) {
  const weak = weakest(exp.summary);
  const test = exp.summary && exp.summary.test;
  const check = el("input", { type: "checkbox", dataset: { id: exp.id }, "aria-label": "select" });
  check.checked = state.selected.has(exp.id);
  check.addEventListener("change", () => {
    if (check.checked) state.selected.add(exp.id);
    else state.selected.delete(exp.id);
    document.getElementById("compare-selected").disabled = state.selected.size < 1;
  });
  const name = el("td", { class: "name" },
    el("a", { href: page(`/ui/experiments/${exp.id}`), text: exp.name }));
  if (exp.sweep_values) {
    const values = Object.entries(exp.sweep_values).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    name.append(el("div", { class: "muted small", text: values.join(" ") }));
  }
  const tags = el("td", { class: "tags" },
    exp.tags.map((t) => el("a", { class: "tag", href: page(`/?tag=${encodeURIComponent(t)}`), text: t })));
  return el("tr", { id: `row-${exp.id}`, dataset: { id: exp.id, updated: exp.updated_at || "",
    status: exp.status, sweep: exp.sweep_id || "" } },
    el("td", { class: "check" }, check),
    name,
    el("td", { text: exp.method, dataset: { label: "method" } }),
    el("td", { text: exp.dataset, dataset: { label: "dataset" } }),
    tags,
    el("td", {}, badge(exp.status)),
    progressCell(exp),
    el("td", { class: "num", text: test ? pct(test.acc) : "–", dataset: { label: "test acc" } }),
    el("td", { class: "num", title: weak ? weak[0] : "", text: weak ? `${pct(weak[1])} ${weak[0]}` : "–",
      dataset: { label: "weak acc" } }),
    el("td", { class: "when", text: when(exp.created_at), dataset: { label: "created" } }),
    el("td", { class: "num", text: duration(runSeconds(exp)), dataset: { label: "took" } }),
    el("td", {}, actions(exp)),
  );
}

function sweepHeader(sweepId, members) {
  const base = members[0].name.replace(/-\d+$/, "");
  const toggle = el("button", { type: "button", class: "small", text: "hide" });
  const header = el("tr", { class: "sweep-header", dataset: { sweep: sweepId } },
    el("td", { colspan: "12" },
      toggle, " ",
      el("strong", { text: `sweep ${base}` }), " ",
      el("span", { class: "muted", text: `${sweepId.slice(0, 8)} · ${members.length} on this page · ` +
        members.map((m) => m.status).filter((s, i, a) => a.indexOf(s) === i).join(", ") }), " ",
      el("a", { href: page(`/?sweep=${sweepId}`), text: "all points" }), " · ",
      el("a", { href: page(`/ui/compare?sweep=${sweepId}`), text: "compare" }), " · ",
      el("a", { href: page(`/ui/sweeps/${sweepId}`), text: "plots" })));
  toggle.addEventListener("click", () => {
    const hide = toggle.textContent === "hide";
    toggle.textContent = hide ? "show" : "hide";
    for (const tr of tbody.querySelectorAll(`tr[data-sweep="${sweepId}"]:not(.sweep-header)`)) tr.hidden = hide;
  });
  return header;
}

function render(data) {
  state.rows = new Map(data.map((e) => [e.id, e]));
  const nodes = [];
  if (!data.length) nodes.push(el("tr", { class: "placeholder" }, el("td", { colspan: "12", text: "no experiments match" })));
  const grouped = groupSweeps.checked;
  const done = new Set();
  for (const exp of data) {
    if (done.has(exp.id)) continue;
    const members = grouped && exp.sweep_id ? data.filter((e) => e.sweep_id === exp.sweep_id) : [exp];
    if (members.length > 1) nodes.push(sweepHeader(exp.sweep_id, members));
    for (const m of members) {
      nodes.push(row(m));
      done.add(m.id);
    }
  }
  tbody.replaceChildren(...nodes);
  const first = state.count ? state.offset + 1 : 0;
  const last = Math.min(state.offset + LIMIT, state.count);
  document.getElementById("page-info").textContent =
    `${first.toLocaleString("en-US")}–${last.toLocaleString("en-US")} of ${state.count.toLocaleString("en-US")}`;
  document.getElementById("prev-page").disabled = state.offset === 0;
  document.getElementById("next-page").disabled = state.offset + LIMIT >= state.count;
  for (const th of table.querySelectorAll("th[data-sort-key]")) {
    const key = th.dataset.sortKey;
    th.classList.toggle("sorted-asc", state.sort === key);
    th.classList.toggle("sorted-desc", state.sort === `-${key}`);
  }
  table.dataset.ready = "1";
}

// ------------------------------------------------------------------------------ loading

async function refresh() {
  const query = { ...filters(), sort: state.sort, limit: LIMIT, offset: state.offset };
  const [feed, list] = await Promise.all([
    api("/experiments/changes", { query: filters() }),
    api("/experiments", { query }),
  ]);
  state.cursor = feed.cursor;
  state.count = list.count;
  render(list.data);
}

async function reload() {
  syncUrl();
  try {
    await refresh();
    showBanner("");
    setLive("live", true);
  } catch (err) {
    showBanner(errorText(err));
  }
}

// Only what changed: rows in view are replaced in place; a change in the number of matching
// experiments (new, deleted, moved out of a filter) or in a sort key reloads this one page.
async function applyChanges() {
  const feed = await api("/experiments/changes", { query: { ...filters(), since: state.cursor } });
  state.cursor = feed.cursor;
  const sortKey = state.sort.replace(/^-/, "");
  let stale = feed.truncated || feed.count !== state.count;
  for (const exp of feed.data) {
    const shown = state.rows.get(exp.id);
    if (!shown) continue;
    if (shown.updated_at === exp.updated_at) continue;
    if (shown[sortKey] !== exp[sortKey]) stale = true;
    state.rows.set(exp.id, exp);
    const old = document.getElementById(`row-${exp.id}`);
    if (old) old.replaceWith(row(exp));
  }
  if (stale) await refresh();
}

function setup() {
  filtersForm.addEventListener("submit", (event) => {
    event.preventDefault();
    state.offset = 0;
    reload();
  });
  for (const input of filtersForm.querySelectorAll("select")) input.addEventListener("change", () => {
    state.offset = 0;
    reload();
  });
  let typing = null;
  filtersForm.elements.q.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.offset = 0; reload(); }, 250);
  });
  groupSweeps.addEventListener("change", () => render([...state.rows.values()]));
  for (const th of table.querySelectorAll("th[data-sort-key]")) {
    th.classList.add("sortable");
    th.addEventListener("click", () => {
      const key = th.dataset.sortKey;
      state.sort = state.sort === `-${key}` ? key : `-${key}`;
      state.offset = 0;
      reload();
    });
  }
  document.getElementById("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - LIMIT);
    reload();
  });
  document.getElementById("next-page").addEventListener("click", () => {
    state.offset += LIMIT;
    reload();
  });
  document.getElementById("select-all").addEventListener("change", (event) => {
    for (const box of tbody.querySelectorAll("input[type=checkbox][data-id]")) {
      box.checked = event.target.checked;
      box.dispatchEvent(new Event("change"));
    }
  });
  document.getElementById("compare-selected").addEventListener("click", () => {
    window.location.href = page(`/ui/compare?ids=${[...state.selected].join(",")}`);
  });
  setupSubmit(reload);
  reload();
  poll(applyChanges, 1000);
}

setup();
