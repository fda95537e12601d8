// dsr-pipeline dashboard: polls /api/overview and draws it. No external code.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#4c8fd6", "#f0b429", "#5ad08a", "#ff6b6b", "#b28dff", "#4fd1c5",
  "#f78fb3", "#a3be8c", "#ffa94d", "#91a7ff"];
const POLL_MS = 2000;
let quantile = "p99";
let last = null;

// Build elements from data, never from HTML strings: request ids come from callers.
function el(tag, attrs = {}, ...children) {
  const node = tag === "svg" || attrs.svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "svg" || v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k === "style") Object.assign(node.style, v); // CSSOM: allowed by the page's CSP
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}
const s = (tag, attrs = {}, ...children) => el(tag, { ...attrs, svg: true }, ...children);

function ms(v) {
  if (v === null || v === undefined) return "—";
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 120000) return `${(v / 1000).toFixed(1)} s`;
  if (v < 7200000) return `${Math.round(v / 60000)} min`;
  if (v < 172800000) return `${(v / 3600000).toFixed(1)} h`;
  return `${(v / 86400000).toFixed(1)} d`;
}
const pct = (v) => `${(v * 100).toFixed(1)}%`;
const td = (text, cls) => el("td", { class: cls, text });
const reqLink = (id) => el("a", { class: "req", href: `#request=${encodeURIComponent(id)}`, text: id });

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawChart(host, series, name) {
  const keys = Object.keys(series).sort();
  host.replaceChildren();
  const points = keys.flatMap((k) => series[k].filter((p) => p[quantile] !== null));
  if (!points.length) {
    host.append(el("div", { class: "empty", text: "no completed work in the window yet" }));
    return;
  }
  const W = 600, H = 220, L = 52, R = 8, T = 8, B = 22;
  const times = series[keys[0]].map((p) => Date.parse(p.t));
  const t0 = times[0], t1 = times[times.length - 1] || t0 + 1;
  const ymax = niceMax(Math.max(...points.map((p) => p[quantile])));
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / ymax) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, "data-chart": name, "data-quantile": quantile,
    role: "img", "aria-label": `${quantile} latency per ${name}` });
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    svg.append(s("line", { class: "axis", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end", text: ms(v) }));
  }
  for (const t of [t0, (t0 + t1) / 2, t1]) {
    svg.append(s("text", { x: x(t), y: H - 6, "text-anchor": "middle",
      text: new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) }));
  }
  const legend = el("div", { class: "legend" });
  keys.forEach((key, i) => {
    const color = COLORS[i % COLORS.length];
    let d = "", pen = "M";
    let n = 0;
    const dots = [];
    for (const p of series[key]) {
      const v = p[quantile];
      if (v === null) { pen = "M"; continue; }
      const px = x(Date.parse(p.t)), py = y(v);
      d += `${pen}${px.toFixed(1)},${py.toFixed(1)} `;
      pen = "L";
      n += 1;
      dots.push(s("circle", { cx: px.toFixed(1), cy: py.toFixed(1), r: 2.5, fill: color },
        s("title", { text: `${key} ${quantile} ${ms(v)} (${p.n})` })));
    }
    if (!n) return;
    svg.append(s("path", { class: "series", d, stroke: color, "data-series": key, "data-points": n }), ...dots);
    legend.append(el("span", {}, el("i", { style: { background: color } }), key));
  });
  host.append(svg, legend);
}

function renderKpis(o) {
  const overdue = o.deadlines.overdue.length;
  const kpi = (value, label, bad) => el("div", { class: `kpi${bad ? " bad" : ""}` },
    el("b", { text: value }), el("span", { text: label }));
  document.getElementById("kpis").replaceChildren(
    kpi(String(o.in_flight.total), "in flight"),
    kpi(String(o.failure_rate.completed), `completed, last ${Math.round(o.window_s / 60)} min`),
    kpi(pct(o.failure_rate.requests), "requests not fully completed", o.failure_rate.requests > 0),
    kpi(pct(o.failure_rate.tasks), "task failure rate", o.failure_rate.tasks > 0),
    kpi(String(overdue), "overdue", overdue > 0),
    kpi(String(o.parked.total), "parked", o.parked.total > 0),
    kpi(String(troubled(o).length), "processes down, frozen or crash-looping", troubled(o).length > 0),
  );
}

function renderTables(o) {
  document.querySelector("#systems tbody").replaceChildren(...o.systems.map((x) =>
    el("tr", { class: x.failed ? "bad" : "", "data-system": x.system },
      td(x.system), td(ms(x.p50), "num"), td(ms(x.p95), "num"), td(ms(x.p99), "num"), td(String(x.n), "num"),
      td(`${x.failed} (${pct(x.failure_rate)})`, "num"), td(String(x.redriven), "num"), td(String(x.waiting), "num"))));
  document.getElementById("systems-definition").textContent = o.task_time;
  document.querySelector("#kinds tbody").replaceChildren(...o.kinds.map((k) => el("tr", {},
    td(k.kind), td(ms(k.p50), "num"), td(ms(k.p95), "num"), td(ms(k.p99), "num"), td(String(k.n), "num"))));
  document.getElementById("inflight-by-status").textContent = Object.entries(o.in_flight.by_status)
    .map(([k, v]) => `${k}: ${v}`).join(" · ");
  const now = Date.parse(o.generated_at);
  document.querySelector("#inflight tbody").replaceChildren(...o.in_flight.requests.map((r) =>
    el("tr", { class: Date.parse(r.deadline) < now ? "bad" : "" },
      el("td", {}, reqLink(r.request_id)), td(r.kind), td(r.regulation), td(r.waiting_on),
      td(ms(r.age_ms), "num"), td(r.deadline.slice(0, 16).replace("T", " ")))));
}

