// /dashboard/runs/: the workspace's latest runs, kept current by the dashboard websocket.

import { LiveConnection } from "./live.js";
import { apiList, setUpSwitcher, shortId, showError } from "./page.js";
import { RunsTable } from "./runs-table.js";

const LIMIT = 50;
const workspace = document.body.dataset.workspace;
const element = document.getElementById("runs");
const loadError = document.getElementById("load-error");
const names = new Map();

function mine(runs) {
  return runs.filter((run) => run.workspace === workspace);
}

async function load(table) {
  try {
    const workflows = await apiList(`workflows?workspace=${workspace}&page_size=200`);
    for (const workflow of workflows) names.set(workflow.id, workflow.name);
    // GET runs has no workspace filter: read the newest pages until there are LIMIT runs of this one.
    table.replace(mine(await apiList("runs?page_size=200", (runs) => mine(runs).length < LIMIT)));
    showError(loadError, null);
  } catch (error) {
    showError(loadError, error);
  }
}

if (element) {
  setUpSwitcher().catch((error) => console.error(error));
  const table = new RunsTable(element, { workflowName: (id) => names.get(id) ?? shortId(id), limit: LIMIT });
  const live = new LiveConnection(`/ws/dashboard/?workspace=${workspace}`, {
    onEvent: (event) => table.apply(event),
    onSubscribed: (reconnected) => (reconnected ? load(table) : undefined),
    shown: () => table.ids(),
  });
  live.hold(load(table));
}
