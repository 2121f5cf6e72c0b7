// A live table of runs (a workspace's on /dashboard/runs/, a workflow's on its page): filled over REST,
// then kept current by run events. Each cell carries its column name, which narrow screens show.

import { badge, dashboardUrls, duration, h, setBadge, shortId, timeElement } from "./page.js";

// What a run's status is after each run event (a retried or regenerating run starts over as pending).
const RUN_STATUS_AFTER = {
  "run.started": "running",
  "run.waiting": "waiting",
  "run.paused": "paused",
  "run.succeeded": "succeeded",
  "run.failed": "failed",
  "run.cancelled": "cancelled",
  "run.retried": "pending",
  "run.regenerating": "pending",
};

// What a step's status is after each step event (the run page's and the builder's canvases).
export const STEP_STATUS_AFTER = {
  "step.queued": "queued",
  "step.started": "running",
  "step.retrying": "retrying",
  "step.waiting": "waiting",
  "step.succeeded": "succeeded",
  "step.failed": "failed",
  "step.skipped": "skipped",
  "step.cancelled": "cancelled",
};

/** The run's status after `event`, or undefined for an event that does not change it. A resumed run
 * is running again, or waits for a concurrency slot (queued): its event says which. */
export function runStatusAfter(event) {
  return event.type === "run.resumed" ? event.data.status : RUN_STATUS_AFTER[event.type];
}

export class RunsTable {
  /** workflowName(id): the name for the Workflow column; without it the table has none. */
  constructor(table, { workflowName, limit = 50 } = {}) {
    this.body = table.tBodies[0];
    this.workflowName = workflowName;
    this.limit = limit;
    this.rows = new Map();
    this.labels = [...table.tHead.rows[0].cells].map((cell) => cell.textContent.trim());
  }

  ids() {
    return this.rows.keys();
  }

  replace(runs) {
    this.rows.clear();
    this.body.replaceChildren();
    for (const run of runs.slice(0, this.limit)) this.add(run, "end");
    this.showEmpty();
  }

  apply(event) {
    if (event.type === "run.created") {
      if (this.rows.has(event.run)) return;
      const run = { id: event.run, workflow: event.workflow, status: "pending", trigger: event.data.trigger };
      this.add({ ...run, created_at: event.ts, duration_seconds: null }, "start");
      this.showEmpty();
      return;
    }
    const status = runStatusAfter(event);
    const row = this.rows.get(event.run);
    if (!status || !row) return;
    setBadge(row.status, status);
    row.duration.textContent = duration(status === "pending" ? null : event.data.duration_seconds ?? null);
  }

  add(run, where) {
    const cells = [
      h("a", { href: dashboardUrls.run(run.id) }, h("code", {}, shortId(run.id))),
      this.workflowName && h("a", { href: dashboardUrls.workflow(run.workflow) }, this.workflowName(run.workflow)),
      badge(run.status),
      run.trigger,
      timeElement(run.created_at),
      duration(run.duration_seconds),
    ].filter((cell) => cell !== undefined && cell !== null && cell !== false);
    const row = h(
      "tr",
      { dataset: { run: run.id } },
      ...cells.map((cell, index) => h("td", { dataset: { label: this.labels[index] } }, cell)),
    );
    this.rows.set(run.id, { row, status: row.querySelector(".badge"), duration: row.lastElementChild });
    if (where === "start") this.body.prepend(row);
    else this.body.append(row);
    while (this.rows.size > this.limit) {
      const oldest = this.body.lastElementChild;
      this.rows.delete(oldest.dataset.run);
      oldest.remove();
    }
  }

  showEmpty() {
    this.body.querySelector("tr.empty")?.remove();
    if (this.rows.size) return;
    this.body.append(h("tr", { class: "empty" }, h("td", { colspan: this.labels.length }, "No runs yet.")));
  }
}
