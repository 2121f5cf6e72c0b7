// A form generated from a JSON Schema (the 2020-12 subset our node and input schemas use): each field
// edits one value and reports the new one upwards, objects rebuild themselves from their fields' values,
// so callers always receive fresh objects. Fields carry `data-path` ("config.headers") so validation
// messages from the API can be pinned on them (field-errors.js).

import { h } from "../page.js";
import { jsonField, listField, mapField } from "./collection-fields.js";
import {
  fieldKind,
  fieldShell,
  groupShell,
  humanize,
  keyAlternatives,
  plainInput,
  scalarFrom,
  types,
  uniqueId,
  valueAlternatives,
} from "./form-parts.js";

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
