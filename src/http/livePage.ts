/**
 * The live view's page: one self-contained HTML document (inline CSS and JS, no external assets)
 * that polls `live.json` every second and renders services, instances, per-command figures and the
 * event tail. Every value from the bus is inserted as text, never as HTML.
 */

/** The page served at `GET /`. */
export const LIVE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Herald live view</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #f7f8fa; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
  .meta, .note { color: #5a6275; font-size: .85rem; }
  section.service { background: #fff; border: 1px solid #dde1ea; border-radius: 6px; padding: .75rem 1rem; margin: .75rem 0; }
  section.service h3 { margin: 0 0 .4rem; font-size: 1rem; }
  table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
  th, td { text-align: left; padding: .2rem .6rem .2rem 0; border-bottom: 1px solid #eef0f4; font-variant-numeric: tabular-nums; }
  th { font-weight: 600; color: #5a6275; font-size: .8rem; }
  .down { color: #b3261e; }
  #error { color: #b3261e; }
</style>
</head>
<body>
<h1>Herald live view</h1>
<div class="meta">bridge <span id="bridge">…</span> · updated <span id="updated">never</span> · window <span id="window">–</span> s <span id="error"></span></div>
<div class="note" id="note"></div>
<h2>Services</h2>
<div id="services"></div>
<h2>Recent events</h2>
<table><thead><tr><th>time</th><th>event</th><th>sender</th><th>tenant</th><th>data</th></tr></thead><tbody id="events"></tbody></table>
<script>
"use strict";
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
};
const num = (v, digits) => v == null ? "–" : (digits === undefined ? String(v) : v.toFixed(digits));
const time = (ms) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");
const uptime = (ms) => { const s = Math.floor(ms / 1000); return s < 120 ? s + " s" : s < 7200 ? Math.floor(s / 60) + " min" : Math.floor(s / 3600) + " h"; };
const cell = (key, metric, value) => el("td", { "data-command": key, "data-metric": metric }, value);
function render(doc) {
  document.getElementById("bridge").textContent = doc.bridge;
  document.getElementById("updated").textContent = time(doc.generatedAt);
  document.getElementById("window").textContent = doc.windowSeconds.toFixed(1);
  document.getElementById("note").textContent = doc.note;
  const services = document.getElementById("services");
  services.replaceChildren(...doc.services.map((s) => {
    const id = s.service + "/" + s.version;
    const section = el("section", { class: "service", "data-service": id },
      el("h3", {}, s.service + " v" + s.version + " ",
        el("span", { class: s.instances.length === 0 ? "down" : "meta", "data-instances": id },
          s.instances.length === 1 ? "1 instance" : s.instances.length + " instances")));
    if (s.instances.length > 0) {
      section.append(el("div", { class: "meta" }, s.instances.map((i) => i.instance.slice(0, 8) + " up " + uptime(i.uptimeMs)).join(" · ")));
    }
    if (s.commands.length > 0) {
      const rows = s.commands.map((c) => {
        const key = id + "/" + c.name;
        const cl = c.client || {}, sv = c.server;
        return el("tr", {}, el("td", {}, c.name),
          cell(key, "calls", num(cl.calls ?? 0)), cell(key, "rate", num(cl.ratePerSecond, 2)),
          cell(key, "errors", num(cl.errors ?? 0)), cell(key, "p99", num(cl.p99Ms, 1)),
          cell(key, "handled", sv ? num(sv.calls) : "–"), cell(key, "handled-errors", sv ? num(sv.errors) : "–"),
          cell(key, "handled-p99", sv ? num(sv.p99Ms, 1) : "–"));
      });
      section.append(el("table", {}, el("thead", {}, el("tr", {}, ...["command", "calls", "calls/s", "errors", "p99 ms",
        "handled here", "handling errors", "handling p99 ms"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)));
    }
    if (s.subscriptions.length > 0) {
      section.append(el("div", { class: "meta" }, "subscriptions: " +
        s.subscriptions.map((x) => x.name + " (" + x.delivery + (x.durable ? ", durable" : "") + ")").join(", ")));
    }
    return section;
  }));
  document.getElementById("events").replaceChildren(...doc.events.map((e) => el("tr", { "data-event": e.name },
    el("td", {}, time(e.time)), el("td", {}, e.name),
    el("td", {}, e.sender.service + " v" + e.sender.version + (e.sender.instance ? " " + e.sender.instance.slice(0, 8) : "")),
    el("td", {}, e.tenantId ?? ""), el("td", {}, e.data === undefined ? "" : JSON.stringify(e.data)))));
}
async function poll() {
  try {
    const response = await fetch("live.json", { cache: "no-store" });
    if (!response.ok) throw new Error("live.json answered " + response.status);
    render(await response.json());
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "· " + (e && e.message ? e.message : String(e));
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body>
</html>
`
