// The builder's run panel: a form generated from the workflow's input schema, started with
// POST workflows/{id}/runs; a 400's messages ("input.name: …") are shown on the fields they name.

import { ApiError, dashboardUrls, h, showError } from "../page.js";
import { inputSkeleton, startRun } from "../run-start.js";
import { showFieldErrors } from "./field-errors.js";
import { schemaField } from "./schema-form.js";

function initialInput(schema) {
  if (!schema?.properties) return inputSkeleton(schema);
  return Object.fromEntries(
    Object.entries(schema.properties)
      .filter(([, property]) => "default" in property)
      .map(([name, property]) => [name, structuredClone(property.default)]),
  );
}

/** workflow: {id, name, input_schema} (GET workflows/{id}); onStarted(run) with the 202's body. → {close()} */
export function openRunPanel(container, { workflow, onStarted }) {
  const schema = workflow.input_schema ?? {};
  let input = initialInput(schema);
  const hasForm = Boolean(schema.properties && Object.keys(schema.properties).length);
  const fields = hasForm
    ? schemaField(schema, input, "input", {
        label: "Input",
        required: true,
        onChange: (value) => {
          input = value ?? {};
        },
      })
    : schemaField({ description: "The run's input." }, input, "input", {
        label: "Input (a JSON object)",
        required: true,
        onChange: (value) => {
          input = value ?? {};
        },
      });

  const problems = h("div", { class: "run-panel-problems field-errors", role: "alert", hidden: true });
  const status = h("p", { class: "run-panel-status", role: "status" });
  const button = h("button", { type: "submit", class: "primary" }, "Start run");
  const form = h(
    "form",
    { class: "run-panel", "aria-label": `Run ${workflow.name}`, novalidate: true },
    h("h2", {}, "Run ", h("span", { class: "run-panel-name" }, workflow.name)),
    problems,
    fields,
    h("div", { class: "buttons" }, button),
    status,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const unparsed = form.querySelector("[data-invalid-json]");
    if (unparsed) {
      showFieldErrors(form, problems, { [unparsed.dataset.controlFor]: ["This is not valid JSON yet."] });
      unparsed.focus();
      return;
    }
    button.disabled = true;
    status.textContent = "Starting…";
    try {
      const run = await startRun(workflow.id, input);
      showFieldErrors(form, problems, {});
      status.replaceChildren("Run started: ", h("a", { href: dashboardUrls.run(run.id) }, "open it"), ".");
      onStarted?.(run);
    } catch (error) {
      status.textContent = "";
      if (error instanceof ApiError && error.problem.errors && typeof error.problem.errors === "object") {
        showFieldErrors(form, problems, error.problem.errors);
        if (problems.hidden) problems.hidden = false;
        if (!problems.childElementCount) problems.textContent = error.message;
        const invalid = form.querySelector("[aria-invalid=true]");
        invalid?.focus();
      } else {
        showFieldErrors(form, problems, {});
        showError(problems, error);
      }
    } finally {
      button.disabled = false;
    }
  });

  container.replaceChildren(form);
  return {
    close() {
      form.remove();
    },
  };
}
