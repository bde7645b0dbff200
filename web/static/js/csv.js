// CSV of a table (RFC 4180: comma-separated, CRLF line ends, fields with a comma, quote or line
// break in double quotes), saved as a download. Numbers are written in full (not as shown on the
// page), objects as JSON; text that a spreadsheet would run as a formula (=, +, -, @ first)
// gets a leading apostrophe.

function cell(value) {
  if (value === null || value === undefined) return "";
  let text;
  if (typeof value === "number" || typeof value === "boolean") text = String(value);
  else if (typeof value === "object") text = JSON.stringify(value);
  else text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// rows: arrays of values, the first the header
export function csvText(rows) {
  return rows.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}

export function saveCsv(text, base) {
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  link.download = `${base}-${stamp}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
