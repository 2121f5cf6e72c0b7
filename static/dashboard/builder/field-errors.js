// Validation messages of the API ({"config.url": ["..."]}) shown on the schema-form fields they name.

import { h } from "../page.js";
import { uniqueId } from "./form-parts.js";

const pinned = new WeakMap();

/**
 * Shows `errorsByPath` ({"config.url": ["..."]}) on the fields under `root` with that data-path (or
 * the nearest enclosing field), and the rest in `problems`; earlier messages are cleared first.
 */
export function showFieldErrors(root, problems, errorsByPath) {
  for (const element of root.querySelectorAll(".sf-error")) element.remove();
  for (const control of pinned.get(root) ?? []) {
    control.removeAttribute("aria-invalid");
    const describedBy = (control.getAttribute("aria-describedby") ?? "")
      .split(" ")
      .filter((token) => token && !token.endsWith("-error"));
    if (describedBy.length) control.setAttribute("aria-describedby", describedBy.join(" "));
    else control.removeAttribute("aria-describedby");
  }
  const controls = [];
  const unplaced = [];
  for (const [path, messages] of Object.entries(errorsByPath ?? {})) {
    const texts = [].concat(messages).map(String);
    const field = nearestField(root, path);
    if (!field) {
      unplaced.push(...texts.map((text) => (path && path !== "non_field_errors" ? `${path}: ${text}` : text)));
      continue;
    }
    const errorId = uniqueId("sf-error").replace(/$/, "-error");
    const control = field.matches("[data-control-for]") ? field : field.querySelector("[data-control-for]");
    const message = h("p", { class: "sf-error", id: errorId, role: "alert" }, texts.join(" "));
    if (field.tagName === "FIELDSET") field.querySelector("legend").after(message);
    else field.append(message);
    if (control) {
      control.setAttribute("aria-invalid", "true");
      const describedBy = control.getAttribute("aria-describedby");
      control.setAttribute("aria-describedby", describedBy ? `${describedBy} ${errorId}` : errorId);
      controls.push(control);
    }
  }
  pinned.set(root, controls);
  problems.replaceChildren(...(unplaced.length ? [h("ul", {}, ...unplaced.map((text) => h("li", {}, text)))] : []));
  problems.hidden = unplaced.length === 0;
}

function nearestField(root, path) {
  const parts = path.split(".");
  while (parts.length) {
    const field = root.querySelector(`[data-path="${CSS.escape(parts.join("."))}"]`);
    if (field && !field.closest("[hidden]")) return field;
    parts.pop();
  }
  return null;
}
