// A form generated from a JSON Schema (the 2020-12 subset our node and input schemas use): each field
// edits one value and reports the new one upwards, objects rebuild themselves from their fields' values,
// so callers always receive fresh objects. Fields carry `data-path` ("config.headers") so validation
// messages from the API can be pinned on them (field-errors.js).

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

function types(schema) {
  return [].concat(schema.type ?? []);
}

// The alternatives of a oneOf/anyOf that are values of their own (document's `context`), not only
// "one of these keys is required" constraints on an object (delay's seconds|until).
function valueAlternatives(schema) {
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (!alternatives) return null;
  const typed = alternatives.some((alternative) => "type" in alternative || "enum" in alternative || "const" in alternative);
  return typed ? alternatives : null;
}

function keyAlternatives(schema) {
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

function matches(schema, value) {
  if ("const" in schema) return value === schema.const;
  if (Array.isArray(schema.enum)) return schema.enum.includes(value);
  const named = types(schema);
  if (named.length === 0) return true;
  return named.some((type) => {
    if (type === "null") return value === null;
    if (type === "array") return Array.isArray(value);
    if (type === "object") return value !== null && typeof value === "object" && !Array.isArray(value);
    if (type === "integer") return Number.isInteger(value);
    return typeof value === type;
  });
}

function describeAlternative(alternative) {
  if (alternative.title) return alternative.title;
  if (Array.isArray(alternative.enum)) return alternative.enum.join(" or ");
  if (Array.isArray(alternative.required)) return alternative.required.map(humanize).join(" and ");
  const type = types(alternative)[0];
  return { array: "A list", object: "An object", string: "Text", number: "A number", integer: "A number" }[type] ?? humanize(type ?? "value");
}

function firstValueOf(alternative) {
  if ("default" in alternative) return alternative.default;
  if ("const" in alternative) return alternative.const;
  if (Array.isArray(alternative.enum)) return alternative.enum[0];
  return { array: [], object: {}, boolean: false }[types(alternative)[0]];
}

const INPUT_TYPES = { email: "email", uri: "url", date: "date", time: "time", "date-time": "datetime-local" };

// A plain <input> for a string or number; `inputFor` may replace it (template editors, credentials).
function plainInput(schema, props) {
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

function scalarFrom(schema, text, required) {
  const nullable = types(schema).includes("null");
  if (text === "") return nullable ? null : required ? "" : undefined;
  if (fieldKind(schema) === "number") {
    const number = Number(text);
    return Number.isFinite(number) ? number : undefined;
  }
  return text;
}

function fieldShell({ path, label, schema, required, id, inline = false }) {
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

function groupShell({ path, label, schema, required, id }) {
  const helpId = schema.description ? `${id}-help` : undefined;
  const fieldset = h(
    "fieldset",
    { class: "sf-group", id, dataset: { path, controlFor: path }, "aria-describedby": helpId },
    h("legend", {}, label, required ? h("span", { class: "sf-required", "aria-hidden": "true" }, " *") : null),
  );
  if (schema.description) fieldset.append(h("p", { class: "sf-help", id: helpId }, ...richText(schema.description)));
  return fieldset;
}

function removeButton(label, readOnly, onClick) {
  const button = h("button", { type: "button", class: "sf-remove", "aria-label": label, disabled: readOnly }, "×");
  button.addEventListener("click", onClick);
  return button;
}

function addButton(label, readOnly, onClick) {
  const button = h("button", { type: "button", class: "sf-add", "aria-label": label, disabled: readOnly }, "+ Add");
  button.addEventListener("click", onClick);
  return button;
}

/**
 * One field for `schema` holding `value`, at `path` ("config.url").
 * options: {label, required, readOnly, onChange(value, typing), inputFor(path, schema) → factory|null}
 * onChange gets the field's new value (undefined: leave the key out); `typing` is true for keystrokes.
 * A factory from inputFor is called with {id, value, placeholder, label, readOnly, describedBy,
 * onInput(text, typing = true)} and answers {element, control}.
 */
export function schemaField(schema, value, path, options) {
  const kind = fieldKind(schema);
  const id = uniqueId(`sf-${path.replace(/[^\w-]+/g, "-")}`);
  const label = options.label ?? humanize(path.split(".").pop());
  const common = { path, label, schema, required: Boolean(options.required), id };
  const render = {
    object: objectField,
    map: mapField,
    list: listField,
    choice: choiceField,
    json: jsonField,
  }[kind];
  if (render) return render(schema, value, common, options);
  return scalarField(schema, value, common, options, kind);
}

function scalarField(schema, value, common, options, kind) {
  const { path, id, required } = common;
  const { wrapper, labelElement, help, helpId } = fieldShell({ ...common, inline: kind === "boolean" });
  let control;
  if (kind === "boolean") {
    control = h("input", {
      type: "checkbox",
      id,
      checked: value ?? schema.default ?? false,
      disabled: options.readOnly,
      "aria-describedby": helpId,
    });
    control.addEventListener("change", () => options.onChange(control.checked, false));
    wrapper.append(control, labelElement);
  } else if (kind === "enum" || kind === "const") {
    const choices = kind === "const" ? [schema.const] : schema.enum;
    const blank = required || kind === "const" ? [] : [new Option("default" in schema ? `Default (${schema.default})` : "—", "")];
    control = h("select", { id, disabled: options.readOnly || kind === "const", "aria-describedby": helpId });
    control.append(...blank, ...choices.map((choice, index) => new Option(String(choice), String(index))));
    const index = choices.indexOf(value);
    control.value = index >= 0 ? String(index) : blank.length ? "" : "0";
    control.addEventListener("change", () =>
      options.onChange(control.value === "" ? undefined : choices[Number(control.value)], false),
    );
    wrapper.append(labelElement, control);
  } else {
    const factory = options.inputFor?.(path, schema) ?? ((props) => plainInput(schema, props));
    const built = factory({
      id,
      value: value === null || value === undefined ? "" : String(value),
      placeholder: "default" in schema ? String(schema.default) : undefined,
      readOnly: options.readOnly,
      describedBy: helpId,
      onInput: (text, typing = true) => options.onChange(scalarFrom(schema, text, required), typing),
    });
    control = built.control;
    wrapper.append(labelElement, built.element);
  }
  control.dataset.controlFor = path;
  if (required) control.setAttribute("aria-required", "true");
  if (help) wrapper.append(help);
  return wrapper;
}

function objectField(schema, value, common, options) {
  const { path, required } = common;
  const fieldset = groupShell(common);
  let current = value && typeof value === "object" ? { ...value } : {};
  const requiredKeys = new Set(schema.required ?? []);
  const alternatives = keyAlternatives(schema);
  const alternativeKeys = new Set((alternatives ?? []).flatMap((alternative) => alternative.required));
  const fields = new Map();

  const emit = (typing) => {
    const empty = Object.keys(current).length === 0;
    options.onChange(empty && !required ? undefined : { ...current }, typing);
  };

  let chosen = 0;
  if (alternatives) {
    const found = alternatives.findIndex((alternative) => alternative.required.every((key) => key in current));
    chosen = Math.max(found, 0);
    const selectId = uniqueId("sf-alternative");
    const select = h("select", { id: selectId, disabled: options.readOnly, dataset: { alternativeFor: path } });
    select.append(...alternatives.map((alternative, index) => new Option(describeAlternative(alternative), String(index))));
    select.value = String(chosen);
    select.addEventListener("change", () => {
      chosen = Number(select.value);
      const keep = new Set(alternatives[chosen].required);
      for (const key of alternativeKeys) if (!keep.has(key)) delete current[key];
      for (const [key, field] of fields) {
        if (!alternativeKeys.has(key)) continue;
        const replacement = property(key, current[key]);
        field.replaceWith(replacement);
        fields.set(key, replacement);
      }
      emit(false);
    });
    fieldset.append(h("div", { class: "sf-field sf-alternatives" }, h("label", { for: selectId }, "Use"), select));
  }

  function property(key, propertyValue) {
    const shown = !alternativeKeys.has(key) || alternatives[chosen].required.includes(key);
    const field = schemaField(schema.properties[key], propertyValue, `${path}.${key}`, {
      ...options,
      label: schema.properties[key].title ?? humanize(key),
      required: requiredKeys.has(key) || (alternativeKeys.has(key) && shown),
      onChange: (next, typing) => {
        if (next === undefined) delete current[key];
        else current[key] = next;
        current = { ...current };
        emit(typing);
      },
    });
    field.hidden = !shown;
    return field;
  }

  for (const key of Object.keys(schema.properties)) {
    if (options.skip?.includes(`${path}.${key}`)) continue;
    const field = property(key, current[key]);
    fields.set(key, field);
    fieldset.append(field);
  }
  return fieldset;
}

function choiceField(schema, value, common, options) {
  const { path, label, id } = common;
  const fieldset = groupShell(common);
  const alternatives = valueAlternatives(schema);
  const initial = value === undefined ? schema.default : value;
  let chosen = Math.max(
    alternatives.findIndex((alternative) => initial !== undefined && matches(alternative, initial)),
    0,
  );
  const select = h("select", { id: `${id}-kind`, disabled: options.readOnly });
  select.append(...alternatives.map((alternative, index) => new Option(describeAlternative(alternative), String(index))));
  select.value = String(chosen);
  const inner = (alternativeValue) =>
    schemaField({ ...alternatives[chosen], description: undefined }, alternativeValue, path, {
      ...options,
      label: `${label}: ${describeAlternative(alternatives[chosen])}`,
      required: true,
    });
  let field = inner(value);
  select.addEventListener("change", () => {
    chosen = Number(select.value);
    const fresh = firstValueOf(alternatives[chosen]);
    const replacement = inner(fresh);
    field.replaceWith(replacement);
    field = replacement;
    options.onChange(fresh, false);
  });
  fieldset.append(h("div", { class: "sf-field" }, h("label", { for: `${id}-kind` }, "Kind"), select), field);
  return fieldset;
}

function mapField(schema, value, common, options) {
  const { path, label, required } = common;
  const fieldset = groupShell(common);
  const valueSchema = { ...schema.additionalProperties, type: "string" };
  const keyPattern = schema.propertyNames?.pattern?.replace(/^\^/, "").replace(/\$$/, "");
  let rows = Object.entries(value && typeof value === "object" ? value : {}).map(([key, entry]) => ({
    key,
    value: String(entry),
  }));
  const list = h("div", { class: "sf-rows" });

  const emit = (typing) => {
    const entries = rows.filter((row) => row.key !== "").map((row) => [row.key, row.value]);
    options.onChange(entries.length === 0 && !required ? undefined : Object.fromEntries(entries), typing);
  };

  const draw = () => {
    list.replaceChildren(
      ...rows.map((row, index) => {
        const keyInput = h("input", {
          type: "text",
          value: row.key,
          class: "sf-map-key",
          pattern: keyPattern,
          "aria-label": `${label}: name ${index + 1}`,
          disabled: options.readOnly,
        });
        keyInput.addEventListener("input", () => {
          row.key = keyInput.value;
          remove.setAttribute("aria-label", removeLabel());
          emit(true);
        });
        const factory = options.inputFor?.(`${path}.*`, valueSchema) ?? ((props) => plainInput(valueSchema, props));
        const built = factory({
          id: uniqueId("sf-map-value"),
          value: row.value,
          label: `${label}: value ${index + 1}`,
          readOnly: options.readOnly,
          onInput: (text, typing = true) => {
            row.value = text;
            emit(typing);
          },
        });
        const removeLabel = () => `Remove ${label.toLowerCase()} ${row.key || index + 1}`;
        const remove = removeButton(removeLabel(), options.readOnly, () => {
          rows = rows.filter((other) => other !== row);
          draw();
          emit(false);
        });
        return h("div", { class: "sf-row" }, keyInput, built.element, remove);
      }),
    );
  };
  draw();
  const add = addButton(`Add to ${label}`, options.readOnly, () => {
    rows = [...rows, { key: "", value: "" }];
    draw();
    list.lastElementChild.querySelector("input").focus();
  });
  fieldset.append(list, add);
  return fieldset;
}

function listField(schema, value, common, options) {
  const { path, label, required } = common;
  const fieldset = groupShell(common);
  const itemSchema = schema.items;
  let items = (Array.isArray(value) ? value : []).map((item) => ({ text: String(item) }));
  const list = h("div", { class: "sf-rows" });

  const emit = (typing) => {
    const values = items.map((item) => scalarFrom(itemSchema, item.text, true)).filter((item) => item !== undefined);
    options.onChange(values.length === 0 && !required ? undefined : values, typing);
  };

  const draw = () => {
    list.replaceChildren(
      ...items.map((item, index) => {
        const factory =
          options.inputFor?.(`${path}.${index}`, itemSchema) ?? ((props) => plainInput(itemSchema, props));
        const built = factory({
          id: uniqueId("sf-item"),
          value: item.text,
          label: `${label}: item ${index + 1}`,
          readOnly: options.readOnly,
          onInput: (text, typing = true) => {
            item.text = text;
            emit(typing);
          },
        });
        const remove = removeButton(`Remove ${label.toLowerCase()} item ${index + 1}`, options.readOnly, () => {
          items = items.filter((other) => other !== item);
          draw();
          emit(false);
        });
        return h("div", { class: "sf-row" }, built.element, remove);
      }),
    );
  };
  draw();
  const add = addButton(`Add to ${label}`, options.readOnly, () => {
    items = [...items, { text: "" }];
    draw();
    list.lastElementChild.querySelector("input, textarea").focus();
  });
  fieldset.append(list, add);
  return fieldset;
}

// Any JSON value: a textarea that only reports parseable text; until then the field says why not.
function jsonField(schema, value, common, options) {
  const { path, id, required } = common;
  const { wrapper, labelElement, help, helpId } = fieldShell(common);
  const problemId = `${id}-json`;
  const problem = h("p", { class: "sf-json-problem", id: problemId, hidden: true });
  const control = h("textarea", {
    id,
    rows: 4,
    spellcheck: "false",
    disabled: options.readOnly,
    "aria-describedby": [helpId, problemId].filter(Boolean).join(" "),
    dataset: { controlFor: path },
  });
  control.value = value === undefined ? "" : JSON.stringify(value, null, 2);
  control.addEventListener("input", () => {
    if (control.value.trim() === "") {
      delete control.dataset.invalidJson;
      problem.hidden = true;
      options.onChange(required ? {} : undefined, true);
      return;
    }
    try {
      const parsed = JSON.parse(control.value);
      delete control.dataset.invalidJson;
      problem.hidden = true;
      options.onChange(parsed, true);
    } catch (error) {
      control.dataset.invalidJson = "true";
      problem.textContent = `Not valid JSON yet: ${error.message}`;
      problem.hidden = false;
    }
  });
  labelElement.append(h("span", { class: "sf-hint" }, " (JSON)"));
  wrapper.append(labelElement, control, problem);
  if (help) wrapper.append(help);
  return wrapper;
}
