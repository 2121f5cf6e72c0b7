// /dashboard/runs/<id>/: one run, live. The REST API gives the run, its steps and its version's graph;
// the run's websocket then replays its event log from the start (which rebuilds text generated so far)
// and follows it: node colours, timings, outputs and errors change as events arrive, and step.delta
// text appears chunk by chunk. Cancel, Retry, Pause/Resume and Approve/Reject appear when they apply
// (editors only); an approval that reviews documents shows them, editable, with Request changes beside
// Approve.

import { drawGraph } from "./graph.js";
import { LiveConnection } from "./live.js";
import { api, canWrite, duration, h, me, setBadge, setUpSwitcher, showError, timeElement } from "./page.js";
import { STEP_STATUS_AFTER, runStatusAfter } from "./runs-table.js";

const page = document.getElementById("run-page");
const runId = page.dataset.run;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

const state = { run: null, steps: new Map(), order: [], writable: false, email: "" };
const views = new Map();
const dirty = new Set();
let setNodeStatus = () => {};
let replaying = true; // until the first replay of the log is done, render once at its end
let frame = 0;

function json(value) {
  return JSON.stringify(value, null, 2);
}

function isTruncated(value) {
  return value && typeof value === "object" && value.truncated === true && "bytes" in value;
}

// --- applying events ------------------------------------------------------------------------

function applyRunEvent(event) {
  const run = state.run;
  if (event.type === "run.changes_requested") {
    // The documents under review and what lies between them and the approval run again; the run goes on.
    for (const key of event.data.steps ?? []) {
      const step = state.steps.get(key);
      if (step) reopenStep(step);
    }
    return;
  }
  const status = runStatusAfter(event);
  if (!status) return;
  run.status = status;
  if (event.type === "run.started") run.started_at ??= event.ts;
  if (FINISHED.has(status)) {
    run.finished_at = event.ts;
    run.duration_seconds = event.data.duration_seconds ?? null;
    run.error = event.data.error ?? null;
    refreshLater();
  }
  if (status === "pending") {
    Object.assign(run, { finished_at: null, duration_seconds: null, error: null, output: null });
    const reopened = event.type === "run.retried" ? null : new Set(event.data.steps ?? []);
    for (const step of state.steps.values()) {
      if (reopened ? reopened.has(step.key) : step.status !== "succeeded") reopenStep(step);
    }
  }
  dirty.add("run");
}

function reopenStep(step) {
  const cleared = { status: "pending", output: null, error: null, finished_at: null, message: "", text: "", state: {} };
  Object.assign(step, cleared);
  dirty.add(step.key);
}

function applyStepEvent(event) {
  const step = state.steps.get(event.step);
  if (!step) return;
  const data = event.data;
  if (event.type === "step.delta") {
    step.text = data.restart ? "" : step.text + (data.text ?? "");
    step.streaming = true;
  } else if (event.type === "document.created") {
    step.document = data;
  } else {
    step.status = STEP_STATUS_AFTER[event.type] ?? step.status;
    if (state.run.status === "waiting" && ["queued", "running"].includes(step.status)) state.run.status = "running";
    if (event.type === "step.queued") Object.assign(step, { attempt: data.attempt, queued_at: event.ts, message: "" });
    if (event.type === "step.started") {
      const fresh = data.attempt !== step.attempt || !step.started_at; // not a waiting step resuming
      if (fresh) Object.assign(step, { started_at: event.ts, text: "", error: null });
      Object.assign(step, { attempt: data.attempt, worker: data.worker, message: "" });
    }
    if (event.type === "step.retrying") {
      step.error = data.error;
      step.message = `Attempt ${data.attempt} failed; trying again in ${duration(data.retry_in_seconds)}.`;
    }
    if (event.type === "step.waiting") {
      step.message = waitingMessage(data);
      if (step.type === "approval") refreshLater(); // its state names the documents under review
    }
    if (FINISHED.has(step.status) || step.status === "skipped") finishStep(step, event);
  }
  dirty.add(step.key);
}

