// The Run button's dialog (only in pages of editors and above): the input as JSON, started with
// POST workflows/{id}/runs; the API's validation problems are listed in the dialog, a started run opens.

import { dashboardUrls, showError } from "./page.js";
import { inputSkeleton, startRun } from "./run-start.js";

const dialog = document.getElementById("run-dialog");
let workflow = null;

async function start(event) {
  event.preventDefault();
  const errors = dialog.querySelector("#run-errors");
  const textarea = dialog.querySelector("#run-input");
  let input;
  try {
    input = JSON.parse(textarea.value || "{}");
  } catch (error) {
    showError(errors, new Error(`The input is not valid JSON: ${error.message}`));
    textarea.setAttribute("aria-invalid", "true");
    textarea.focus();
    return;
  }
  const button = event.submitter ?? dialog.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const run = await startRun(workflow.id, input);
    location.assign(dashboardUrls.run(run.id));
  } catch (error) {
    showError(errors, error);
    textarea.setAttribute("aria-invalid", "true");
    textarea.focus();
  } finally {
    button.disabled = false;
  }
}

if (dialog) {
  dialog.querySelector("form").addEventListener("submit", start);
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
}

export const canStartRuns = Boolean(dialog);

/** workflow: {id, name, input_schema}. */
export function openRunDialog(chosen) {
  workflow = chosen;
  dialog.querySelector("[data-field=workflow-name]").textContent = workflow.name;
  const textarea = dialog.querySelector("#run-input");
  textarea.value = JSON.stringify(inputSkeleton(workflow.input_schema), null, 2);
  textarea.removeAttribute("aria-invalid");
  showError(dialog.querySelector("#run-errors"), null);
  dialog.showModal();
  textarea.focus();
}

export function runButton(chosen) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "primary";
  button.textContent = "Run";
  button.setAttribute("aria-label", `Run ${chosen.name}`);
  button.addEventListener("click", () => openRunDialog(chosen));
  return button;
}
