// The trajectory viewer: hash-routed views over the viewer's JSON API (agentenv/viewer/app.py).
// Plain DOM and inline SVG: no libraries, no build step, nothing loaded from the internet.
//
// Routes (the hash holds the whole selection, so a copied URL reopens the same view):
//   #/                                         overview of runs and stores
//   #/runs?ids=a,b&metric=loss&layout=overlay  metric charts of one or more runs (overlay | side)
//   #/store/<id>?status=ok&sort=reward&order=desc&offset=50   the episodes table
//   #/store/<id>/episode/<trajectory_id>?heat=logprob          one episode, turn by turn
//   #/store/<id>/group/<group_id>              a group's members and, for tree rollouts, the tree

window.viewerStarted = true; // index.html reports a script that failed to load or start

const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
const PREFERRED_METRICS = [
  "success_rate", "reward_mean", "loss", "kl", "entropy", "update_tokens_per_s", "policy_version",
  "eval_success", "eval_success_rate",
];
const PAGE_SIZE = 50;
const FILTERS = [
  { name: "env", label: "env", facet: "env" },
  { name: "task_type", label: "task type", facet: "task_type" },
  { name: "status", label: "status", facet: "status" },
  { name: "success", label: "success", options: ["true", "false"] },
  { name: "failure_cause", label: "failure cause", facet: "failure_cause" },
  { name: "kind", label: "kind", facet: "kind" },
  { name: "policy_version", label: "policy version", type: "number" },
  { name: "group", label: "group", type: "text" },
  { name: "min_reward", label: "reward ≥", type: "number" },
  { name: "max_reward", label: "reward ≤", type: "number" },
  { name: "min_turns", label: "turns ≥", type: "number" },
  { name: "max_turns", label: "turns ≤", type: "number" },
  { name: "q", label: "search", type: "search", placeholder: "id, task, text…" },
];
const COLUMNS = [
  ["trajectory_id", "episode"], ["group_id", "group"], ["success", "success"], ["reward", "reward"],
  ["turns", "turns"], ["status", "status"], ["failure_cause", "failure cause"], ["task_type", "task type"],
  ["env_id", "env"], ["task_id", "task"], ["policy_version", "policy v."], ["kind", "kind"],
  ["trained_tokens", "trained tokens"],
];
const HEAT_MODES = { none: "none", logprob: "log-prob", entropy: "entropy", advantage: "advantage" };

let sources = { runs: [], stores: [] };
let sourceErrors = []; // problems finding the sources: on the overview, or everywhere when none could be read
let sourcesFailed = false;
let renderSeq = 0; // a newer route wins over a slower earlier one

// ---------------------------------------------------------------- DOM helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "testid") node.dataset.testid = value;
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
}

/** Like node.replaceChildren, but skipping null/false (replaceChildren would insert the text "null"). */
function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

const enc = encodeURIComponent;
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
// reduce, not Math.min(...xs): a long episode has more tokens than a call may take arguments
const minOf = (xs) => xs.reduce((a, b) => (b < a ? b : a), Infinity);
const maxOf = (xs) => xs.reduce((a, b) => (b > a ? b : a), -Infinity);

function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (!isNum(value)) return String(value);
  if (Number.isInteger(value)) return Math.abs(value) >= 1e6 ? value.toExponential(2) : String(value);
  const abs = Math.abs(value);
  if (abs >= 1e4 || abs < 1e-3) return value.toExponential(2);
  return String(Number(value.toPrecision(digits)));
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function shortId(id) {
  const s = String(id ?? "");
  return s.length > 18 ? `${s.slice(0, 8)}…${s.slice(-6)}` : s;
}

function badge(text, cls = "", attrs = {}) {
  return el("span", { class: `badge ${cls}`, ...attrs }, text);
}

function successBadge(success) {
  if (success === null || success === undefined) return badge("?", "neutral");
  return success ? badge("✓ success", "good") : badge("✗ fail", "bad");
}

// ---------------------------------------------------------------- routing

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const cut = raw.indexOf("?");
  const path = cut < 0 ? raw : raw.slice(0, cut);
  const query = cut < 0 ? "" : raw.slice(cut + 1);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

function href(parts, params) {
  const query = params ? new URLSearchParams([...params].filter(([, v]) => v !== "" && v != null)).toString() : "";
  return "#/" + parts.map(enc).join("/") + (query ? `?${query}` : "");
}

function navigate(parts, params) {
  location.hash = href(parts, params);
}

async function route() {
  const seq = ++renderSeq;
  const { parts, params } = parseHash();
  const view = document.getElementById("view");
  clearBanner();
  if (sourcesFailed) showErrors(sourceErrors);
  view.dataset.state = "loading";
  try {
    let done;
    if (parts[0] === "runs") done = await viewRuns(params, seq);
    else if (parts[0] === "store" && parts[2] === "episode" && parts[3]) done = await viewEpisode(parts[1], parts[3], params, seq);
    else if (parts[0] === "store" && parts[2] === "group" && parts[3]) done = await viewGroup(parts[1], parts[3], seq);
    else if (parts[0] === "store" && parts[1]) done = await viewStore(parts[1], params, seq);
    else done = viewHome();
    if (seq !== renderSeq) return;
    if (done) view.replaceChildren(done);
    view.dataset.state = "ready";
    view.dataset.hash = location.hash;
  } catch (err) {
    if (seq !== renderSeq) return;
    showErrors([err.message || String(err)]);
    view.replaceChildren(el("div", { class: "empty-state" }, "This view could not be shown; see the message above. ",
      el("a", { href: "#/" }, "Back to the overview")));
    view.dataset.state = "error";
    view.dataset.hash = location.hash;
  }
  renderSidebar();
}

/** The breadcrumbs of a store: its run (a link to the run's charts) and itself (a link to its episodes). */
function storeCrumbs(storeId) {
  const store = storeOf(storeId);
  const run = store && store.run ? [[runName(store.run), href(["runs"], new URLSearchParams({ ids: store.run }))]] : [];
  return [...run, [storeLabel(store) || storeId, href(["store", storeId])]];
}