// A delay's own message only repeats its time; others (an approval's question) say something new.
function waitingMessage(data) {
  const until = data.until ? ` until ${new Date(data.until).toLocaleString()}` : "";
  return [`Waiting (${data.reason})${until}.`, data.reason !== "delay" && data.message].filter(Boolean).join(" ");
}

function finishStep(step, event) {
  const data = event.data;
  step.finished_at = event.ts;
  step.message = "";
  step.streaming = false;
  step.error = data.error ?? null;
  if (event.type === "step.succeeded") {
    // A large output comes as a marker; the REST copy (fetched below) has the whole of it.
    if (!isTruncated(data.output)) step.output = data.output;
    Object.assign(step, { duration_ms: data.duration_ms ?? null, usage: data.usage ?? step.usage });
  }
  refreshLater();
}

function apply(event) {
  if (!state.run) return; // the page could not load the run; its error is shown
  if (event.type.startsWith("run.")) applyRunEvent(event);
  else applyStepEvent(event);
  scheduleRender();
}

// What events do not carry (a step's rendered input, whole outputs, the run's output and usage) comes
// from REST once things settle. Only those fields are taken: statuses come from events, in order.
let refreshTimer = 0;
function refreshLater() {
  if (replaying) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refresh().catch((error) => console.error(error)), 300);
}

async function refresh() {
  const [run, steps] = await Promise.all([api(`runs/${runId}`), api(`runs/${runId}/steps`)]);
  if (run.status === state.run.status) {
    Object.assign(state.run, { output: run.output, error: run.error, usage: run.usage });
    dirty.add("run");
  }
  for (const fresh of steps) {
    const step = state.steps.get(fresh.key);
    if (!step) continue;
    Object.assign(step, { input: fresh.input, usage: fresh.usage, state: fresh.state });
    if (fresh.status === step.status) Object.assign(step, { output: fresh.output, error: fresh.error });
    dirty.add(step.key);
  }
  scheduleRender();
}

// --- rendering ------------------------------------------------------------------------------

function scheduleRender() {
  if (replaying || frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    render();
  });
}

function render() {
  if (dirty.delete("run")) renderRun();
  for (const key of dirty) renderStep(key);
  dirty.clear();
}

function fact(name, content) {
  page.querySelector(`[data-fact="${name}"]`).replaceChildren(content);
}

function showPanel(panel, value) {
  panel.hidden = value === null || value === undefined || value === "";
  if (!panel.hidden) panel.querySelector("pre").textContent = typeof value === "string" ? value : json(value);
}

// A document with an earlier version (regenerated here, or written by an earlier run) links to
// the two side by side (/dashboard/documents/<id>/diff/).
function showDiffLink(panel, written) {
  panel.querySelector(".diff-link")?.remove();
  if (!written || !(written.version > 1)) return;
  const href = `/dashboard/documents/${written.document_id}/diff/`;
  panel.append(h("a", { class: "diff-link", href }, "Compare with an earlier version"));
}

function renderRun() {
  const run = state.run;
  setBadge(document.getElementById("run-status"), run.status);
  fact("created_at", timeElement(run.created_at));
  fact("started_at", timeElement(run.started_at));
  fact("finished_at", timeElement(run.finished_at));
  fact("duration", duration(run.duration_seconds));
  const usage = run.usage ?? {};
  fact("usage", `${usage.tokens_in ?? 0} in · ${usage.tokens_out ?? 0} out · $${(usage.cost ?? 0).toFixed(4)}`);
  document.getElementById("run-input-value").textContent = json(run.input);
  showPanel(document.getElementById("run-output-panel"), run.output);
  showPanel(document.getElementById("run-error-panel"), run.error);
  const cancel = document.getElementById("cancel-button");
  const retry = document.getElementById("retry-button");
  if (cancel) cancel.hidden = !state.writable || FINISHED.has(run.status);
  if (retry) retry.hidden = !state.writable || !["failed", "cancelled"].includes(run.status);
  const pausable = state.writable && !FINISHED.has(run.status) && run.status !== "paused";
  for (const id of ["pause-button", "pause-now-button"]) {
    const button = document.getElementById(id);
    if (button) button.hidden = !pausable;
  }
  const resume = document.getElementById("resume-button");
  if (resume) resume.hidden = !state.writable || run.status !== "paused";
  for (const key of state.order) dirty.add(key); // the approval form depends on the run too
}

