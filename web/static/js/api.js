// Shared by the page scripts: requests to the JSON API (with the token when the server asks for
// one), DOM building that only ever sets text (never HTML), polling, and number formatting.

const ROOT = document.body.dataset.root || "";
const TOKEN_KEY = "igm-lab-token";
const TOKEN_COOKIE = "igm_token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

let tokenPrompt = null;

// Resolves with a token typed into the dialog; one dialog however many requests wait on it.
function askForToken() {
  if (tokenPrompt) return tokenPrompt;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  tokenPrompt = new Promise((resolve) => {
    form.addEventListener(
      "submit",
      () => {
        const token = input.value.trim();
        input.value = "";
        sessionStorage.setItem(TOKEN_KEY, token);
        // page loads cannot send a header: a cookie for this browser session carries it to
        // the dashboard's pages (the API itself reads only the Authorization header)
        document.cookie = `${TOKEN_COOKIE}=${encodeURIComponent(token)}; path=${ROOT || "/"}; SameSite=Strict`;
        tokenPrompt = null;
        resolve(token);
      },
      { once: true },
    );
    dialog.showModal();
  });
  return tokenPrompt;
}

export function url(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  const qs = params.toString();
  return ROOT + path + (qs ? `?${qs}` : "");
}

// fetch() of the API: JSON (or text) back, ApiError on a non-2xx answer; a 401 asks for a
// token, keeps it in sessionStorage and retries with `Authorization: Bearer <token>`.
export async function api(path, { method = "GET", query, body, contentType } = {}) {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    if (contentType) headers["Content-Type"] = contentType;
    const res = await fetch(url(path, query), { method, headers, body });
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      document.cookie = `${TOKEN_COOKIE}=; path=${ROOT || "/"}; max-age=0; SameSite=Strict`;
      await askForToken();
      continue;
    }
    if (res.status === 204) return null;
    const isJson = (res.headers.get("content-type") || "").includes("json");
    const data = isJson ? await res.json() : await res.text();
    if (!res.ok) throw new ApiError(res.status, isJson && data ? data.detail : data);
    return data;
  }
  throw new ApiError(401, "the server refused every token given");
}

// el("a", {href, class: "x", dataset: {id}}, "text", child): children are nodes or text.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// An artifact download that carries the token (a plain link cannot send the header).
export async function download(href, name) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    window.location.href = href;
    return;
  }
  const res = await fetch(href, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new ApiError(res.status, `download of ${name} failed`);
  const link = el("a", { href: URL.createObjectURL(await res.blob()), download: name });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

export function page(path) {
  return ROOT + path;
}

export function showBanner(message) {
  const banner = document.getElementById("banner");
  banner.textContent = message;
  banner.hidden = !message;
}

export function errorText(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  if (Array.isArray(err.detail)) return err.detail.map((d) => `${d.loc}: ${d.msg}`).join("; ");
  return `HTTP ${err.status}: ${typeof err.detail === "string" ? err.detail : err.message}`;
}

// Calls `tick` every `ms` while the tab is visible; errors back off (up to 30 s) and show in
// the live indicator. Returns a function that stops it.
export function poll(tick, ms) {
  const live = document.getElementById("live");
  let stopped = false;
  let delay = ms;
  let timer = null;
  async function run() {
    if (stopped) return;
    if (document.hidden) {
      timer = setTimeout(run, ms);
      return;
    }
    try {
      await tick();
      delay = ms;
      live.textContent = "live";
      live.className = "live on";
    } catch (err) {
      delay = Math.min(delay * 2, 30000);
      live.textContent = `retrying: ${errorText(err)}`;
      live.className = "live off";
    }
    if (!stopped) timer = setTimeout(run, delay);
  }
  timer = setTimeout(run, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export function setLive(text, on) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.className = on ? "live on" : "live";
}

// ------------------------------------------------------------------------------ formatting

export function fmt(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  return Math.abs(x) >= 1000 || Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toFixed(digits);
}

export function pct(x) {
  return typeof x === "number" ? `${(100 * x).toFixed(1)}%` : "–";
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(s / 3600);
  return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function runSeconds(exp) {
  if (!exp.started_at) return null;
  const end = exp.finished_at ? new Date(exp.finished_at) : new Date();
  return (end - new Date(exp.started_at)) / 1000;
}

export function badge(status) {
  return el("span", { class: `badge status-${status}`, text: status });
}

export function progressText(exp) {
  const p = exp.progress;
  if (!p || exp.status === "queued") return exp.status === "queued" ? "queued" : "";
  const parts = [];
  if (p.n_stages) {
    const mods = p.modalities && p.modalities.length ? ` (${p.modalities.join("+")})` : "";
    parts.push(`stage ${(p.stage ?? 0) + 1}/${p.n_stages}${mods}`);
  }
  if (p.epochs) parts.push(`epoch ${(p.epoch ?? 0) + 1}/${p.epochs}`);
  if (typeof p.fraction === "number") parts.push(pct(p.fraction));
  if (exp.status === "running" && typeof p.eta_s === "number") parts.push(`ETA ${duration(p.eta_s)}`);
  if (typeof p.val_acc === "number") parts.push(`val ${pct(p.val_acc)}`);
  return parts.join(" · ");
}

// The weakest modality's test accuracy: [name, acc] or null.
export function weakest(summary) {
  const accs = summary && summary.test && summary.test.modality_acc;
  if (!accs) return null;
  const entries = Object.entries(accs).filter(([, v]) => typeof v === "number");
  if (!entries.length) return null;
  return entries.reduce((a, b) => (b[1] < a[1] ? b : a));
}

export const FINISHED = ["succeeded", "failed", "cancelled"];
