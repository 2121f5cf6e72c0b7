// The builder's side panel for one node: its prompt or content, its config and its run settings, as a
// form generated from the node type's JSON Schema (GET node-types). Every edit hands the editor a new
// node object; validation messages from the API are pinned on the fields they name.

import { h } from "../page.js";
import { editReporter, panelHandle } from "./edits.js";
import { humanize } from "./form-parts.js";
import { schemaField } from "./schema-form.js";
import { scopeNames, templateEditor } from "./template-field.js";

const RUN_SETTINGS = ["title", "key", "retry", "timeout", "trigger_rule", "priority", "tags"];
// Config properties that name a workspace credential: `credential` everywhere, and a webhook's
// `secret` (the credential whose value signs the body; docs/api.md, "What a node names").
const CREDENTIAL_FIELDS = { credential: null, secret: "webhook" };
const LONG_TEXT = 4096;

function credentialSelect(credentials) {
  return (props) => {
    const known = credentials.some((credential) => credential.name === props.value);
    const control = h("select", {
      id: props.id,
      disabled: props.readOnly,
      "aria-describedby": props.describedBy,
      "aria-label": props.label,
    });
    control.append(
      new Option("— none —", ""),
      ...credentials.map((credential) => new Option(`${credential.name} (${credential.kind})`, credential.name)),
    );
    if (props.value && !known) control.append(new Option(`${props.value} (not in this workspace)`, props.value));
    control.value = props.value;
    control.addEventListener("change", () => props.onInput(control.value, false));
    return { element: control, control };
  };
}

// The type's defaults (retry, trigger_rule) shown as placeholders where the schema itself has none.
function withDefaults(schema, defaults) {
  if (defaults === undefined || defaults === null) return schema;
  if (schema.properties && typeof defaults === "object") {
    const properties = Object.fromEntries(
      Object.entries(schema.properties).map(([name, property]) => [name, withDefaults(property, defaults[name])]),
    );
    return { ...schema, properties };
  }
  return "default" in schema || typeof defaults === "object" ? schema : { ...schema, default: defaults };
}

/**
 * container: where the panel goes (its content is replaced). See the module's callers for the options:
 * {nodeType, node, credentials, scope, readOnly, onChange} → {setErrors(errorsByPath), flush(), close()}.
 */
export function openNodePanel(container, { nodeType, node, credentials = [], scope = {}, readOnly = false, onChange }) {
  const schema = nodeType.schema;
  const names = scopeNames(scope, node.key);
  let current = structuredClone(node);
  const edits = editReporter(() => {
    if (!readOnly && onChange) onChange(structuredClone(current));
  });
  const changed = (typing) => edits.changed(typing);
  const setTop = (name) => (value, typing) => {
    const next = { ...current };
    if (value === undefined) delete next[name];
    else next[name] = value;
    current = next;
    if (name === "title" || name === "key") title.textContent = current.title || current.key || humanize(nodeType.type);
    changed(typing);
  };

  const inputFor = (path, fieldSchema) => {
    const [top, name, ...rest] = path.split(".");
    const multiline = !fieldSchema.maxLength || fieldSchema.maxLength > LONG_TEXT;
    if (top === "prompt" || top === "content") {
      return (props) => templateEditor({ ...props, names, multiline: true, mode: "template" });
    }
    if (top !== "config") return null;
    if (rest.length === 0 && name in CREDENTIAL_FIELDS && [null, nodeType.type].includes(CREDENTIAL_FIELDS[name])) {
      return credentialSelect(credentials);
    }
    if (nodeType.expression_fields.includes(name)) {
      return (props) => templateEditor({ ...props, names, multiline: false, mode: "expression" });
    }
    if (nodeType.template_fields.includes(name)) {
      return (props) => templateEditor({ ...props, names, multiline: rest.length === 0 && multiline, mode: "template" });
    }
    return null;
  };

  const field = (name, options = {}) =>
    schemaField(withDefaults(schema.properties[name], nodeType.defaults?.[name]), current[name], name, {
      label: humanize(name),
      required: (schema.required ?? []).includes(name),
      readOnly,
      inputFor,
      onChange: setTop(name),
      ...options,
    });

  const problems = h("div", { class: "node-panel-problems", role: "alert", hidden: true });
  const sections = [];
  for (const name of ["prompt", "content"]) {
    if (nodeType[`uses_${name}`] && schema.properties[name]) sections.push(field(name));
  }
  const configSchema = schema.properties.config;
  if (configSchema.properties && Object.keys(configSchema.properties).length) {
    sections.push(field("config", { label: "Settings", required: true }));
  }
  const settings = h(
    "details",
    { class: "node-panel-settings", open: true },
    h("summary", {}, "Run settings"),
    ...RUN_SETTINGS.filter((name) => schema.properties[name]).map((name) => field(name)),
  );

  const title = h("h2", { class: "node-panel-title" }, node.title || node.key || humanize(nodeType.type));
  const panel = h(
    "section",
    { class: "node-panel", "aria-label": `${humanize(nodeType.type)} node settings`, dataset: { type: nodeType.type } },
    h(
      "header",
      {},
      title,
      h("p", { class: "node-panel-type" }, h("span", { class: "node-panel-kind" }, nodeType.type), " ", nodeType.description),
      readOnly ? h("p", { class: "muted" }, "Read only: your role may not change this workflow.") : null,
    ),
    problems,
    ...sections,
    settings,
  );
  container.replaceChildren(panel);

  return panelHandle(panel, problems, edits);
}
