// Fields of a generated form that hold many values (schema-form.js): a map of names to text (headers,
// query), a list of scalars, and any JSON value in a textarea.

import { h } from "../page.js";
import { addButton, fieldShell, groupShell, plainInput, removeButton, scalarFrom, uniqueId } from "./form-parts.js";

export function mapField(schema, value, common, options) {
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

export function listField(schema, value, common, options) {
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
export function jsonField(schema, value, common, options) {
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
