// /dashboard/workflows/<id>/: the workflow's graph and its recent runs, kept current by its websocket.

import { drawGraph } from "./graph.js";
import { LiveConnection } from "./live.js";
import { api, canWrite, setUpSwitcher, showError } from "./page.js";
import { canStartRuns, openRunDialog } from "./run-dialog.js";
import { RunsTable } from "./runs-table.js";

const page = document.getElementById("workflow-page");
const workflowId = page.dataset.workflow;
const runs = new RunsTable(document.getElementById("runs"));
const loadError = document.getElementById("load-error");

async function loadRuns() {
  runs.replace((await api(`runs?workflow=${workflowId}`)).results);
}

async function load() {
  const workflow = await api(`workflows/${workflowId}`);
  drawGraph(document.getElementById("graph"), workflow, { label: `Graph of ${workflow.name}` });
  const button = document.getElementById("run-button");
  if (button && canStartRuns && (await canWrite(workflow.workspace))) {
    button.addEventListener("click", () => openRunDialog(workflow));
    button.disabled = false;
  } else {
    button?.remove();
  }
  await loadRuns();
}

setUpSwitcher().catch((error) => console.error(error));
const live = new LiveConnection(`/ws/workflows/${workflowId}/`, {
  onEvent: (event) => runs.apply(event),
  onSubscribed: (reconnected) => (reconnected ? loadRuns().catch((error) => showError(loadError, error)) : undefined),
  shown: () => runs.ids(),
});
live.hold(load()).catch((error) => showError(loadError, error));