function stepView(step) {
  const panel = (name, title, extra = "") => {
    const attributes = { class: `panel ${extra}`.trim(), dataset: { panel: name }, hidden: true };
    return h("details", attributes, h("summary", {}, title), h("pre"));
  };
  const view = h(
    "article",
    { class: "step", id: `step-${step.key}`, dataset: { key: step.key }, "aria-labelledby": `step-${step.key}-title` },
    h(
      "header",
      {},
      h("h3", { id: `step-${step.key}-title` }, h("code", {}, step.key), " ", step.title ?? ""),
      h("span", { class: "badge" }),
    ),
    h("p", { class: "step-meta" }),
    h("p", { class: "step-message", hidden: true }),
    h("div", { class: "approval-slot" }),
    panel("text", "Generated text", "stream"),
    panel("document", "Document"),
    panel("input", "Input"),
    panel("output", "Output"),
    panel("error", "Error", "error-panel"),
  );
  view.querySelector("[data-panel=error]").open = true;
  return view;
}

function renderStep(key) {
  const step = state.steps.get(key);
  const view = views.get(key);
  if (!step || !view) return;
  view.dataset.status = step.status;
  setBadge(view.querySelector(".badge"), step.status);
  setNodeStatus(key, step.status);
  const meta = [
    step.type,
    step.attempt ? `attempt ${step.attempt}` : null,
    step.started_at ? `started ${new Date(step.started_at).toLocaleTimeString()}` : null,
    step.duration_ms !== null && step.duration_ms !== undefined ? duration(step.duration_ms / 1000) : null,
    step.worker ? `on ${step.worker}` : null,
  ];
  view.querySelector(".step-meta").textContent = meta.filter(Boolean).join(" · ");
  // A skipped or cancelled step's "error" says why it did not run: a note, not a failure.
  const note = ["skipped", "cancelled"].includes(step.status) ? step.error?.message : null;
  const message = view.querySelector(".step-message");
  message.textContent = step.message || note || "";
  message.hidden = !message.textContent;

  const stream = view.querySelector("[data-panel=text]");
  showPanel(stream, step.text);
  if (step.streaming && !stream.dataset.opened) stream.open = stream.dataset.opened = true;
  const written = step.document;
  const editedBy = written?.edited_by ? `, edited by ${written.edited_by}` : "";
  const documentInfo = written ? `${written.title} (version ${written.version}${editedBy})` : null;
  showPanel(view.querySelector("[data-panel=document]"), documentInfo);
  showDiffLink(view.querySelector("[data-panel=document]"), step.document);
  showPanel(view.querySelector("[data-panel=input]"), step.input);
  showPanel(view.querySelector("[data-panel=output]"), step.output);
  showPanel(view.querySelector("[data-panel=error]"), note ? null : step.error);
  renderApproval(step, view.querySelector(".approval-slot"));
}

// --- actions --------------------------------------------------------------------------------

function awaitsDecisionFromMe(step) {
  if (!state.writable || step.type !== "approval" || step.status !== "waiting") return false;
  const approvers = (step.input?.config?.approvers ?? []).map((email) => email.toLowerCase());
  return approvers.length === 0 || approvers.includes(state.email);
}

function renderApproval(step, slot) {
  const template = document.getElementById("approval-template");
  if (!template || !awaitsDecisionFromMe(step)) {
    slot.replaceChildren();
    delete slot.dataset.review;
    return;
  }
  // Built once per set of documents under review: a refresh must not wipe what the reviewer typed.
  const review = step.state?.review ?? [];
  const signature = review.map((entry) => entry.document_id).join(",");
  if (slot.firstElementChild && slot.dataset.review === signature) return;
  slot.dataset.review = signature;
  const form = template.content.firstElementChild.cloneNode(true);
  const error = h("p", { class: "errors", role: "alert", hidden: true });
  form.setAttribute("aria-label", `Decide ${step.key}`);
  const editors = review.map((entry) => reviewEditor(entry, error));
  form.querySelector(".review").append(...editors.map((editor) => editor.label));
  form.querySelector(".review").hidden = review.length === 0;
  form.querySelector("button[value=changes]").hidden = review.length === 0;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const choice = event.submitter?.value;
    const comment = form.elements.comment.value;
    const base = `runs/${runId}/steps/${step.key}`;
    let request;
    if (choice === "changes") {
      request = () => api(`${base}/request-changes`, { method: "POST", body: { comment } });
    } else {
      const body = { approved: choice === "approve", comment };
      const edits = Object.fromEntries(
        editors.filter((editor) => editor.changed()).map((editor) => [editor.key, editor.textarea.value]),
      );
      if (body.approved && Object.keys(edits).length) body.edits = edits;
      request = () => api(`${base}/approve`, { method: "POST", body });
    }
    await act(form.querySelectorAll("button"), error, request);
  });
  slot.replaceChildren(form, error);
}

