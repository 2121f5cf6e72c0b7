// /dashboard/: the workspace's workflows with their status and last run, kept current by the dashboard
// websocket. Editors start a run from each row.

import { LiveConnection } from "./live.js";
import { api, apiList, badge, canWrite, dashboardUrls, h, setUpSwitcher, showError, timeElement } from "./page.js";
import { canStartRuns, runButton } from "./run-dialog.js";
import { runStatusAfter } from "./runs-table.js";

const PARALLEL_REQUESTS = 4;
const RELOAD_AFTER_MS = 300;
const LIST_CHANGES = new Set(["workflow.created", "workflow.updated", "workflow.deleted", "workflow.restored"]);
const workspace = document.body.dataset.workspace;
const table = document.getElementById("workflows");
const loadError = document.getElementById("load-error");
const lastRuns = new Map(); // workflow id → {id, status, created_at}
const lastRunCells = new Map(); // workflow id → its "Last run" cell

// The newest runs (a page of up to 200) cover most workflows in one request; the others are asked
// for one by one.
async function findLastRuns(workflows) {
  const latest = new Map();
  for (const run of (await api("runs?page_size=200")).results) {
    if (!latest.has(run.workflow)) latest.set(run.workflow, run);
  }
  const missing = workflows.filter((workflow) => !latest.has(workflow.id));
  for (let start = 0; start < missing.length; start += PARALLEL_REQUESTS) {
    const batch = missing.slice(start, start + PARALLEL_REQUESTS);
    const answers = await Promise.all(batch.map((workflow) => api(`runs?workflow=${workflow.id}&page_size=1`)));
    answers.forEach((answer, index) => answer.results.length && latest.set(batch[index].id, answer.results[0]));
  }
  return latest;
}

function showLastRun(workflowId) {
  const cell = lastRunCells.get(workflowId);
  const run = lastRuns.get(workflowId);
  if (!cell) return;
  cell.replaceChildren(
    run
      ? h(
          "a",
          { href: dashboardUrls.run(run.id), class: "last-run" },
          badge(run.status),
          " ",
          timeElement(run.created_at),
        )
      : h("span", { class: "muted" }, "Never run"),
  );
}

function row(workflow, writable) {
  const lastRun = h("td", { dataset: { label: "Last run" } });
  lastRunCells.set(workflow.id, lastRun);
  return h(
    "tr",
    { dataset: { workflow: workflow.id } },
    h("td", { dataset: { label: "Workflow" } }, h("a", { href: dashboardUrls.workflow(workflow.id) }, workflow.name)),
    h("td", { dataset: { label: "Status" } }, badge(workflow.status)),
    h("td", { dataset: { label: "Nodes" } }, String(workflow.node_count)),
    lastRun,
    writable ? h("td", { class: "row-actions" }, runButton(workflow)) : null,
  );
}

async function load() {
  try {
    const [workflows, writable] = await Promise.all([
      apiList(`workflows?workspace=${workspace}&page_size=200`),
      canWrite(workspace),
    ]);
    const latest = await findLastRuns(workflows);
    lastRuns.clear();
    lastRunCells.clear();
    for (const [workflowId, run] of latest) {
      lastRuns.set(workflowId, { id: run.id, status: run.status, created_at: run.created_at });
    }
    const rows = workflows.map((workflow) => row(workflow, writable && canStartRuns));
    const empty = h("tr", { class: "empty" }, h("td", { colspan: 5 }, "No workflows in this workspace yet."));
    table.tBodies[0].replaceChildren(...(rows.length ? rows : [empty]));
    workflows.forEach((workflow) => showLastRun(workflow.id));
    showError(loadError, null);
  } catch (error) {
    showError(loadError, error);
  }
}

function apply(event) {
  if (event.type === "run.created") {
    lastRuns.set(event.workflow, { id: event.run, status: "pending", created_at: event.ts });
  } else {
    const last = lastRuns.get(event.workflow);
    const status = runStatusAfter(event);
    if (!status || last?.id !== event.run) return;
    last.status = status;
  }
  showLastRun(event.workflow);
}

// A burst of calls (workflow events of an import or a script) runs `callback` once, when they pause.
function debounced(callback, ms) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(callback, ms);
  };
}

if (table) {
  setUpSwitcher().catch((error) => console.error(error));
  // A workflow created, changed, deleted or restored by anyone: the list loads again, as after a reconnect.
  const reloadSoon = debounced(() => live.hold(load()), RELOAD_AFTER_MS);
  const live = new LiveConnection(`/ws/dashboard/?workspace=${workspace}`, {
    onEvent: apply,
    onWorkflowEvent: (event) => LIST_CHANGES.has(event.type) && reloadSoon(),
    onSubscribed: (reconnected) => (reconnected ? load() : undefined),
    shown: () => [...lastRuns.values()].map((run) => run.id),
  });
  live.hold(load());
}
