// /dashboard/analytics/ and /dashboard/analytics/workflows/<id>/: a workspace's or a workflow's figures
// from the analytics API (headline, charts over time, models, errors, nodes, insights), drawn with uPlot
// (static/vendor/uplot). Every chart has a text summary and a table of its numbers. The figures are read
// again, at most every REFRESH_EVERY_MS, after runs finish (the dashboard websocket's run events).

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { LiveConnection } from "./live.js";
import { ApiError, api, h, setUpSwitcher, showError } from "./page.js";

const page = document.getElementById("analytics");
const FINISHED = new Set(["run.succeeded", "run.failed", "run.cancelled"]);
const REFRESH_EVERY_MS = 5000;
// The run-events task adds a finished run to the rollups just after it ends: give it this long.
const SETTLE_MS = 1500;
const CHART_HEIGHT = 220;
// Day and week buckets start at the viewer's midnight (tz); finer ranges read finer buckets.
const BUCKETS = { "1h": "minute", "24h": "hour", "7d": "hour", "30d": "day", "90d": "day", "365d": "week" };
const STATUS_ORDER = ["succeeded", "failed", "cancelled"];
const PALETTE = [
  "#0b5cad",
  "#b42318",
  "#12703a",
  "#9a4d00",
  "#6d32c9",
  "#0e6f83",
  "#474f58",
  "#c2185b",
  "#5d7a00",
  "#8a6d00",
  "#59636e",
];

// --- formats ---------------------------------------------------------------------------------------

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const small = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 2 });

function present(value) {
  return value !== null && value !== undefined && !Number.isNaN(value);
}

export const formats = {
  count: (value) => (present(value) ? integer.format(value) : "—"),
  // 0.0002 runs in flight is not 0: two significant digits below 0.1.
  decimal: (value) => (present(value) ? (value > 0 && value < 0.1 ? small : decimal).format(value) : "—"),
  percent: (rate) => (present(rate) ? `${decimal.format(Math.round(rate * 1000) / 10)} %` : "—"),
  cost: (usd) => (present(usd) ? `$${Number(usd).toFixed(4)}` : "—"),
  perMinute: (value) => (present(value) ? `${formats.decimal(value)} / min` : "—"),
  ms(ms) {
    if (!present(ms)) return "—";
    if (ms < 1000) return `${integer.format(ms)} ms`;
    if (ms < 120_000) return `${decimal.format(ms / 1000)} s`;
    if (ms < 7_200_000) return `${decimal.format(ms / 60_000)} min`;
    return `${decimal.format(ms / 3_600_000)} h`;
  },
};

const HEADLINE = {
  runs: formats.count,
  success_rate: formats.percent,
  duration_p95: formats.ms,
  throughput: formats.perMinute,
  concurrency: formats.decimal,
  cost: formats.cost,
};

// --- the query -------------------------------------------------------------------------------------

const state = {
  range: page?.dataset.range || "24h",
  workspace: page?.dataset.workspace || "",
  workflow: page?.dataset.workflow || "",
};
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

function query(extra = {}) {
  const params = new URLSearchParams({ range: state.range, ...extra });
  if (state.workflow) params.set("workflow", state.workflow);
  else if (state.workspace) params.set("workspace", state.workspace);
  return params.toString();
}

function timeseries(metric, extra = {}) {
  return api(`analytics/timeseries?${query({ metric, bucket: BUCKETS[state.range], tz: zone, ...extra })}`);
}

// --- charts ----------------------------------------------------------------------------------------

const charts = new Map(); // figure id → uPlot
const timeFormats = {
  minute: new Intl.DateTimeFormat(undefined, { timeStyle: "short" }),
  hour: new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" }),
  day: new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }),
  week: new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }),
};

function color(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim() || fallback;
}

