// The builder's side panel when no node is selected: the workflow's own fields — its description, the
// JSON Schema its runs' input must match (what the Run form asks for and templates complete as
// `input.*`) and its run settings — as a form from the same generator as the nodes'. Every edit hands
// the editor the changed fields; the API's messages for them are pinned on their fields.

import { h } from "../page.js";
import { editReporter, panelHandle } from "./edits.js";
import { schemaField } from "./schema-form.js";

// What the API takes for these fields (workflows.specs.WORKFLOW_SCHEMA); the server checks them again.
const FIELDS = {
  description: { type: "string", maxLength: 10000, description: "What the workflow is for." },
  input_schema: {
    type: "object",
    description: "JSON Schema a run's input must match; its properties are the Run form's fields and `input.*`.",
  },
  settings: {
    type: "object",
    properties: {
      timeout: { type: ["integer", "null"], minimum: 1, maximum: 604800, description: "Seconds a run may take." },
      max_concurrency: {
        type: ["integer", "null"],
        minimum: 1,
        maximum: 10000,
        description: "Runs at once; more wait queued.",
      },
      on_failure: {
        enum: ["fail_fast", "continue"],
        default: "fail_fast",
        description: "fail_fast stops the run at a failed step; continue runs the branches that do not need it.",
      },
      max_nodes: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
    },
  },
};
const LABELS = { description: "Description", input_schema: "Input schema", settings: "Run settings" };

/** openWorkflowPanel(container, {workflow, readOnly, onChange(fields)}) → {setErrors, flush, close} */
export function openWorkflowPanel(container, { workflow, readOnly = false, onChange }) {
  let current = {
    description: workflow.description ?? "",
    input_schema: workflow.input_schema ?? {},
    settings: workflow.settings ?? {},
  };
  const edits = editReporter(() => {
    if (!readOnly && onChange) onChange(structuredClone(current));
  });
  const field = (name) =>
    schemaField(FIELDS[name], current[name], name, {
      label: LABELS[name],
      readOnly,
      onChange: (value, typing) => {
        current = { ...current, [name]: value ?? (name === "description" ? "" : {}) };
        edits.changed(typing);
      },
    });
  const problems = h("div", { class: "node-panel-problems", role: "alert", hidden: true });
  const panel = h(
    "section",
    { class: "node-panel workflow-panel", "aria-label": "Workflow settings" },
    h("header", {}, h("h2", { class: "node-panel-title" }, "Workflow"), h("p", { class: "muted" }, "Select a node to configure it.")),
    problems,
    ...Object.keys(FIELDS).map(field),
  );
  container.replaceChildren(panel);
  return panelHandle(panel, problems, edits);
}
