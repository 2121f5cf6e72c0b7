// /dashboard/workflows/<id>/edit/ (and /dashboard/workflows/new/): the visual builder. It talks only to
// the public API, as an integrator would: node-types for the palette, the workflow with its version as
// ETag, PUT with If-Match to save, versions, export and import. Forms come from builder/node-panel.js,
// the run form from builder/run-panel.js (docs/builder.md).

import { Canvas, uniqueKey } from "./builder/canvas.js";
import { History, Drafts, copyNodes, definition, errorsByNode, pastedNodes } from "./builder/document.js";
import { LiveConnection } from "./live.js";
import { ApiError, api, canWrite, dashboardUrls, h, setUpSwitcher, showError } from "./page.js";
import { STEP_STATUS_AFTER } from "./runs-table.js";

const GROUPS = ["documents", "logic", "integrations", "people"];

const page = document.getElementById("builder-page");
const errorBox = document.getElementById("builder-error");
const banner = document.getElementById("builder-banner");
const $ = (id) => document.getElementById(id);

const state = {
  workflow: null, // as the API last answered it
  version: null, // the version our edits start from (the ETag)
  writable: false,
  viewing: null, // a version shown read-only
  viewingNodes: [], // its nodes
  types: new Map(),
  credentials: [],
  errors: new Map(), // node key → its errors, relative to the node
  workflowErrors: {}, // the workflow's own fields' errors (input_schema, settings.timeout, …)
  viewingWorkflow: null, // the fields of the version shown read-only
  panel: null, // the node's form, or with no node selected the workflow's
  panelKey: null,
  changing: new Set(), // this page's own saves, restores and loads still waiting for their answer
  offered: 0, // the newest version a banner offers to load (a conflict's or another editor's save)
};
let canvas;
let history;
let drafts;

const current = () => history.current;
const dirty = () => JSON.stringify(current()) !== JSON.stringify(definition(state.workflow));

function showBanner(...children) {
  children = children.filter((child) => child !== null && child !== undefined);
  banner.replaceChildren(...children);
  banner.hidden = !children.length;
}

function button(label, onClick, attributes = {}) {
  const element = h("button", { type: "button", ...attributes }, label);
  element.addEventListener("click", onClick);
  return element;
}

function download(name, data) {
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// --- the document, its history and drafts ------------------------------------------------------------

function change(next) {
  history.push(next);
  afterChange();
}

function afterChange({ redraw = false } = {}) {
  const editable = current();
  if (redraw) canvas.render(editable.nodes);
  const unsaved = dirty();
  $("dirty-mark").hidden = !unsaved;
  if ($("workflow-name") && document.activeElement !== $("workflow-name")) $("workflow-name").value = editable.name;
  if ($("undo-button")) $("undo-button").disabled = !history.canUndo;
  if ($("redo-button")) $("redo-button").disabled = !history.canRedo;
  if (unsaved) drafts.save(state.version, editable); // cleared by a save, a discard or a restore only
  refreshPanel();
}

function undo() {
  commitPanel();
  history.undo();
  afterChange({ redraw: true });
  reopenPanel();
}

function redo() {
  commitPanel();
  history.redo();
  afterChange({ redraw: true });
  reopenPanel();
}

function replaceNodes(nodes) {
  change({ ...current(), nodes });
}

// --- loading ------------------------------------------------------------------------------------------

async function loadWorkflow() {
  const workflow = await api(`workflows/${page.dataset.workflow}`);
  state.workflow = workflow;
  state.version = workflow.version;
  state.viewing = null;
  $("version-label").textContent = `Version ${workflow.version}`;
  history.reset(definition(workflow));
  state.errors.clear();
  canvas.setErrors(new Set());
  canvas.setReadOnly(!state.writable);
  afterChange({ redraw: true });
  if (state.panel) reopenPanel();
  else openPanel(null); // the workflow's own fields until a node is selected
  await loadVersions();
}

async function loadVersions() {
  const versions = (await api(`workflows/${page.dataset.workflow}/versions?page_size=200`)).results;
  $("versions").replaceChildren(
    h("option", { value: "" }, "Current"),
    ...versions.map((version) =>
      h("option", { value: version.number }, `Version ${version.number}${version.note ? ` — ${version.note}` : ""}`),
    ),
  );
}

function offerDraft() {
  const draft = drafts.load(state.version);
  if (!draft || JSON.stringify(draft.state) === JSON.stringify(current())) return;
  const when = new Date(draft.saved_at).toLocaleString();
  showBanner(
    `You have unsaved changes from ${when}. `,
    button("Restore them", () => {
      showBanner();
      change(draft.state);
      canvas.render(current().nodes);
      reopenPanel();
    }),
    " ",
    button("Discard them", () => {
      drafts.clear();
      showBanner();
    }),
  );
}

// --- saving -------------------------------------------------------------------------------------------

async function save() {
  if (!state.writable || state.viewing) return;
  commitPanel();
  const saveButton = $("save-button");
  saveButton.disabled = true;
  showError(errorBox, null);
  showBanner(); // a "Saved as version N" of an earlier save must not stand for this one
  try {
    const workflow = await api(`workflows/${page.dataset.workflow}`, {
      method: "PUT",
      body: current(),
      headers: { "If-Match": `"${state.version}"` },
    });
    drafts.clear();
    state.workflow = workflow;
    state.version = workflow.version;
    $("version-label").textContent = `Version ${workflow.version}`;
    pinErrors({});
    history.push(definition(workflow));
    afterChange({ redraw: true });
    showBanner(`Saved as version ${workflow.version}.`);
    await loadVersions();
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) conflict(error);
    else if (error instanceof ApiError && error.status === 400 && error.problem.errors) pinErrors(error.problem.errors);
    else showError(errorBox, error);
  } finally {
    saveButton.disabled = false;
  }
}