// series: [{label, values, color}]; kind "sum" (counts, cost: totals are meaningful) or "level" (rates,
// durations); stacked draws bars on top of one another.
function drawChart(id, { times, bucket, series, format, kind, stacked = false }) {
  const figure = document.getElementById(`chart-${id}`);
  const plot = figure.querySelector(".chart-plot");
  charts.get(id)?.destroy();
  const x = times.map((time) => Date.parse(time) / 1000);
  let drawn = series;
  if (stacked) {
    // Each bar is the sum of its series and those below; the tallest is drawn first.
    let below = x.map(() => 0);
    drawn = series.map((line) => {
      below = below.map((sum, index) => sum + (line.values[index] ?? 0));
      return { ...line, raw: line.values, values: below };
    });
    drawn.reverse();
  }
  const options = {
    width: Math.max(plot.clientWidth, 200),
    height: CHART_HEIGHT,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true },
      y: { range: (u, low, high) => [Math.min(0, low ?? 0), Math.max(high ?? 1, kind === "rate" ? 1 : 0) || 1] },
    },
    axes: [{}, { values: (u, ticks) => ticks.map(format), size: 70 }],
    series: [
      { value: (u, seconds) => (seconds === null ? "—" : timeFormats[bucket].format(new Date(seconds * 1000))) },
      ...drawn.map((line) => ({
        label: line.label,
        stroke: line.color,
        fill: stacked ? line.color : undefined,
        width: stacked ? 0 : 2,
        spanGaps: false,
        paths: stacked ? uPlot.paths.bars({ size: [0.7, 60] }) : undefined,
        points: { show: false },
        value: (u, value, seriesIndex, index) => format(line.raw ? line.raw[index] : value),
      })),
    ],
  };
  plot.replaceChildren();
  const chart = new uPlot(options, [x, ...drawn.map((line) => line.values)], plot);
  charts.set(id, chart);
  figure.dataset.series = String(series.length);
  figure.querySelector(".chart-summary").textContent = summary(series, { times, bucket, format, kind });
  figure.querySelector(".chart-numbers .table-scroll").replaceChildren(numbersTable(series, { times, bucket, format }));
}

function summary(series, { times, bucket, format, kind }) {
  const parts = series.map((line) => {
    const known = line.values.map((value, index) => [value, index]).filter(([value]) => present(value));
    if (kind === "sum") return `${line.label} ${format(known.reduce((total, [value]) => total + value, 0))} in all`;
    if (!known.length) return `${line.label}: no data`;
    const [highest, at] = known.reduce((best, item) => (item[0] > best[0] ? item : best));
    const latest = known[known.length - 1][0];
    return `${line.label}: highest ${format(highest)} (${timeFormats[bucket].format(new Date(times[at]))}), latest ${format(latest)}`;
  });
  return parts.length ? `${parts.join("; ")}.` : "No data in this range.";
}

function numbersTable(series, { times, bucket, format }) {
  const rows = times
    .map((time, index) => ({ time, values: series.map((line) => line.values[index]) }))
    .filter((row) => row.values.some((value) => present(value) && value !== 0));
  const head = h(
    "tr",
    {},
    h("th", { scope: "col" }, "Time"),
    ...series.map((line) => h("th", { scope: "col", class: "number" }, line.label)),
  );
  const body = rows.length
    ? rows.map((row) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, h("time", { datetime: row.time }, timeFormats[bucket].format(new Date(row.time)))),
          ...row.values.map((value) => h("td", { class: "number" }, format(value))),
        ),
      )
    : [h("tr", { class: "empty" }, h("td", { colspan: series.length + 1 }, "No data in this range."))];
  return h("table", { class: "data-table" }, h("thead", {}, head), h("tbody", {}, ...body));
}

function grouped(answer, colors = {}) {
  return (answer.series || []).map((line, index) => ({
    label: line.key,
    values: line.points.map((point) => point.value),
    color: colors[line.key] || PALETTE[index % PALETTE.length],
  }));
}

function single(label, answer, lineColor) {
  return { label, values: answer.points.map((point) => point.value), color: lineColor };
}

