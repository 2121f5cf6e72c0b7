// /dashboard/workflows/<id>/: the workflow's graph and its recent runs, kept current by its websocket.

import { drawGraph } from "./graph.js";
import { LiveConnection } from "./live.js";
import { api, canWrite, setBadge, setUpSwitcher, showError } from "./page.js";
import { canStartRuns, openRunDialog } from "./run-dialog.js";
import { RunsTable } from "./runs-table.js";

const page = document.getElementById("workflow-page");
const workflowId = page.dataset.workflow;
const runs = new RunsTable(document.getElementById("runs"));
const loadError = document.getElementById("load-error");
const RUNS_PAUSE_CHANGES = new Set([
  "workflow.runs_paused",
  "workflow.runs_resumed",
  "workspace.runs_paused",
  "workspace.runs_resumed",
]);
let writable = false;

async function loadRuns() {
  runs.replace((await api(`runs?workflow=${workflowId}`)).results);
}

// The workflow's runs paused (running ones paused, new ones held queued): a note, and for editors the
// button that pauses or resumes them.
function showRunsPause(pause, writable) {
  const note = document.getElementById("runs-paused");
  note.hidden = !pause.paused;
  if (pause.paused) {
    const since = new Date(pause.paused_at).toLocaleString();
    note.textContent = `Runs paused since ${since}${pause.paused_by ? ` by ${pause.paused_by}` : ""}: new runs wait, queued.`;
  }
  const pauseButton = document.getElementById("runs-pause-button");
  const resumeButton = document.getElementById("runs-resume-button");
  if (pauseButton) pauseButton.hidden = !writable || pause.paused;
  if (resumeButton) resumeButton.hidden = !writable || !pause.paused;
}

async function setUpRunsPause() {
  const path = `workflows/${workflowId}/runs-pause`;
  showRunsPause(await api(path), writable);
  for (const [id, method] of [
    ["runs-pause-button", "POST"],
    ["runs-resume-button", "DELETE"],
  ]) {
    const button = document.getElementById(id);
    button?.addEventListener("click", async () => {
      button.disabled = true;
      try {
        showRunsPause(await api(path, { method }), writable);
        loadError.hidden = true;
        await loadRuns();
      } catch (error) {
        showError(loadError, error);
      } finally {
        button.disabled = false;
      }
    });
  }
}

async function load() {
  const workflow = await api(`workflows/${workflowId}`);
  writable = await canWrite(workflow.workspace);
  await setUpRunsPause();
  drawWorkflow(workflow);
  const button = document.getElementById("run-button");
  if (button && canStartRuns && writable) {
    button.addEventListener("click", () => openRunDialog(workflow));
    button.disabled = false;
  } else {
    button?.remove();
  }
  await loadRuns();
}

function drawWorkflow(workflow) {
  drawGraph(document.getElementById("graph"), workflow, { label: `Graph of ${workflow.name}` });
}

// The name, status and version the page shows; a new version has a new graph too.
async function showUpdated({ name, status, version }) {
  document.getElementById("workflow-name").textContent = name;
  setBadge(document.getElementById("workflow-status"), status);
  const shown = document.getElementById("workflow-version");
  if (shown.textContent === String(version)) return;
  shown.textContent = version;
  drawWorkflow(await api(`workflows/${workflowId}`));
}

async function refreshRunsPause() {
  showRunsPause(await api(`workflows/${workflowId}/runs-pause`), writable);
}

// Anyone (this page too) paused or resumed the workflow's runs or its workspace's: the note and buttons follow.
async function onWorkflowEvent(event) {
  if (RUNS_PAUSE_CHANGES.has(event.type)) await refreshRunsPause();
  else if (event.type === "workflow.updated") await showUpdated(event.data);
}

// After a reconnect: the runs, and the pause whose events (never replayed) may have been missed.
function reloadAfterGap() {
  return Promise.all([loadRuns(), refreshRunsPause()]).catch((error) => showError(loadError, error));
}

setUpSwitcher().catch((error) => console.error(error));
const live = new LiveConnection(`/ws/workflows/${workflowId}/`, {
  onEvent: (event) => runs.apply(event),
  onWorkflowEvent: (event) => onWorkflowEvent(event).catch((error) => showError(loadError, error)),
  onSubscribed: (reconnected) => (reconnected ? reloadAfterGap() : undefined),
  shown: () => runs.ids(),
});
live.hold(load()).catch((error) => showError(loadError, error));
