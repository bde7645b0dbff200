// The submit form of the experiments page: paste or upload a YAML/JSON spec, or start from an
// example built from the registries; POST /experiments; each validation error is shown next to
// its field (tags, priority, queue) or, for the spec's own fields, listed under the text with the
// line that holds the key (click it to select that line).

import { api, el, errorText, page } from "./api.js";

const text = document.getElementById("spec-text");
const specErrors = document.getElementById("spec-errors");
const result = document.getElementById("submit-result");

function example(method, dataset) {
  return JSON.stringify({ name: `${method}-${dataset}`, dataset: { name: dataset }, method: { name: method } }, null, 2);
}

// The line (0-based) where the last part of a dotted field is written as a key, or -1.
function lineOf(field) {
  const parts = field.split(".").filter((p) => !/^\d+$/.test(p));
  const key = parts[parts.length - 1];
  if (!key) return -1;
  const pattern = new RegExp(`^\\s*-?\\s*["']?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*:`);
  const lines = text.value.split("\n");
  for (let i = 0; i < lines.length; i += 1) if (pattern.test(lines[i])) return i;
  return -1;
}

function selectLine(line) {
  const lines = text.value.split("\n");
  const start = lines.slice(0, line).reduce((n, l) => n + l.length + 1, 0);
  text.focus();
  text.setSelectionRange(start, start + lines[line].length);
}

function clearErrors() {
  specErrors.replaceChildren();
  for (const span of document.querySelectorAll("#submit-form .field-error")) span.textContent = "";
  text.classList.remove("invalid");
}

// Every problem the server found, at once: each beside its field (tags, priority, queue), the
// spec's listed under the text.
function showErrors(detail) {
  const items = Array.isArray(detail) ? detail : [{ loc: "body", msg: String(detail) }];
  for (const { loc, msg } of items) {
    const where = String(loc);
    const name = CSS.escape(where.replace(/\.\d+$/, ""));
    const field = document.querySelector(`#submit-form .field-error[data-field="${name}"]`);
    if (field) {
      field.textContent = field.textContent ? `${field.textContent}; ${msg}` : msg;
      continue;
    }
    const line = lineOf(where);
    const item = el("li", { dataset: { field: where } },
      el("code", { text: where }), `: ${msg}`,
      line >= 0 ? el("button", { type: "button", class: "small link", text: `line ${line + 1}`,
        onclick: () => selectLine(line) }) : null);
    specErrors.append(item);
    text.classList.add("invalid");
  }
}

async function submit(event, onCreated) {
  event.preventDefault();
  clearErrors();
  const body = text.value.trim();
  if (!body) {
    showErrors([{ loc: "body", msg: "paste a spec, upload a file or start from an example" }]);
    return;
  }
  const tags = document.getElementById("submit-tags").value.split(/[\s,]+/).filter(Boolean);
  const query = {
    tags,
    priority: document.getElementById("submit-priority").value,
    queue: document.getElementById("submit-queue").value.trim(),
  };
  const contentType = body.startsWith("{") ? "application/json" : "application/yaml";
  const button = document.getElementById("submit-button");
  button.disabled = true;
  result.replaceChildren("submitting…");
  try {
    const exp = await api("/experiments", { method: "POST", query, body, contentType });
    result.replaceChildren("created ",
      el("a", { href: page(`/ui/experiments/${exp.id}`), text: `${exp.name} (${exp.id.slice(0, 8)})` }),
      exp.warning ? el("span", { class: "warning", text: ` ${exp.warning}` }) : null);
    await onCreated();
  } catch (err) {
    const count = Array.isArray(err.detail) ? err.detail.length : 0;
    const problems = count === 1 ? "1 problem" : `${count} problems`;
    result.replaceChildren(err.status === 422 && count ? `not submitted: ${problems} to fix, marked below`
      : errorText(err));
    if (err.detail !== undefined) showErrors(err.detail);
  } finally {
    button.disabled = false;
  }
}

export function setupSubmit(onCreated) {
  const panel = document.getElementById("submit-panel");
  document.getElementById("new-experiment").addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden && !text.value) document.getElementById("load-example").click();
  });
  document.getElementById("load-example").addEventListener("click", () => {
    text.value = example(document.getElementById("example-method").value,
      document.getElementById("example-dataset").value);
    clearErrors();
  });
  document.getElementById("spec-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    if (file.size > 1_000_000) {
      showErrors([{ loc: "body", msg: `${file.name} is over 1 MB` }]);
      return;
    }
    text.value = await file.text();
    clearErrors();
  });
  document.getElementById("submit-form").addEventListener("submit", (event) => submit(event, onCreated));
}