async function loadCharts() {
  const [rate, byStatus, p50, p95, p99, wait50, wait95, cost, tokens] = await Promise.all([
    timeseries("success_rate"),
    timeseries("runs", { group_by: "status" }),
    timeseries("duration_p50"),
    timeseries("duration_p95"),
    timeseries("duration_p99"),
    timeseries("queue_wait_p50"),
    timeseries("queue_wait_p95"),
    timeseries("generation_cost", { group_by: "model" }),
    timeseries("generation_tokens_in", { group_by: "model" }),
  ]);
  const times = rate.points.map((point) => point.t);
  const bucket = rate.bucket;
  const statusColors = Object.fromEntries(STATUS_ORDER.map((status) => [status, color(status, PALETTE[0])]));
  const statuses = grouped(byStatus, statusColors).sort(
    (a, b) => (STATUS_ORDER.indexOf(a.label) + 1 || 99) - (STATUS_ORDER.indexOf(b.label) + 1 || 99),
  );
  const common = { times, bucket };
  drawChart("success-rate", {
    ...common,
    series: [single("Success rate", rate, color("succeeded", "#12703a"))],
    format: formats.percent,
    kind: "rate",
  });
  drawChart("runs-by-status", { ...common, series: statuses, format: formats.count, kind: "sum", stacked: true });
  drawChart("duration", {
    ...common,
    series: [single("p50", p50, PALETTE[0]), single("p95", p95, PALETTE[3]), single("p99", p99, PALETTE[1])],
    format: formats.ms,
    kind: "level",
  });
  drawChart("queue-wait", {
    ...common,
    series: [single("p50", wait50, PALETTE[0]), single("p95", wait95, PALETTE[3])],
    format: formats.ms,
    kind: "level",
  });
  drawChart("cost-by-model", { ...common, series: grouped(cost), format: formats.cost, kind: "sum" });
  drawChart("tokens-by-model", { ...common, series: grouped(tokens), format: formats.count, kind: "sum" });
}

// Charts follow their container's width (a phone held sideways, a window resized).
const resizing = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const chart = charts.get(entry.target.closest("figure").id.replace(/^chart-/, ""));
    const width = Math.max(Math.floor(entry.contentRect.width), 200);
    if (chart && chart.width !== width) chart.setSize({ width, height: CHART_HEIGHT });
  }
});

// --- tables and figures ----------------------------------------------------------------------------

function fillTable(id, rows, columns) {
  const table = document.getElementById(id);
  if (!table) return;
  const body = rows.length
    ? rows.map((row) =>
        h("tr", {}, ...columns.map(([cell, number]) => h("td", { class: number ? "number" : undefined }, cell(row)))),
      )
    : [h("tr", { class: "empty" }, h("td", { colspan: columns.length }, "None in this range."))];
  table.tBodies[0].replaceChildren(...body);
}

function showHeadline(overview) {
  for (const [name, format] of Object.entries(HEADLINE)) {
    const cell = page.querySelector(`[data-figure="${name}"]`);
    cell.textContent = format(overview[name]);
    cell.dataset.value = present(overview[name]) ? String(overview[name]) : "";
  }
}

function showModels(rows) {
  fillTable("models", rows, [
    [(row) => row.label],
    [(row) => formats.count(row.count), true],
    [(row) => formats.count(row.tokens_in), true],
    [(row) => formats.count(row.tokens_out), true],
    [(row) => formats.cost(row.cost), true],
  ]);
}

function showErrors(rows) {
  fillTable("errors", rows, [[(row) => h("code", {}, row.label)], [(row) => formats.count(row.count), true]]);
}

function showNodes(nodes) {
  fillTable("nodes", nodes, [
    [(node) => h("code", {}, node.node_key)],
    [(node) => node.node_type],
    [(node) => formats.count(node.steps), true],
    [(node) => formats.percent(node.failure_rate), true],
    [(node) => formats.count(node.retries), true],
    [(node) => formats.ms(node.duration_p50), true],
    [(node) => formats.ms(node.duration_p95), true],
    [(node) => formats.ms(node.duration_p99), true],
    [(node) => formats.count(node.tokens_in + node.tokens_out), true],
    [(node) => formats.cost(node.cost), true],
  ]);
}

const SEVERITY_ORDER = { high: 0, warning: 1, info: 2 };