function setCrumbs(...items) {
  const crumbs = document.getElementById("crumbs");
  crumbs.replaceChildren(...items.flatMap((item, i) => [
    i ? el("span", { class: "sep" }, "/") : null,
    Array.isArray(item) ? el("a", { href: item[1] }, item[0]) : el("span", {}, item),
  ]).filter(Boolean));
  document.title = ["agentenv viewer", ...items.map((item) => (Array.isArray(item) ? item[0] : item))].join(" · ");
}

// ---------------------------------------------------------------- API and messages

async function api(path) {
  let response;
  try {
    response = await fetch(`api/${path}`, { headers: { Accept: "application/json" } });
  } catch (err) {
    throw new Error(`Cannot reach the viewer server (${err.message}): is \`agentenv view\` still running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && (body.error || (body.detail && JSON.stringify(body.detail)));
    throw new Error(detail || `The server answered ${response.status} ${response.statusText} for /api/${path}`);
  }
  if (body === null) throw new Error(`/api/${path} did not answer JSON`);
  return body;
}

function clearBanner() {
  document.getElementById("banner").replaceChildren();
}

function showErrors(messages) {
  showMessages(messages, "error", "error-banner", "Error");
}

function showNotes(messages) {
  showMessages(messages, "note", "notes-banner", "Note");
}

function showMessages(messages, cls, testid, title) {
  const list = (messages || []).filter(Boolean);
  if (!list.length) return;
  const area = document.getElementById("banner");
  let box = area.querySelector(`[data-testid="${testid}"]`);
  if (!box) {
    box = el("div", { class: `banner ${cls}`, role: cls === "error" ? "alert" : "status", testid },
      el("strong", {}, list.length > 1 ? `${title}s` : title), el("ul"));
    area.append(box);
  }
  box.querySelector("ul").append(...list.map((m) => el("li", {}, String(m))));
}

/** Show an API body's `error`, `errors` and `notes` fields. */
function reportBody(body, prefix = "") {
  const tag = (m) => (prefix ? `${prefix}: ${m}` : m);
  if (body.error) showErrors([tag(body.error)]);
  if (Array.isArray(body.errors)) showErrors(body.errors.map(tag));
  if (Array.isArray(body.notes)) showNotes(body.notes.map(tag));
}

// ---------------------------------------------------------------- sidebar

async function loadSources() {
  try {
    sources = await api("sources");
    sources.runs = sources.runs || [];
    sources.stores = sources.stores || [];
    sourceErrors = [sources.error, ...(sources.errors || [])].filter(Boolean);
    sourcesFailed = false;
  } catch (err) {
    sources = { runs: [], stores: [] };
    sourceErrors = [err.message];
    sourcesFailed = true;
  }
}

const runName = (id) => (sources.runs.find((r) => r.id === id) || {}).name || id;
const storeOf = (id) => sources.stores.find((s) => s.id === id);

/** A run's store reads "train · step 3" (the run is shown beside it); a loose store shows its name. */
function storeLabel(store) {
  if (!store) return "";
  if (!store.run || !store.split || store.split === "store") return store.name || store.id;
  return store.step !== null && store.step !== undefined ? `${store.split} · step ${store.step}` : store.split;
}

function renderSidebar() {
  const { parts, params } = parseHash();
  const selectedRuns = parts[0] === "runs" ? (params.get("ids") || "").split(",").filter(Boolean) : [];
  const activeStore = parts[0] === "store" ? parts[1] : null;
  const storeLink = (store) => el("li", {},
    el("a", { href: href(["store", store.id]), class: store.id === activeStore ? "active" : null, testid: "store-link",
      "data-store": store.id, title: store.path || "" },
    storeLabel(store), store.episodes !== null && store.episodes !== undefined
      ? el("span", { class: "count" }, store.episodes) : badge("!", "bad", { title: "could not be read" })));
  const runItem = (run) => {
    const checked = selectedRuns.includes(run.id);
    const toggle = () => {
      const ids = checked ? selectedRuns.filter((id) => id !== run.id) : [...selectedRuns, run.id];
      const next = new URLSearchParams(parts[0] === "runs" ? params : "");
      next.set("ids", ids.join(","));
      navigate(["runs"], next);
    };
    const stores = sources.stores.filter((s) => s.run === run.id);
    return el("li", { class: "run" },
      el("div", { class: "run-head" },
        el("input", { type: "checkbox", checked, title: "compare", "aria-label": `compare ${run.name}`, onchange: toggle,
          disabled: !run.has_metrics, testid: "run-compare", "data-run": run.id }),
        el("a", { href: href(["runs"], new URLSearchParams({ ids: run.id })), testid: "run-link", "data-run": run.id,
          class: selectedRuns.length === 1 && checked ? "active" : null, title: run.path || "" }, run.name || run.id)),
      stores.length ? el("ul", { class: "stores" }, stores.map(storeLink)) : null);
  };
  const loose = sources.stores.filter((s) => !s.run);
  fill(document.getElementById("sidebar"),
    el("h2", {}, "Runs"),
    sources.runs.length ? el("ul", { class: "runs" }, sources.runs.map(runItem)) : el("p", { class: "muted" }, "no runs"),
    loose.length ? el("h2", {}, "Stores") : null,
    loose.length ? el("ul", { class: "stores" }, loose.map(storeLink)) : null,
    sourceErrors.length && !sourcesFailed
      ? el("a", { class: "problems", href: "#/", title: sourceErrors.join("\n") },
        `⚠ ${plural(sourceErrors.length, "problem")} finding sources`) : null,
    sources.runs.filter((r) => r.has_metrics).length > 1
      ? el("p", { class: "hint" }, "Tick two runs to compare them.") : null,
  );
}

// ---------------------------------------------------------------- overview

function viewHome() {
  setCrumbs("overview");
  if (!sourcesFailed) showErrors(sourceErrors);
  const runRows = sources.runs.map((run) => el("tr", {},
    el("td", {}, el("a", { href: href(["runs"], new URLSearchParams({ ids: run.id })) }, run.name || run.id)),
    el("td", { class: "path" }, run.path || ""),
    el("td", {}, run.has_metrics ? "yes" : "no"),
    el("td", {}, (run.stores || []).length)));
  const storeRows = sources.stores.map((store) => el("tr", {},
    el("td", {}, el("a", { href: href(["store", store.id]) }, storeLabel(store))),
    el("td", { class: "path" }, store.path || ""),
    el("td", {}, store.run ? runName(store.run) : "–"),
    el("td", { class: "num" }, store.episodes ?? "?")));
  return el("section", { class: "home" },
    el("h1", {}, "Sources"),
    el("h2", {}, "Training runs"),
    runRows.length ? el("table", { class: "table" }, el("thead", {}, el("tr", {},
      el("th", {}, "run"), el("th", {}, "path"), el("th", {}, "metrics"), el("th", {}, "stores"))),
    el("tbody", {}, runRows)) : el("p", { class: "muted" }, "No training runs among the given directories."),
    el("h2", {}, "Trajectory stores"),
    storeRows.length ? el("table", { class: "table" }, el("thead", {}, el("tr", {},
      el("th", {}, "store"), el("th", {}, "path"), el("th", {}, "run"), el("th", { class: "num" }, "episodes"))),
    el("tbody", {}, storeRows)) : el("p", { class: "muted" }, "No trajectory stores among the given directories."));
}

// ---------------------------------------------------------------- runs: metric charts

async function viewRuns(params, seq) {
  let ids = (params.get("ids") || "").split(",").filter(Boolean);
  if (!ids.length) ids = sources.runs.filter((r) => r.has_metrics).slice(0, 1).map((r) => r.id);
  setCrumbs("runs", ids.map(runName).join(" vs ") || "none");
  if (!ids.length) return el("p", { class: "empty-state" }, "No run with metrics to show.");
  const runs = await Promise.all(ids.map((id) => api(`runs/${enc(id)}/metrics`)
    .then((body) => ({ id, records: body.records || [], keys: body.keys || [], body }))
    .catch((err) => ({ id, records: [], keys: [], body: { error: err.message } }))));
  if (seq !== renderSeq) return null;
  runs.forEach((run) => reportBody(run.body, runName(run.id)));

  const allKeys = [...new Set(runs.flatMap((run) => run.keys))].filter((k) => k !== "step");
  const preferred = PREFERRED_METRICS.filter((k) => allKeys.includes(k));
  const ordered = [...preferred, ...allKeys.filter((k) => !preferred.includes(k)).sort()];
  const metric = params.get("metric") || "";
  const layout = params.get("layout") === "side" ? "side" : "overlay";
  const shown = metric ? [metric] : preferred.length ? preferred : ordered.slice(0, 8);
  const setParam = (key, value) => {
    const next = new URLSearchParams(params);
    next.set("ids", ids.join(","));
    if (value) next.set(key, value); else next.delete(key);
    navigate(["runs"], next);
  };

  const toolbar = el("div", { class: "toolbar" },
    el("label", {}, "metric ",
      el("select", { name: "metric", testid: "metric-select", onchange: (e) => setParam("metric", e.target.value) },
        el("option", { value: "" }, "overview"),
        ordered.map((k) => el("option", { value: k, selected: k === metric }, k)))),
    el("div", { class: "segmented", role: "group", "aria-label": "layout" },
      ["overlay", "side"].map((mode) => el("button", {
        type: "button", class: mode === layout ? "on" : null, testid: `layout-${mode}`,
        onclick: () => setParam("layout", mode === "overlay" ? "" : mode),
      }, mode === "overlay" ? "overlaid" : "side by side"))),
    el("span", { class: "muted" }, `${runs.length} run${runs.length > 1 ? "s" : ""}, `
      + `${runs.reduce((n, r) => n + r.records.length, 0)} records`));

  const seriesOf = (run, key, i) => ({
    name: runName(run.id), color: PALETTE[i % PALETTE.length],
    points: run.records.map((rec, j) => [isNum(rec.step) ? rec.step : j, rec[key]]).filter(([, v]) => isNum(v)),
  });
  const big = Boolean(metric);
  let body;
  if (layout === "side" && runs.length > 1) {
    body = el("div", { class: "side-by-side", style: { gridTemplateColumns: `repeat(${runs.length}, minmax(0, 1fr))` } },
      runs.map((run, i) => el("div", { class: "run-column" },
        el("h2", {}, el("span", { class: "swatch", style: { background: PALETTE[i % PALETTE.length] } }), runName(run.id)),
        shown.map((key) => lineChart({ title: key, series: [seriesOf(run, key, i)], big,
          // one scale per metric across the columns, so the runs compare at a glance
          domainOf: runs.map((other, j) => seriesOf(other, key, j)) })))));
  } else {
    body = el("div", { class: big ? "charts big" : "charts" },
      shown.map((key) => lineChart({ title: key, series: runs.map((run, i) => seriesOf(run, key, i)), big })));
  }
  const storeLinks = runs.flatMap((run) => sources.stores.filter((s) => s.run === run.id))
    .map((s) => el("a", { href: href(["store", s.id]), class: "chip" }, `${runName(s.run)} · ${storeLabel(s)}`));
  return el("section", {}, el("h1", {}, ids.map(runName).join(" vs ")), toolbar, body,
    storeLinks.length ? el("div", { class: "store-links" }, el("h2", {}, "Rollout stores"), storeLinks) : null);
}

function niceStep(span, count) {
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function ticks(lo, hi, count) {
  if (lo === hi) return [lo];
  const step = niceStep(hi - lo, count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function niceExtent(values) {
  let lo = minOf(values);
  let hi = maxOf(values);
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, 5);
  return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step];
}

/** A line chart of series [{name, color, points: [[step, value]]}] with axes, a legend and a hover tooltip;
 * the axes span ``domainOf`` (more series) when given, else ``series``. */
function lineChart({ title, series, big = false, domainOf = series }) {
  const width = big ? 960 : 440;
  const height = big ? 380 : 230;
  const pad = { left: 56, right: 14, top: 12, bottom: 36 };
  const figure = el("figure", { class: "chart", testid: "metric-chart", "data-metric": title },
    el("figcaption", {}, title));
  const points = series.flatMap((s) => s.points);
  if (!points.length) {
    figure.append(el("div", { class: "chart-empty" }, "no values"));
    return figure;
  }
  const span = [...points, ...domainOf.flatMap((s) => s.points)];
  let x0 = minOf(span.map((p) => p[0]));
  let x1 = maxOf(span.map((p) => p[0]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const [y0, y1] = niceExtent(span.map((p) => p[1]));
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const sy = (y) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);

  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img",
    "aria-label": `${title} by step` });
  for (const t of ticks(y0, y1, 5)) {
    plot.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(t), y2: sy(t), class: "grid" }),
      svg("text", { x: pad.left - 6, y: sy(t) + 4, class: "tick", "text-anchor": "end" }, fmt(t, 3)));
  }
  for (const t of ticks(x0, x1, big ? 10 : 5).filter((t) => Number.isInteger(t) || x1 - x0 < 5)) {
    plot.append(svg("text", { x: sx(t), y: height - pad.bottom + 15, class: "tick", "text-anchor": "middle" }, fmt(t)));
  }
  plot.append(
    svg("line", { x1: pad.left, x2: pad.left, y1: pad.top, y2: height - pad.bottom, class: "axis" }),
    svg("line", { x1: pad.left, x2: width - pad.right, y1: height - pad.bottom, y2: height - pad.bottom, class: "axis" }),
    svg("text", { x: (pad.left + width - pad.right) / 2, y: height - 3, class: "axis-label", "text-anchor": "middle" },
      "step"));
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    plot.append(svg("path", { d, class: "series", stroke: s.color }));
    if (s.points.length <= 60) {
      for (const [x, y] of s.points) plot.append(svg("circle", { cx: sx(x), cy: sy(y), r: 2.5, fill: s.color }));
    }
  }
  const cursor = svg("line", { y1: pad.top, y2: height - pad.bottom, class: "cursor", visibility: "hidden" });
  const dots = series.map((s) => svg("circle", { r: 4.5, fill: s.color, class: "hover-dot", visibility: "hidden" }));
  plot.append(cursor, ...dots);
  const tooltip = el("div", { class: "tooltip", testid: "chart-tooltip", hidden: true });
  const steps = [...new Set(points.map((p) => p[0]))].sort((a, b) => a - b);

  const hover = (event) => {
    const box = plot.getBoundingClientRect();
    const x = x0 + (((event.clientX - box.left) * (width / box.width) - pad.left) / (width - pad.left - pad.right)) * (x1 - x0);
    const step = steps.reduce((best, s) => (Math.abs(s - x) < Math.abs(best - x) ? s : best), steps[0]);
    cursor.setAttribute("x1", sx(step));
    cursor.setAttribute("x2", sx(step));
    cursor.setAttribute("visibility", "visible");
    const lines = [el("div", { class: "tooltip-step" }, `step ${fmt(step)}`)];
    series.forEach((s, i) => {
      const hit = s.points.find((p) => p[0] === step);
      dots[i].setAttribute("visibility", hit ? "visible" : "hidden");
      if (!hit) return;
      dots[i].setAttribute("cx", sx(hit[0]));
      dots[i].setAttribute("cy", sy(hit[1]));
      lines.push(el("div", {}, el("span", { class: "swatch", style: { background: s.color } }),
        series.length > 1 ? `${s.name}: ` : "", el("b", {}, fmt(hit[1]))));
    });
    tooltip.replaceChildren(...lines);
    tooltip.hidden = false;
    const left = ((sx(step) / width) * box.width);
    tooltip.style.left = `${Math.min(left + 12, box.width - 150)}px`;
    tooltip.style.top = `${(event.clientY - box.top) + 8}px`;
  };
  const leave = () => {
    tooltip.hidden = true;
    cursor.setAttribute("visibility", "hidden");
    dots.forEach((d) => d.setAttribute("visibility", "hidden"));
  };
  plot.addEventListener("mousemove", hover);
  plot.addEventListener("mouseleave", leave);
  const legend = el("div", { class: "legend" }, series.map((s) => el("span", { class: "legend-item" },
    el("span", { class: "swatch", style: { background: s.color } }), s.name,
    s.points.length ? null : el("span", { class: "muted" }, " (no values)"))));
  figure.append(el("div", { class: "chart-body" }, plot, tooltip), legend);
  return figure;
}

// ---------------------------------------------------------------- a store: the episodes table

async function viewStore(storeId, params, seq) {
  const store = storeOf(storeId);
  setCrumbs(...storeCrumbs(storeId), "episodes");
  const query = new URLSearchParams([...params].filter(([, v]) => v !== ""));
  if (!query.has("limit")) query.set("limit", String(PAGE_SIZE));
  const page = await api(`stores/${enc(storeId)}/episodes?${query}`);
  if (seq !== renderSeq) return null;
  reportBody(page);

  const view = document.getElementById("view");
  const existing = view.querySelector(`[data-store-view="${CSS.escape(storeId)}"]`);
  const results = episodeResults(storeId, params, page);
  if (existing) {
    // Same store, new filters or page: keep the form (and the focus of whoever is typing in it), but show the
    // URL's values (the back button changes them too).
    for (const input of existing.querySelectorAll(".filters [name]")) {
      if (input !== document.activeElement) input.value = params.get(input.name) || "";
    }
    existing.querySelector(".results").replaceChildren(results);
    return null;
  }
  return el("section", { "data-store-view": storeId },
    el("h1", {}, storeLabel(store) || storeId, store && store.path ? el("span", { class: "path" }, store.path) : null),
    filterForm(storeId, params, page.facets || {}),
    el("div", { class: "results" }, results));
}

function filterForm(storeId, params, facets) {
  let timer = null;
  const apply = () => {
    const next = new URLSearchParams(parseHash().params);
    for (const input of form.querySelectorAll("[name]")) {
      if (input.value === "") next.delete(input.name); else next.set(input.name, input.value);
    }
    next.delete("offset");
    navigate(["store", storeId], next);
  };
  const control = (filter) => {
    const value = params.get(filter.name) || "";
    if (filter.facet || filter.options) {
      const options = filter.options || facets[filter.facet] || [];
      const values = options.map((o) => String(o));
      if (value && !values.includes(value)) values.push(value);
      return el("select", { name: filter.name, testid: `filter-${filter.name}`, onchange: apply },
        el("option", { value: "" }, "any"),
        values.map((v) => el("option", { value: v, selected: v === value }, v === "null" ? "(none)" : v)));
    }
    return el("input", {
      name: filter.name, type: filter.type === "number" ? "number" : filter.type, step: "any", value,
      placeholder: filter.placeholder || "", testid: `filter-${filter.name}`, onchange: apply,
      oninput: filter.type === "number" ? null : () => { clearTimeout(timer); timer = setTimeout(apply, 400); },
    });
  };
  const form = el("form", { class: "filters", testid: "filters", onsubmit: (e) => { e.preventDefault(); apply(); } },
    FILTERS.map((filter) => el("label", { class: `filter ${filter.type || "select"}` },
      el("span", {}, filter.label), control(filter))),
    el("a", { class: "clear", href: href(["store", storeId]), testid: "clear-filters" }, "clear filters"));
  return form;
}

function episodeResults(storeId, params, page) {
  const sort = params.get("sort") || "";
  const order = params.get("order") === "asc" ? "asc" : params.get("order") === "desc" ? "desc" : "";
  const total = page.total ?? 0;
  const offset = page.offset ?? 0;
  const rows = page.rows || [];
  const limit = page.limit || PAGE_SIZE;
  const withParams = (changes) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) if (v === null || v === "") next.delete(k); else next.set(k, v);
    return href(["store", storeId], next);
  };
  const header = COLUMNS.map(([key, label]) => {
    const active = sort === key;
    const nextOrder = active && order !== "desc" ? "desc" : "asc";
    return el("th", { class: ["reward", "turns", "policy_version", "trained_tokens"].includes(key) ? "num" : null,
      "aria-sort": active ? (order === "desc" ? "descending" : "ascending") : null },
    el("a", { href: withParams({ sort: key, order: nextOrder, offset: null }), testid: `sort-${key}` },
      label, active ? (order === "desc" ? " ▼" : " ▲") : ""));
  });
  const body = rows.map((row) => episodeRow(storeId, row));
  const first = total ? offset + 1 : 0;
  const last = offset + rows.length;
  const pager = el("div", { class: "pager" },
    el("span", { testid: "episode-total", "data-total": total }, `${first}–${last} of ${total} episodes`),
    el("a", { class: `button ${offset > 0 ? "" : "disabled"}`, testid: "page-prev",
      href: offset > 0 ? withParams({ offset: Math.max(0, offset - limit) || null }) : null }, "← previous"),
    el("a", { class: `button ${last < total ? "" : "disabled"}`, testid: "page-next",
      href: last < total ? withParams({ offset: offset + limit }) : null }, "next →"));
  return el("div", {}, pager,
    el("div", { class: "table-wrap" }, el("table", { class: "table episodes", testid: "episodes-table" },
      el("thead", {}, el("tr", {}, header)),
      el("tbody", {}, body.length ? body
        : el("tr", {}, el("td", { colspan: COLUMNS.length, class: "empty-state" }, "No episode matches these filters."))))));
}

function episodeRow(storeId, row) {
  const episodeHref = href(["store", storeId, "episode", row.trajectory_id]);
  const cell = (key) => {
    const v = row[key];
    switch (key) {
      case "trajectory_id":
        return el("td", {}, el("a", { href: episodeHref, title: v }, shortId(v)));
      case "group_id":
        return el("td", {}, v ? el("a", { href: href(["store", storeId, "group", v]), title: v, testid: "group-link" },
          shortId(v), row.tree_id ? badge("tree", "tree-badge") : null) : "–");
      case "success":
        return el("td", {}, successBadge(v));
      case "status":
        return el("td", {}, badge(v ?? "?", v === "ok" ? "neutral" : "bad"));
      case "reward": case "turns": case "policy_version": case "trained_tokens":
        return el("td", { class: "num" }, fmt(v));
      default:
        return el("td", { title: v ?? "" }, v ?? "–");
    }
  };
  return el("tr", { testid: "episode-row", "data-trajectory": row.trajectory_id,
    onclick: (e) => { if (!e.target.closest("a")) location.hash = episodeHref; } },
  COLUMNS.map(([key]) => {
    const td = cell(key);
    td.dataset.col = key;
    return td;
  }));
}

// ---------------------------------------------------------------- one episode

async function viewEpisode(storeId, trajectoryId, params, seq) {
  setCrumbs(...storeCrumbs(storeId), shortId(trajectoryId));
  // ?tokenizer= (a catalog name or a folder) decodes token ids when the run names no usable tokenizer
  const tokenizer = params.get("tokenizer") ? `?tokenizer=${enc(params.get("tokenizer"))}` : "";
  const ep = await api(`stores/${enc(storeId)}/episodes/${enc(trajectoryId)}${tokenizer}`);
  if (seq !== renderSeq) return null;
  reportBody(ep);
  const turns = (ep.turns || []).map(normalizeTurn);
  const perToken = turns.some((t) => t.tokens.completion.some((k) => isNum(k.advantage)));
  const modes = Object.keys(HEAT_MODES).filter((m) => m !== "advantage" || perToken);
  const heat = modes.includes(params.get("heat")) ? params.get("heat") : "logprob";
  const scale = heatScale(turns, heat);
  const trained = turns.reduce((n, t) => n + (t.tokens.trained_count || 0), 0);
  const masked = turns.reduce((n, t) => n + t.tokens.completion.filter((k) => !k.trained).length, 0);
  const textless = turns.some((t) => t.tokens.completion.some((k) => k.text === null || k.text === undefined));

  const setParam = (key, value, fallback = "") => {
    const next = new URLSearchParams(params);
    if (!value || value === fallback) next.delete(key); else next.set(key, value);
    navigate(["store", storeId, "episode", trajectoryId], next);
  };
  const controls = el("div", { class: "toolbar sticky" },
    el("span", { class: "counts" },
      el("span", { class: "token trained legend-token" }, "trained"), " ",
      el("b", { testid: "trained-count" }, trained), " tokens · ",
      el("span", { class: "token masked legend-token" }, "masked"), " ", el("b", { testid: "masked-count" }, masked)),
    el("label", {}, "heat map ",
      el("select", { name: "heat", testid: "heat-select", onchange: (e) => setParam("heat", e.target.value, "logprob") },
        modes.map((m) => el("option", { value: m, selected: m === heat }, HEAT_MODES[m])))),
    heatLegend(scale),
    textless || params.get("tokenizer") ? el("label", { title: "a catalog name or a tokenizer folder" }, "tokenizer ",
      el("input", { name: "tokenizer", value: params.get("tokenizer") || "", placeholder: "e.g. smollm2-135m-instruct",
        testid: "tokenizer-input", onchange: (e) => setParam("tokenizer", e.target.value.trim()) })) : null,
    el("a", { class: "button", href: `api/stores/${enc(storeId)}/episodes/${enc(trajectoryId)}/export${tokenizer}`,
      download: `${trajectoryId}.html`, testid: "export-link" }, "Export HTML"));

  return el("section", { class: "episode", testid: "episode" },
    el("h1", {}, "Episode ", el("code", {}, ep.trajectory_id || trajectoryId)),
    episodeSummary(storeId, ep), controls,
    turns.length ? el("ol", { class: "turns" }, turns.map((turn) => turnCard(turn, scale)))
      : el("p", { class: "empty-state" }, "This episode has no turns."));
}

/** A turn with a tokens object, and per-token advantages (a list over the trained tokens) on the tokens. */
function normalizeTurn(turn) {
  const tokens = { prompt: [], completion: [], trained_count: 0, ...(turn.tokens || {}) };
  if (Array.isArray(turn.advantage)) {
    const values = turn.advantage;
    tokens.completion.filter((k) => k.trained).forEach((k, i) => {
      if (!isNum(k.advantage) && isNum(values[i])) k.advantage = values[i];
    });
    turn = { ...turn, advantage: values.length ? mean(values) : null };
  }
  return { ...turn, tokens };
}

function episodeSummary(storeId, ep) {
  const field = (label, value) => (value === null || value === undefined || value === "" ? null
    : el("div", { class: "field" }, el("dt", {}, label), el("dd", {}, value)));
  const link = (parts, text) => el("a", { href: href(parts), title: text }, shortId(text));
  return el("dl", { class: "summary", testid: "episode-summary" },
    field("outcome", el("span", {}, successBadge(ep.success), " ", badge(ep.status || "?", ep.status === "ok" ? "neutral" : "bad"))),
    field("reward", el("b", {}, fmt(ep.reward))),
    field("ended", ep.terminated ? "terminated" : ep.truncated ? "truncated (time limit)" : "–"),
    field("failure cause", ep.failure_cause),
    field("error", ep.error ? el("code", { class: "error-text" }, ep.error) : null),
    field("env", ep.env_id), field("task", ep.task_id),
    field("group", ep.group_id ? link(["store", storeId, "group", ep.group_id], ep.group_id) : null),
    field("tree", ep.tree_id ? link(["store", storeId, "group", ep.group_id || ep.tree_id], ep.tree_id) : null),
    field("parent", ep.parent_trajectory_id ? link(["store", storeId, "episode", ep.parent_trajectory_id], ep.parent_trajectory_id) : null),
    field("branches at turn", ep.branch_turn),
    field("kind", ep.kind), field("policy", [ep.policy_id, ep.policy_version !== undefined ? `v${ep.policy_version}` : ""].filter(Boolean).join(" ")),
    ep.extra && Object.keys(ep.extra).length
      ? field("extra", el("details", {}, el("summary", {}, plural(Object.keys(ep.extra).length, "field")),
        el("pre", {}, JSON.stringify(ep.extra, null, 2)))) : null);
}

function turnCard(turn, scale) {
  const tokens = turn.tokens;
  const perToken = tokens.completion.some((k) => isNum(k.advantage));
  const badges = [
    turn.is_imagined ? badge("imagined", "imagined", { testid: "imagined-badge", title: "a turn the world model imagined (DynaWeb)" }) : null,
    turn.actor && turn.actor !== "student" ? badge(`acted by ${turn.actor}`, "teacher") : null,
    isNum(turn.reward) && turn.reward !== 0 ? badge(`reward ${fmt(turn.reward)}`, turn.reward > 0 ? "good" : "bad") : null,
    turn.terminated ? badge("terminated", "neutral") : null,
    turn.truncated ? badge("truncated", "warn") : null,
    isNum(turn.advantage) ? badge(`advantage ${fmt(turn.advantage, 3)}${perToken ? " (mean per token)" : ""}`,
      turn.advantage >= 0 ? "good" : "bad", { testid: "advantage" }) : null,
    turn.policy_version !== undefined && turn.policy_version !== null ? badge(`policy v${turn.policy_version}`, "muted") : null,
  ];
  return el("li", { class: `turn${turn.is_imagined ? " imagined" : ""}`, testid: "turn", "data-index": turn.index },
    el("header", {}, el("h3", {}, `Turn ${turn.index}`), badges),
    messages(turn.observation, "observation"),
    actionBlock(turn),
    turn.tool_calls && turn.tool_calls.length
      ? el("div", { class: "block tool-calls" }, el("h4", {}, "parsed tool calls"),
        turn.tool_calls.map((call) => el("pre", { class: "code", testid: "tool-call" }, toolCallText(call)))) : null,
    tokenBlock(turn, tokens, scale),
    extraImages(turn).length
      ? el("div", { class: "block images" }, el("h4", {}, "screenshots"),
        extraImages(turn).map((src) => el("img", { src, alt: `turn ${turn.index} screenshot`, loading: "lazy" }))) : null,
    messages(turn.feedback, "env feedback"));
}

/** The turn's images that its messages do not already show inline. */
function extraImages(turn) {
  const inline = new Set([...(turn.observation || []), ...(turn.feedback || [])]
    .flatMap((m) => (Array.isArray(m.content) ? m.content : []))
    .map((part) => (part && part.type === "image_url" ? imageUrl(part) : null)));
  return (turn.images || []).filter((src) => !inline.has(src));
}

const imageUrl = (part) => (typeof part.image_url === "string" ? part.image_url : (part.image_url || {}).url);

function toolCallText(call) {
  const flat = JSON.stringify(call);
  return flat.length <= 110 ? flat : JSON.stringify(call, null, 2);
}

function messages(list, title) {
  if (!list || !list.length) return null;
  return el("div", { class: `block messages ${title.replace(/\s/g, "-")}` }, el("h4", {}, title),
    list.map((m) => el("div", { class: `message role-${m.role || "unknown"}` },
      el("span", { class: "role" }, m.role || "?"), el("div", { class: "content" }, messageContent(m.content)))));
}

function messageContent(content) {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return el("pre", { class: "text" }, content);
  if (!Array.isArray(content)) return el("pre", { class: "text" }, JSON.stringify(content, null, 2));
  return content.map((part) => {
    if (part.type === "text") return el("pre", { class: "text" }, part.text || "");
    if (part.type === "image_url") {
      const url = imageUrl(part);
      // only inline images: the page must never reach out to the internet
      return url && url.startsWith("data:") ? el("img", { src: url, alt: "observation image" })
        : el("span", { class: "muted" }, `[image: ${url ? "external URL not loaded" : "missing"}]`);
    }
    return el("pre", { class: "text" }, JSON.stringify(part, null, 2));
  });
}

function actionBlock(turn) {
  const hasTeacher = turn.teacher_action !== null && turn.teacher_action !== undefined;
  if (!hasTeacher) {
    return el("div", { class: "block action" }, el("h4", {}, turn.actor === "teacher" ? "action (teacher)" : "action"),
      el("pre", { class: "text action-text", testid: "action" }, turn.action ?? ""));
  }
  // DAgger: the student's action beside the teacher's; the one that was executed is marked.
  const student = turn.actor === "student" ? turn.action : null;
  const column = (who, text, testid) => el("div", { class: `action-column ${who}${turn.actor === who ? " executed" : ""}` },
    el("h4", {}, who, turn.actor === who ? badge("executed", "neutral") : null),
    text === null ? el("p", { class: "muted" }, "(not sampled)") : el("pre", { class: "text action-text", testid }, text));
  return el("div", { class: "block action compare", testid: "action-compare" },
    column("student", student, "student-action"), column("teacher", turn.teacher_action, "teacher-action"));
}

function tokenBlock(turn, tokens, scale) {
  const completion = tokens.completion || [];
  const prompt = tokens.prompt || [];
  if (!completion.length && !prompt.length) return null;
  const promptBox = el("details", { class: "prompt-tokens" },
    el("summary", {}, `prompt tokens (${prompt.length})`), el("div", { class: "tokens" }));
  // Prompts repeat the whole history: render them only when opened.
  promptBox.addEventListener("toggle", () => {
    const box = promptBox.querySelector(".tokens");
    if (promptBox.open && !box.childElementCount) {
      box.append(...prompt.map((t) => el("span", { class: "token prompt", testid: "prompt-token", title: `id ${t.id}` }, tokenText(t.text, t.id))));
    }
  }, { once: false });
  return el("div", { class: "block token-view" },
    el("h4", {}, "tokens ", el("span", { class: "muted" },
      `${completion.length} completion · `, el("span", { testid: "turn-trained-count" }, tokens.trained_count ?? 0), " trained")),
    prompt.length ? promptBox : null,
    el("div", { class: "tokens completion", testid: "completion-tokens" },
      completion.map((t) => tokenSpan(t, scale))));
}

function tokenText(text, id) {
  if (text === null || text === undefined || text === "") return `⟨${id}⟩`;
  return String(text).replace(/\n/g, "↵\n").replace(/\t/g, "⇥");
}

function tokenSpan(token, scale) {
  const value = scale.mode === "none" ? null : token[scale.mode];
  const advantage = token.advantage;
  const title = [`id ${token.id}`, token.trained ? "trained" : "masked (not trained on)",
    isNum(token.logprob) ? `log-prob ${fmt(token.logprob, 3)}` : null,
    isNum(token.entropy) ? `entropy ${fmt(token.entropy, 3)}` : null,
    isNum(advantage) ? `advantage ${fmt(advantage, 3)}` : null].filter(Boolean).join(" · ");
  return el("span", { class: `token ${token.trained ? "trained" : "masked"}`, testid: "token", title,
    style: isNum(value) ? { background: scale.color(value) } : null }, tokenText(token.text, token.id));
}

// ---------------------------------------------------------------- heat scale

const mean = (xs) => (xs.length ? xs.filter(isNum).reduce((a, b) => a + b, 0) / xs.length : 0);

/** The color scale for a heat mode over an episode's completion tokens: {mode, lo, hi, color(value)}. */
function heatScale(turns, mode) {
  if (mode === "none") return { mode, color: () => null };
  const values = turns.flatMap((t) => t.tokens.completion.map((k) => k[mode])).filter(isNum);
  if (!values.length) return { mode, empty: true, color: () => null };
  if (mode === "advantage") {
    const m = maxOf(values.map(Math.abs)) || 1;
    return { mode, lo: -m, hi: m, color: (v) => diverging(v / m), gradient: (t) => diverging(2 * t - 1),
      labels: [fmt(-m, 3), fmt(m, 3)] };
  }
  if (mode === "logprob") {
    // colored by probability: p = 1 is cold, unlikely tokens are hot (linear in log-prob, all but a few would
    // look the same)
    return { mode, lo: -Infinity, hi: 0, color: (v) => sequential(1 - Math.exp(v)),
      gradient: (t) => sequential(1 - t), labels: ["p → 0", "p = 1"] };
  }
  const sorted = [...values].sort((a, b) => a - b);
  const hi = Math.max(sorted[Math.floor(0.95 * (sorted.length - 1))], 1e-6); // outliers saturate
  return { mode, lo: 0, hi, color: (v) => sequential(v / hi), gradient: (t) => sequential(t),
    labels: ["0", `≥ ${fmt(hi, 3)}`] };
}

function sequential(t) {
  const x = Math.max(0, Math.min(1, t));
  return `hsl(${52 - 52 * x}, 95%, ${96 - 38 * x}%)`;
}

function diverging(t) {
  const x = Math.max(-1, Math.min(1, t));
  return x >= 0 ? `hsl(145, 60%, ${96 - 36 * x}%)` : `hsl(0, 80%, ${96 + 30 * x}%)`;
}

function heatLegend(scale) {
  if (scale.mode === "none") return null;
  if (scale.empty) return el("span", { class: "muted", testid: "heat-legend" }, `no ${HEAT_MODES[scale.mode]} recorded`);
  const stops = Array.from({ length: 11 }, (_, i) => scale.gradient(i / 10));
  const gradient = `linear-gradient(to right, ${stops.join(", ")})`;
  const [left, right] = scale.labels;
  return el("span", { class: "heat-legend", testid: "heat-legend" },
    el("span", { class: "muted" }, left), el("span", { class: "gradient", style: { background: gradient } }),
    el("span", { class: "muted" }, right),
    el("span", { class: "muted" }, scale.mode === "logprob" ? " (red: unlikely tokens)"
      : scale.mode === "entropy" ? " (red: uncertain)" : " (green: pushed up, red: down)"));
}

// ---------------------------------------------------------------- a group or tree

async function viewGroup(storeId, groupId, seq) {
  setCrumbs(...storeCrumbs(storeId), `group ${shortId(groupId)}`);
  const group = await api(`stores/${enc(storeId)}/groups/${enc(groupId)}`);
  if (seq !== renderSeq) return null;
  reportBody(group);
  const members = group.members || [];
  const rewards = members.map((m) => m.reward).filter(isNum);
  const avg = mean(rewards);
  // the API lists a tree for every group; a flat group's is all roots, and then there is nothing to draw
  const tree = (group.tree || []).some((n) => n.parent) || members.some((m) => m.tree_id) ? group.tree : [];
  return el("section", { class: "group", testid: "group" },
    el("h1", {}, tree.length ? "Tree " : "Group ", el("code", {}, group.group_id || groupId)),
    el("p", { class: "muted" }, `${members.length} members · mean reward ${fmt(avg)} · `
      + `${members.filter((m) => m.success).length} successful`),
    tree.length ? treeView(storeId, tree) : null,
    el("h2", {}, "Members"),
    el("div", { class: "members" }, members.map((m) => memberCard(storeId, m, avg, rewards))));
}

function memberCard(storeId, m, avg, rewards) {
  const hi = Math.max(maxOf(rewards.map(Math.abs)), 1e-9);
  const advantage = isNum(m.advantage) ? m.advantage : null;
  return el("a", { class: `member ${m.success ? "ok" : "ko"}`, href: href(["store", storeId, "episode", m.trajectory_id]),
    testid: "group-member", "data-trajectory": m.trajectory_id },
  el("div", { class: "member-head" }, el("code", {}, shortId(m.trajectory_id)), successBadge(m.success)),
  el("div", { class: "reward-bar" }, el("span", { style: { width: `${isNum(m.reward) ? (Math.abs(m.reward) / hi) * 100 : 0}%` },
    class: m.reward >= 0 ? "pos" : "neg" })),
  el("dl", {},
    el("dt", {}, "reward"), el("dd", {}, fmt(m.reward)),
    el("dt", {}, advantage !== null ? "advantage" : "reward − mean"),
    el("dd", {}, fmt(advantage !== null ? advantage : isNum(m.reward) ? m.reward - avg : null, 3)),
    el("dt", {}, "turns"), el("dd", {}, fmt(m.turns)),
    el("dt", {}, "kind"), el("dd", {}, m.kind || "–"),
    m.branch_turn !== null && m.branch_turn !== undefined ? [el("dt", {}, "branch turn"), el("dd", {}, m.branch_turn)] : null,
    m.failure_cause ? [el("dt", {}, "failure"), el("dd", {}, m.failure_cause)] : null));
}

/** The rollout tree as rows in depth-first order: each row's turn strip shows the prefix it shares with its
 * parent (hatched), its branch point (a marker) and its own turns, then its outcome. */
function treeView(storeId, nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const roots = nodes.filter((n) => n.parent === null || n.parent === undefined || !byId.has(n.parent));
  const maxTurns = Math.max(1, ...nodes.map((n) => n.turns || 0));
  const cell = Math.max(5, Math.min(26, Math.floor(520 / maxTurns) - 2)); // a turn's width in the strips
  const rows = [];
  const seen = new Set();
  const visit = (node, depth) => {
    if (seen.has(node.id)) return;
    seen.add(node.id);
    rows.push(treeRow(storeId, node, depth, maxTurns, cell));
    const children = (node.children || []).map((id) => byId.get(id)).filter(Boolean);
    for (const child of nodes.filter((n) => n.parent === node.id && !children.includes(n))) children.push(child);
    children.sort((a, b) => (a.branch_turn ?? 0) - (b.branch_turn ?? 0));
    children.forEach((child) => visit(child, depth + 1));
  };
  roots.forEach((root) => visit(root, 0));
  nodes.filter((n) => !seen.has(n.id)).forEach((n) => visit(n, 0)); // cycles or dangling parents
  return el("div", { class: "tree", testid: "tree" },
    el("h2", {}, "Rollout tree"),
    el("div", { class: "tree-legend muted" },
      el("span", { class: "cell shared" }), " shared prefix  ", el("span", { class: "cell own" }), " own turns  ",
      el("span", { class: "cell branch" }), " branch point"),
    el("div", { class: "tree-rows" }, rows));
}

function treeRow(storeId, node, depth, maxTurns, cell) {
  const branch = node.parent !== null && node.parent !== undefined && isNum(node.branch_turn) ? node.branch_turn : 0;
  const cells = Array.from({ length: node.turns || 0 }, (_, i) => el("span", {
    class: `cell ${i < branch ? "shared" : "own"}${i === branch && branch > 0 ? " branch" : ""}`, style: { width: `${cell}px` },
    title: i < branch ? `turn ${i}: shared with the parent` : `turn ${i}`,
  }));
  // the heads take a fixed width so that turn i of every branch lines up in one column
  return el("div", { class: `tree-node ${node.success ? "ok" : "ko"}`, testid: "tree-node", "data-node": node.id },
  el("span", { class: "node-head", style: { paddingLeft: `${depth * 22}px` } },
    depth ? el("span", { class: "connector" }, "└ ") : null,
    el("a", { href: href(["store", storeId, "episode", node.id]), class: "node-label", title: node.id }, shortId(node.id))),
  el("span", { class: "node-kind" }, badge(node.kind || "init", "muted")),
  el("span", { class: "strip", style: { width: `${maxTurns * (cell + 2)}px` } }, cells),
  branch ? el("span", { class: "muted small" }, `from turn ${branch}`) : el("span", { class: "muted small" }, "root"),
  el("span", { class: "outcome" }, successBadge(node.success), " ", el("b", {}, fmt(node.reward))));
}

// ---------------------------------------------------------------- start

window.addEventListener("error", (e) => showErrors([`The page hit an error: ${e.message}`]));
window.addEventListener("unhandledrejection", (e) => showErrors([`The page hit an error: ${e.reason}`]));
window.addEventListener("hashchange", route);
document.getElementById("reload-sources").addEventListener("click", async () => {
  clearBanner();
  await loadSources();
  route();
});

(async () => {
  await loadSources();
  await route();
})();
