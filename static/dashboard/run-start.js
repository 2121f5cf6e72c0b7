// Starting a run, shared by the Run dialog of the lists and the builder's run panel.

import { api } from "./page.js";

// An input to start from: each property of the input schema with its default or an empty value.
export function inputSkeleton(schema) {
  const empty = { string: "", number: 0, integer: 0, boolean: false, array: [], object: {} };
  const properties = schema?.properties ?? {};
  return Object.fromEntries(
    Object.entries(properties).map(([name, property]) => [name, property.default ?? empty[property.type] ?? null]),
  );
}

/** POST workflows/{id}/runs: the 202's run, or an ApiError (400: `errors` keyed "input.<name>"). */
export function startRun(workflowId, input) {
  return api(`workflows/${workflowId}/runs`, { method: "POST", body: { input } });
}