// GET analytics/insights answers {"results": [{id, kind, severity, status, title, link, opened_at}]}
// (the open ones by default).
async function loadInsights() {
  const list = document.getElementById("insights");
  if (!list) return;
  const insights = (await api(`analytics/insights?workspace=${state.workspace}`)).results || [];
  const open = insights
    .filter((insight) => (insight.status ?? "open") === "open")
    .sort((a, b) => (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3));
  list.replaceChildren(
    ...(open.length
      ? open.map((insight) =>
          h(
            "li",
            { dataset: { severity: insight.severity, kind: insight.kind } },
            h("span", { class: "severity" }, insight.severity),
            " ",
            insight.link ? h("a", { href: insight.link }, insight.title) : insight.title,
            insight.opened_at
              ? h("span", { class: "muted" }, ` · since ${new Date(insight.opened_at).toLocaleString()}`)
              : null,
          ),
        )
      : [h("li", { class: "muted" }, "No insights")]),
  );
}

async function loadFigures() {
  if (state.workflow) {
    const figures = await api(`analytics/workflows/${state.workflow}?range=${state.range}`);
    showHeadline(figures.overview);
    showErrors(figures.errors);
    showNodes(figures.nodes);
  } else {
    const [overview, errors] = await Promise.all([
      api(`analytics/overview?${query()}`),
      api(`analytics/breakdown?${query({ kind: "errors", limit: 10 })}`),
    ]);
    showHeadline(overview);
    showErrors(errors.rows);
  }
  showModels((await api(`analytics/breakdown?${query({ kind: "models" })}`)).rows);
}

async function nameWorkflow() {
  try {
    const workflow = await api(`workflows/${state.workflow}`);
    document.getElementById("workflow-name").textContent = workflow.name;
    document.title = `Analytics of ${workflow.name} · Document Workflow Chain`;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
  }
}

// --- loading, the range picker, live refresh -------------------------------------------------------

const loadError = document.getElementById("load-error");
let lastLoad = 0;
let loading = null;

async function load() {
  lastLoad = Date.now();
  page.dataset.loaded = "false";
  try {
    await Promise.all([loadFigures(), loadCharts(), loadInsights()]);
    showError(loadError, null);
    document.getElementById("analytics-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && state.workflow) {
      showError(loadError, new Error("There is no such workflow, or it is not in your workspaces."));
    } else {
      showError(loadError, error);
    }
  } finally {
    page.dataset.loaded = "true";
  }
}

function reload() {
  loading = (loading || Promise.resolve()).then(load);
  return loading;
}

let refreshTimer = null;
let followUps = 0;

// After runs finish: SETTLE_MS later, no sooner than REFRESH_EVERY_MS after the last load, and once more
// REFRESH_EVERY_MS after that: a run the feed counted only after the first reading is shown then.
function refreshSoon() {
  followUps = 1;
  scheduleRefresh();
}

function scheduleRefresh() {
  if (refreshTimer) return;
  const wait = Math.max(SETTLE_MS, lastLoad + REFRESH_EVERY_MS - Date.now());
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    reload();
    if (followUps > 0) {
      followUps -= 1;
      scheduleRefresh();
    }
  }, wait);
}

function pickRange(event) {
  const link = event.target.closest("a[data-range]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  state.range = link.dataset.range;
  for (const other of page.querySelectorAll(".range-picker a")) {
    if (other === link) other.setAttribute("aria-current", "true");
    else other.removeAttribute("aria-current");
  }
  const url = new URL(location.href);
  url.searchParams.set("range", state.range);
  history.replaceState(null, "", url);
  reload();
}

if (page) {
  setUpSwitcher().catch((error) => console.error(error));
  page.querySelector(".range-picker").addEventListener("click", pickRange);
  for (const plot of page.querySelectorAll(".chart-plot")) resizing.observe(plot);
  if (state.workflow) nameWorkflow().catch((error) => console.error(error));
  const path = state.workflow ? `/ws/workflows/${state.workflow}/` : `/ws/dashboard/?workspace=${state.workspace}`;
  const live = new LiveConnection(path, {
    onEvent: (event) => FINISHED.has(event.type) && refreshSoon(),
    onSubscribed: (reconnected) => (reconnected ? refreshSoon() : undefined),
    shown: () => [],
  });
  live.hold(reload());
}