// One document under review: its text, loaded from the API, in a textarea the reviewer may change.
function reviewEditor(entry, error) {
  const textarea = h("textarea", { name: `edit-${entry.node_key}`, rows: 10, disabled: true });
  textarea.value = "Loading…";
  const label = h("label", {}, `${entry.title} (${entry.node_key}, version ${entry.version})`, textarea);
  let original = null;
  api(`documents/${entry.document_id}`)
    .then((written) => {
      original = written.content;
      textarea.value = original;
      textarea.disabled = false;
    })
    .catch((failure) => showError(error, failure));
  return { key: entry.node_key, textarea, label, changed: () => original !== null && textarea.value !== original };
}

async function act(buttons, errorElement, request) {
  buttons.forEach((button) => {
    button.disabled = true;
  });
  try {
    await request();
    showError(errorElement, null);
  } catch (error) {
    showError(errorElement, error);
  } finally {
    buttons.forEach((button) => {
      button.disabled = false;
    });
  }
}

function setUpActions() {
  const error = document.getElementById("action-error");
  for (const [id, action] of [
    ["cancel-button", "cancel"],
    ["retry-button", "retry"],
    ["pause-button", "pause"],
    ["pause-now-button", "pause?now=true"],
    ["resume-button", "resume"],
  ]) {
    const button = document.getElementById(id);
    const request = () => api(`runs/${runId}/${action}`, { method: "POST" });
    button?.addEventListener("click", () => act([button], error, request));
  }
}

// --- loading --------------------------------------------------------------------------------

async function graphOf(run) {
  try {
    return (await api(`workflows/${run.workflow}/versions/${run.version}`)).snapshot;
  } catch {
    return null; // a deleted workflow's versions are gone from the API; the steps still show
  }
}

async function load() {
  const [run, steps, user] = await Promise.all([api(`runs/${runId}`), api(`runs/${runId}/steps`), me()]);
  const graph = await graphOf(run);
  state.run = run;
  state.email = user.email.toLowerCase();
  state.writable = await canWrite(run.workspace);
  const nodes = graph?.nodes ?? steps.map((step) => ({ key: step.key, type: step.type, title: "" }));
  const byKey = new Map(steps.map((step) => [step.key, step]));
  state.order = nodes.map((node) => node.key).filter((key) => byKey.has(key));
  for (const key of state.order) {
    const node = nodes.find((candidate) => candidate.key === key);
    state.steps.set(key, { ...byKey.get(key), title: node.title, text: "", message: "", document: null });
  }
  setNodeStatus = drawGraph(document.getElementById("graph"), { nodes, edges: graph?.edges ?? [] }, {
    link: (node) => `#step-${node.key}`,
    label: `Graph of run ${runId.slice(0, 8)}`,
  });
  const container = document.getElementById("steps");
  container.replaceChildren(...state.order.map((key) => views.set(key, stepView(state.steps.get(key))).get(key)));
  dirty.add("run");
  render();
}

setUpSwitcher().catch((error) => console.error(error));
setUpActions();
const live = new LiveConnection(`/ws/runs/${runId}/`, {
  run: runId,
  onEvent: apply,
  onResumed: () => {
    replaying = false;
    scheduleRender();
    refreshLater();
  },
});
live
  .hold(load())
  .catch((error) => showError(document.getElementById("action-error"), error));