function pinErrors(errors) {
  const { byNode, rest } = errorsByNode(errors, current().nodes.map((node) => node.key));
  state.errors = byNode;
  state.workflowErrors = rest;
  canvas.setErrors(new Set(byNode.keys()));
  const lines = [
    ...[...byNode].map(([key, fields]) => `${key}: ${Object.values(fields).flat().join(" ")}`),
    ...Object.entries(rest).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`),
  ];
  showError(errorBox, lines.length ? new ApiError(400, { errors: { non_field_errors: lines } }) : null);
  if (byNode.size) canvas.select([byNode.keys().next().value]);
  state.panel?.setErrors(state.panelKey ? (state.errors.get(state.panelKey) ?? {}) : rest);
}

function conflict(error) {
  const theirs = error.problem.version;
  state.offered = Math.max(state.offered, theirs ?? 0);
  showBanner(`Someone saved version ${theirs ?? "?"} meanwhile. `, keepMineButton(), " ", loadTheirsButton(theirs));
}

// The unsaved edits as an importable dwc-workflow/1 document: what the person keeps before loading
// another version over them.
function keepMineButton() {
  const mine = { format: "dwc-workflow/1", ...current() };
  return button("Download my changes", () => download(`${current().name || "workflow"}-unsaved.json`, mine));
}

function loadTheirsButton(theirs) {
  return button(`Load version ${theirs ?? "the latest"}`, () => {
    showBanner();
    ownChange(loadWorkflow()).catch((failure) => showError(errorBox, failure));
  });
}

// --- other people's changes, from the workflow's websocket ---------------------------------------------

// A change this page makes itself: its own event may come before or after the API's answer, so the
// workflow's events wait for these and then compare versions with the answer's.
function ownChange(promise) {
  state.changing.add(promise);
  const settled = () => state.changing.delete(promise);
  promise.then(settled, settled);
  return promise;
}

async function ownChangesSettled() {
  while (state.changing.size) await Promise.allSettled([...state.changing]);
}

async function onWorkflowEvent(event) {
  await ownChangesSettled();
  if (!state.workflow) return;
  const who = event.data.by ?? "Someone";
  if (event.type === "workflow.updated") theySaved(who, event.data.version);
  else if (event.type === "workflow.deleted") theyDeleted(who);
  else if (event.type === "workflow.restored") showBanner(`${who} restored this workflow.`);
}

function theyDeleted(who) {
  const unsaved = dirty();
  showBanner(
    `${who} deleted this workflow.`,
    unsaved ? " Your unsaved changes can no longer be saved: " : null,
    unsaved ? keepMineButton() : null,
  );
}

// A version newer than the one the edits start from (a status or tags change keeps the version: no banner).
function theySaved(who, version) {
  if (!(version > state.version) || version <= state.offered) return;
  state.offered = version;
  const mine = dirty() ? ["Saving your changes now will be refused as a conflict. ", keepMineButton(), " "] : [];
  showBanner(`${who} saved version ${version}. `, ...mine, loadTheirsButton(version));
}

// Workflow events sent while the socket was down are not replayed: the workflow's version says whether
// someone saved it meanwhile. (Once it is deleted the socket is refused, and says so in the header.)
async function missedSaves() {
  await ownChangesSettled();
  if (state.workflow) theySaved("Someone", (await api(`workflows/${page.dataset.workflow}`)).version);
}

function followWorkflow() {
  return new LiveConnection(`/ws/workflows/${page.dataset.workflow}/`, {
    onWorkflowEvent: (event) => onWorkflowEvent(event).catch((error) => showError(errorBox, error)),
    onSubscribed: (reconnected) => {
      if (reconnected) missedSaves().catch((error) => showError(errorBox, error));
    },
    shown: () => [], // its runs' events are the run panel's business, not this connection's
  });
}

// --- panels -------------------------------------------------------------------------------------------

// The nodes on the canvas: the document's, or those of the version shown read-only.
function shownNodes() {
  return state.viewing ? state.viewingNodes : current().nodes;
}

function scope() {
  return {
    nodes: shownNodes().map((node) => ({
      key: node.key,
      type: node.type,
      branches: state.types.get(node.type)?.branches ?? [],
    })),
    input: Object.keys(current().input_schema?.properties ?? {}),
  };
}

// The form's edit still waiting for the typing pause, made now: a save, an undo or a run right after a
// keystroke (ctrl+s from the field itself) must see it.
function commitPanel() {
  state.panel?.flush();
}

// When the document changes under it (undo, redo, a draft restored, an import, another version) the
// open form still shows what it was opened with: open it again on the node as it is now.
function reopenPanel() {
  const key = state.panelKey;
  if (!state.panel) return;
  state.panel.close();
  state.panel = null;
  state.panelKey = null;
  openPanel(key);
}

// The nodes after a node's form changed it. The form was opened with the node as it was then: its
// place on the canvas and its edges stay the document's, and a new key carries the edges of the
// nodes that depend on it.
function formEdit(before, updated) {
  const rename = (dependency) => {
    if (typeof dependency === "string") return dependency === before ? updated.key : dependency;
    return dependency.node === before ? { ...dependency, node: updated.key } : dependency;
  };
  return current().nodes.map((node) => {
    if (node.key === before) return { ...updated, position: node.position, depends_on: node.depends_on };
    if (before === updated.key) return node;
    return { ...node, depends_on: (node.depends_on ?? []).map(rename) };
  });
}

async function openPanel(key) {
  if (key === state.panelKey && state.panel) return;
  state.panel?.close();
  state.panel = null;
  state.panelKey = key;
  $("side-hint").hidden = true;
  const container = $("node-panel");
  container.replaceChildren();
  if (!key) {
    openWorkflowSettings(container);
    return;
  }
  const node = shownNodes().find((candidate) => candidate.key === key);
  if (!node) {
    $("side-hint").hidden = false; // not in the version shown
    return;
  }
  let editing = key; // the node's key as its form last set it
  try {
    const { openNodePanel } = await import("./builder/node-panel.js");
    if (state.panelKey !== key) return;
    state.panel = openNodePanel(container, {
      nodeType: state.types.get(node.type),
      node,
      credentials: state.credentials,
      scope: scope(),
      readOnly: !state.writable || Boolean(state.viewing),
      onChange: (updated) => {
        const before = editing;
        editing = updated.key;
        if (state.panelKey === before) state.panelKey = updated.key;
        replaceNodes(formEdit(before, updated));
        canvas.update(current().nodes);
      },
    });
    state.panel.setErrors(state.errors.get(key) ?? {});
  } catch (error) {
    container.replaceChildren(h("p", { class: "errors" }, `The node form could not be loaded: ${error.message}`));
  }
}

// No node selected: the workflow's own fields (description, input schema, run settings).
async function openWorkflowSettings(container) {
  try {
    const { openWorkflowPanel } = await import("./builder/workflow-panel.js");
    if (state.panelKey !== null || state.panel) return; // a node was selected meanwhile
    state.panel = openWorkflowPanel(container, {
      workflow: state.viewing ? state.viewingWorkflow : current(),
      readOnly: !state.writable || Boolean(state.viewing),
      onChange: (fields) => change({ ...current(), ...fields }),
    });
    state.panel.setErrors(state.workflowErrors);
  } catch (error) {
    container.replaceChildren(h("p", { class: "errors" }, `The workflow form could not be loaded: ${error.message}`));
  }
}

function refreshPanel() {
  if (state.panelKey && !current().nodes.some((node) => node.key === state.panelKey)) openPanel(null);
}

async function openRun() {
  commitPanel();
  if (dirty()) {
    showBanner("Save your changes first: a run uses the saved version.");
    return;
  }
  try {
    const { openRunPanel } = await import("./builder/run-panel.js");
    openRunPanel($("run-panel"), { workflow: state.workflow, onStarted: followRun });
  } catch (error) {
    showError(errorBox, error);
  }
}

// A run started from the builder, shown on the canvas as its events arrive.
function followRun(run) {
  canvas.clearStatuses();
  const texts = new Map();
  new LiveConnection(`/ws/runs/${run.id}/`, {
    run: run.id,
    onEvent: (event) => {
      if (!event.step) return;
      if (event.type === "step.delta") {
        const text = event.data.restart ? "" : (texts.get(event.step) ?? "") + (event.data.text ?? "");
        texts.set(event.step, text);
        canvas.setStatus(event.step, undefined, text);
      } else if (STEP_STATUS_AFTER[event.type]) {
        canvas.setStatus(event.step, STEP_STATUS_AFTER[event.type]);
      }
    },
  });
  showBanner("Run started: ", h("a", { href: dashboardUrls.run(run.id) }, "open its page"), ".");
}

// --- palette, versions, import and export ---------------------------------------------------------

function addNode(type, position) {
  const nodeType = state.types.get(type);
  const key = uniqueKey(type, new Set(current().nodes.map((node) => node.key)));
  const node = { ...structuredClone(nodeType.example ?? {}), key, type, position, depends_on: [] };
  replaceNodes([...current().nodes, node]);
  canvas.render(current().nodes);
  canvas.select([key]);
}

function drawPalette() {
  const palette = $("palette");
  if (!palette) return;
  const groups = GROUPS.map((group) => {
    const types = [...state.types.values()].filter((type) => type.group === group);
    const items = types.map((type) => {
      const item = h(
        "button",
        { type: "button", class: "palette-item", draggable: "true", title: type.description, dataset: { type: type.type } },
        type.type,
      );
      item.addEventListener("click", () => addNode(type.type, canvas.centre()));
      item.addEventListener("dragstart", (event) => event.dataTransfer.setData("application/x-dwc-node-type", type.type));
      return item;
    });
    return h("section", { class: "palette-group" }, h("h2", {}, group), ...items);
  });
  palette.replaceChildren(...groups);
  const canvasElement = $("canvas");
  canvasElement.addEventListener("dragover", (event) => event.preventDefault());
  canvasElement.addEventListener("drop", (event) => {
    const type = event.dataTransfer.getData("application/x-dwc-node-type");
    if (!type || !state.types.has(type)) return;
    event.preventDefault();
    addNode(type, canvas.pointAt(event.clientX, event.clientY));
  });
}

async function showVersion(number) {
  if (!number) {
    state.viewing = null;
    showBanner();
    canvas.setReadOnly(!state.writable);
    afterChange({ redraw: true });
    reopenPanel();
    return;
  }
  const version = await api(`workflows/${page.dataset.workflow}/versions/${number}`);
  commitPanel();
  state.viewing = version.number;
  state.viewingNodes = definition(version.snapshot).nodes;
  state.viewingWorkflow = definition(version.snapshot);
  canvas.setReadOnly(true);
  canvas.render(state.viewingNodes);
  reopenPanel();
  const restore = state.writable ? button("Restore this version", () => ownChange(restoreVersion(number))) : null;
  showBanner(`Version ${number}, read-only. `, restore, " ", button("Back to editing", () => {
    $("versions").value = "";
    showVersion("");
  }));
}

async function restoreVersion(number) {
  await api(`workflows/${page.dataset.workflow}/versions/${number}/restore`, { method: "POST" });
  drafts.clear();
  showBanner();
  await loadWorkflow();
  showBanner(`Version ${number} restored.`);
}

async function exportWorkflow() {
  const document = await api(`workflows/${page.dataset.workflow}/export`);
  download(`${state.workflow.slug || state.workflow.name || "workflow"}.json`, document);
}

async function importFile(file) {
  const parsed = JSON.parse(await file.text());
  const document = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!document || !Array.isArray(document.nodes)) throw new Error("This file holds no dwc-workflow/1 document.");
  replaceNodes(definition(document).nodes);
  canvas.render(current().nodes);
  reopenPanel();
  showBanner(`Imported ${document.nodes.length} nodes from ${file.name}: not saved yet.`);
}

// --- keys and buttons ------------------------------------------------------------------------------

function typing(target) {
  return target.closest("input, textarea, select, [contenteditable]");
}

function onKey(event) {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && key === "s") {
    event.preventDefault();
    ownChange(save());
    return;
  }
  if (typing(event.target) || !state.writable || state.viewing) return;
  if (mod && key === "z") {
    event.preventDefault();
    if (event.shiftKey) redo();
    else undo();
  } else if (mod && key === "y") {
    event.preventDefault();
    redo();
  } else if (mod && key === "c") {
    copyNodes(current().nodes, canvas.selected.size ? [...canvas.selected] : []);
  } else if (mod && key === "v") {
    const pasted = pastedNodes(new Set(current().nodes.map((node) => node.key)), uniqueKey);
    if (!pasted.length) return;
    replaceNodes([...current().nodes, ...pasted]);
    canvas.render(current().nodes);
    canvas.select(pasted.map((node) => node.key));
  } else if (event.key === "Delete" && !$("canvas").contains(event.target)) {
    canvas.deleteSelection(); // inside the canvas Drawflow handles the key itself
  }
}

function wireButtons() {
  const on = (id, handler) =>
    $(id)?.addEventListener("click", () => Promise.resolve(handler()).catch((error) => showError(errorBox, error)));
  on("save-button", () => ownChange(save()));
  on("undo-button", undo);
  on("redo-button", redo);
  on("delete-button", () => canvas.deleteSelection());
  on("layout-button", () => canvas.autoLayout());
  on("run-button", openRun);
  on("zoom-in-button", () => canvas.zoom(1));
  on("zoom-out-button", () => canvas.zoom(-1));
  on("zoom-reset-button", () => canvas.zoom(0));
  on("export-button", exportWorkflow);
  $("versions").addEventListener("change", (event) =>
    showVersion(event.target.value).catch((error) => showError(errorBox, error)),
  );
  $("import-file")?.addEventListener("change", (event) => {
    const [file] = event.target.files;
    event.target.value = "";
    if (file) importFile(file).catch((error) => showError(errorBox, error));
  });
  $("workflow-name")?.addEventListener("change", (event) => change({ ...current(), name: event.target.value }));
  document.addEventListener("keydown", onKey);
  window.addEventListener("beforeunload", (event) => {
    commitPanel(); // into the draft too
    if (state.workflow && dirty()) event.preventDefault();
  });
}

async function start() {
  const workspace = page.dataset.workspaceId;
  const [types, writable] = await Promise.all([api("node-types"), canWrite(workspace)]);
  state.writable = writable && page.dataset.writable === "true";
  state.types = new Map(types.map((type) => [type.type, type]));
  if (state.writable) {
    const credentials = await api(`credentials?workspace=${workspace}&page_size=200`).catch(() => ({ results: [] }));
    state.credentials = (credentials.results ?? []).map(({ name, kind }) => ({ name, kind }));
  }
  drafts = new Drafts(page.dataset.workflow);
  history = new History({ nodes: [] });
  canvas = new Canvas($("canvas"), {
    types: state.types,
    onChange: replaceNodes,
    onSelect: (key) => openPanel(key),
  });
  if (state.writable) drawPalette();
  wireButtons();
  followWorkflow();
  await ownChange(loadWorkflow());
  if (state.writable) offerDraft();
}

// /dashboard/workflows/new/: a name, then the new workflow's builder.
function startNew() {
  const form = $("new-workflow-form");
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const workspace = document.getElementById("builder-new").dataset.workspaceId;
    try {
      const workflow = await api("workflows", { method: "POST", body: { name: $("new-name").value, workspace, nodes: [] } });
      location.assign(`/dashboard/workflows/${workflow.id}/edit/`);
    } catch (error) {
      showError($("new-error"), error);
    }
  });
  // Enabled only now: a click before this script ran would submit the form to the page itself.
  if (form) $("new-workflow-button").disabled = false;
}

setUpSwitcher().catch((error) => console.error(error));
if (page) start().catch((error) => showError(errorBox, error));
else startNew();