function troubled(o) {
  return (o.processes || []).filter((p) => p.state !== "running");
}

function renderProcesses(o) {
  const host = document.getElementById("processes");
  host.replaceChildren();
  const bad = troubled(o);
  if (bad.length) {
    host.append(el("b", { text: "Processes: " }), bad.map((p) => `${p.name} ${p.state}` +
      (p.state === "frozen" ? `, no heartbeat for ${Math.round(p.heartbeat_age_s)} s` : "") +
      ` (${p.restarts} restarts)`).join(" · "));
  }
}

function renderParked(o) {
  const host = document.getElementById("parked");
  host.replaceChildren();
  if (o.parked.total) {
    host.append(el("b", { text: `${o.parked.total} parked: ` }),
      ...o.parked.requests.flatMap((r) => [reqLink(r.request_id), ` ${r.kind}, ${r.error_code}   `]));
  }
}

function renderDeadlines(o) {
  const overdue = document.getElementById("overdue");
  overdue.replaceChildren();
  if (o.deadlines.overdue.length) {
    overdue.append(el("b", { text: `${o.deadlines.overdue.length} overdue: ` }),
      ...o.deadlines.overdue.slice(0, 20).flatMap((r) => [reqLink(r.request_id),
        ` ${r.kind}/${r.regulation}, ${ms(r.overdue_ms)} late   `]));
  }
  const byDay = new Map(o.deadlines.days.map((d) => [d.date, d.requests]));
  const today = new Date(o.generated_at);
  const start = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(),
    today.getUTCDate() - ((today.getUTCDay() + 6) % 7)));
  const cal = document.getElementById("calendar");
  cal.replaceChildren(...["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map((d) => el("div", { class: "dow", text: d })));
  const todayKey = today.toISOString().slice(0, 10);
  for (let i = 0; i < 35; i++) {
    const day = new Date(start.getTime() + i * 86400000);
    const key = day.toISOString().slice(0, 10);
    const due = byDay.get(key) || [];
    const lateToday = key === todayKey ? o.deadlines.overdue.length : 0;
    const cls = ["day", key === todayKey ? "today" : "", key < todayKey ? "past" : "", lateToday ? "overdue" : ""];
    cal.append(el("div", { class: cls.join(" "), "data-date": key, title: due.map((r) => r.request_id).join("\n") },
      el("span", { text: key.slice(5) }),
      due.length || lateToday ? el("span", { class: "n", text: String(due.length + lateToday) }) : null));
  }
}

async function refresh() {
  try {
    const res = await fetch("/api/overview");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    last = await res.json();
    render();
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    document.getElementById("updated").textContent = `cannot reach the pipeline: ${e.message}`;
  }
}

function render() {
  if (!last) return;
  renderKpis(last);
  drawChart(document.getElementById("chart-kind"), last.series.kind, "kind");
  drawChart(document.getElementById("chart-system"), last.series.system, "system");
  renderTables(last);
  renderParked(last);
  renderProcesses(last);
  renderDeadlines(last);
}

async function drill(id) {
  const box = document.getElementById("drilldown");
  const res = await fetch(`/api/requests/${encodeURIComponent(id)}`);
  box.hidden = false;
  document.getElementById("dd-id").textContent = id;
  const stages = document.getElementById("dd-stages");
  const timeline = document.querySelector("#dd-timeline tbody");
  if (!res.ok) {
    document.getElementById("dd-summary").textContent = "not in the ledger";
    stages.replaceChildren();
    timeline.replaceChildren();
    return;
  }
  const r = await res.json();
  document.getElementById("dd-summary").textContent =
    `${r.kind} · ${r.regulation} · ${r.status}${r.hold_reason ? ` (${r.hold_reason})` : ""} · deadline ${r.deadline.slice(0, 16).replace("T", " ")}`;
  const end = Math.max(1, ...r.stages.map((x) => x.start_ms + x.duration_ms));
  stages.replaceChildren(...r.stages.map((x) => el("div", { class: "row", "data-stage": x.stage },
    el("span", { text: `${x.stage}${x.wave ? ` (wave ${x.wave})` : ""}` }),
    el("div", { class: "track" }, el("div", {
      class: `bar ${x.stage === "total" ? "total" : x.status}`,
      style: { left: `${(100 * x.start_ms) / end}%`, width: `${(100 * x.duration_ms) / end}%` },
      title: `${x.status}${x.attempts ? `, ${x.attempts} attempt(s)` : ""}${x.connector_ms !== undefined && x.connector_ms !== null ? `, connector ${ms(x.connector_ms)}` : ""}`,
    })),
    el("span", { class: "num", text: `${ms(x.duration_ms)} ${x.status === "ok" ? "" : x.status}` }))));
  timeline.replaceChildren(...r.timeline.map((e) => el("tr", {},
    td(String(e.since_start_ms), "num"), td(e.actor), td(e.action), td(JSON.stringify(e.detail)))));
}

function fromHash() {
  const m = location.hash.match(/^#request=(.+)$/);
  if (m) drill(decodeURIComponent(m[1]));
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#quantile button")) {
    b.addEventListener("click", () => {
      quantile = b.dataset.q;
      for (const o of document.querySelectorAll("#quantile button")) o.classList.toggle("on", o === b);
      render();
    });
  }
  document.getElementById("dd-close").addEventListener("click", () => {
    document.getElementById("drilldown").hidden = true;
    history.replaceState(null, "", location.pathname);
  });
  document.getElementById("lookup").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = new FormData(ev.target).get("id").trim();
    if (id) location.hash = `request=${encodeURIComponent(id)}`;
  });
  window.addEventListener("hashchange", fromHash);
  fromHash();
  refresh();
  setInterval(refresh, POLL_MS);
});
