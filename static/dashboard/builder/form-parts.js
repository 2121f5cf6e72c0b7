// The parts every field of a generated form is built from (schema-form.js): ids, labels, the kind of
// field a schema asks for, plain inputs and the shells that carry `data-path` for error pinning.

import { h } from "../page.js";

let lastId = 0;
export function uniqueId(prefix) {
  lastId += 1;
  return `${prefix}-${lastId}`;
}

const ACRONYMS = { url: "URL", json: "JSON", html: "HTML", id: "ID", cc: "Cc", bcc: "Bcc" };

export function humanize(name) {
  const words = String(name)
    .replace(/[_-]+/g, " ")
    .trim()
    .split(" ")
    .map((word) => ACRONYMS[word] ?? word)
    .join(" ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// Descriptions quote names in backticks: those become <code>.
function richText(text) {
  return String(text)
    .split("`")
    .map((part, index) => (index % 2 ? h("code", {}, part) : part));
}

export function types(schema) {
  return [].concat(schema.type ?? []);
}

// The alternatives of a oneOf/anyOf that are values of their own (document's `context`), not only
// "one of these keys is required" constraints on an object (delay's seconds|until).
export function valueAlternatives(schema) {
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (!alternatives) return null;
  const typed = alternatives.some((alternative) => "type" in alternative || "enum" in alternative || "const" in alternative);
  return typed ? alternatives : null;
}

export function keyAlternatives(schema) {
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (!alternatives || valueAlternatives(schema)) return null;
  return alternatives.every((alternative) => Array.isArray(alternative.required)) ? alternatives : null;
}

const SCALARS = new Set(["string", "number", "integer", "boolean"]);

export function fieldKind(schema) {
  if ("const" in schema) return "const";
  if (valueAlternatives(schema)) return "choice";
  if (Array.isArray(schema.enum)) return "enum";
  const named = types(schema).filter((type) => type !== "null");
  if (named.length === 0) return "json";
  if (named.length > 1) return named.every((type) => SCALARS.has(type)) ? "string" : "json";
  const [type] = named;
  if (type === "object") {
    if (schema.properties) return "object";
    const values = schema.additionalProperties;
    if (values && typeof values === "object" && types(values).includes("string")) return "map";
    return "json";
  }
  if (type === "array") {
    const items = schema.items ?? {};
    const itemTypes = types(items);
    const simple = itemTypes.length === 1 && SCALARS.has(itemTypes[0]) && itemTypes[0] !== "boolean";
    return simple && !items.enum ? "list" : "json";
  }
  if (type === "number" || type === "integer") return "number";
  if (type === "boolean") return "boolean";
  return "string";
}

const INPUT_TYPES = { email: "email", uri: "url", date: "date", time: "time", "date-time": "datetime-local" };

// A plain <input> for a string or number; `inputFor` may replace it (template editors, credentials).
export function plainInput(schema, props) {
  const kind = fieldKind(schema);
  const attributes = {
    id: props.id,
    value: props.value ?? "",
    placeholder: props.placeholder,
    disabled: props.readOnly,
    "aria-label": props.label,
    "aria-describedby": props.describedBy,
  };
  if (kind === "number") {
    Object.assign(attributes, {
      type: "number",
      min: schema.minimum,
      max: schema.maximum,
      step: types(schema).includes("integer") ? "1" : "any",
    });
  } else {
    Object.assign(attributes, {
      type: INPUT_TYPES[schema.format] ?? "text",
      maxlength: schema.maxLength,
      minlength: schema.minLength,
      pattern: schema.pattern?.replace(/^\^/, "").replace(/\$$/, ""),
    });
  }
  const control = h("input", attributes);
  control.addEventListener("input", () => props.onInput(control.value));
  return { element: control, control };
}

export function scalarFrom(schema, text, required) {
  const nullable = types(schema).includes("null");
  if (text === "") return nullable ? null : required ? "" : undefined;
  if (fieldKind(schema) === "number") {
    const number = Number(text);
    return Number.isFinite(number) ? number : undefined;
  }
  return text;
}

export function fieldShell({ path, label, schema, required, id, inline = false }) {
  const wrapper = h("div", { class: inline ? "sf-field sf-inline" : "sf-field", dataset: { path } });
  const labelElement = h(
    "label",
    { for: id },
    label,
    required ? h("span", { class: "sf-required", "aria-hidden": "true" }, " *") : null,
  );
  const helpId = schema.description ? `${id}-help` : undefined;
  const help = schema.description ? h("p", { class: "sf-help", id: helpId }, ...richText(schema.description)) : null;
  return { wrapper, labelElement, help, helpId };
}

export function groupShell({ path, label, schema, required, id }) {
  const helpId = schema.description ? `${id}-help` : undefined;
  const fieldset = h(
    "fieldset",
    { class: "sf-group", id, dataset: { path, controlFor: path }, "aria-describedby": helpId },
    h("legend", {}, label, required ? h("span", { class: "sf-required", "aria-hidden": "true" }, " *") : null),
  );
  if (schema.description) fieldset.append(h("p", { class: "sf-help", id: helpId }, ...richText(schema.description)));
  return fieldset;
}

export function removeButton(label, readOnly, onClick) {
  const button = h("button", { type: "button", class: "sf-remove", "aria-label": label, disabled: readOnly }, "×");
  button.addEventListener("click", onClick);
  return button;
}

export function addButton(label, readOnly, onClick) {
  const button = h("button", { type: "button", class: "sf-add", "aria-label": label, disabled: readOnly }, "+ Add");
  button.addEventListener("click", onClick);
  return button;
}
