// The template editor: a monospace textarea over a highlighted copy of its text (`{{ … }}` and
// `{% … %}` coloured; the textarea's own text is transparent, so the caret and selection stay native),
// and completion of the names a template may use. No contenteditable: the textarea stays the one
// control that holds the value, for forms, screen readers and undo.

import { h } from "../page.js";

const TAG = /(\{\{[\s\S]*?(?:\}\}|$)|\{%[\s\S]*?(?:%\}|$)|\{#[\s\S]*?(?:#\}|$))/;
const NAME_BEFORE_CARET = /[A-Za-z_][\w.]*$|$/;
const MAX_OPTIONS = 12;

/** Every name a template may use, given scope {nodes: [{key, type, branches}], input: [names]}. */
export function scopeNames(scope, selfKey) {
  const names = [];
  for (const name of scope?.input ?? []) names.push(`input.${name}`);
  for (const node of scope?.nodes ?? []) {
    if (node.key === selfKey) continue;
    names.push(`nodes.${node.key}.output`);
    if (node.type === "condition") names.push(`nodes.${node.key}.output.result`);
    names.push(`nodes.${node.key}.content`, `nodes.${node.key}.title`);
  }
  names.push("item", "index", "run.id");
  return names;
}

function highlight(text) {
  const parts = text.split(TAG).map((part, index) => {
    if (index % 2 === 0) return part;
    return h("span", { class: part.startsWith("{%") ? "tpl-statement" : part.startsWith("{#") ? "tpl-comment" : "tpl-expression" }, part);
  });
  // A trailing newline needs something after it to take up a line, as the textarea's does.
  return [...parts, "\u200b"];
}

// Whether the caret sits inside an unclosed {{ or {% (so a name may be typed there).
function insideTag(before) {
  const open = Math.max(before.lastIndexOf("{{"), before.lastIndexOf("{%"));
  if (open < 0) return false;
  const close = Math.max(before.lastIndexOf("}}"), before.lastIndexOf("%}"));
  return close < open;
}

/**
 * props: {id, value, label, placeholder, describedBy, readOnly, multiline, mode: "template"|"expression",
 * names (from scopeNames), onInput(text)} → {element, control}.
 * In an expression every word is a name; in a template only what is inside {{ }} or {% %}.
 */
export function templateEditor(props) {
  const { mode = "template", multiline = false, names = [] } = props;
  const listId = `${props.id}-names`;
  const backdrop = h("pre", { class: "tpl-backdrop", "aria-hidden": "true" });
  const control = h("textarea", {
    id: props.id,
    class: "tpl-input",
    rows: multiline ? 5 : 1,
    wrap: multiline ? "soft" : "off",
    spellcheck: "false",
    autocomplete: "off",
    placeholder: props.placeholder,
    disabled: props.readOnly,
    "aria-label": props.label,
    "aria-describedby": props.describedBy,
    "aria-autocomplete": "list",
    "aria-haspopup": "listbox",
    "aria-expanded": "false",
    "aria-controls": listId,
    dataset: { mode },
  });
  control.value = props.value ?? "";
  const listbox = h("ul", { class: "tpl-names", role: "listbox", id: listId, hidden: true, "aria-label": "Names" });
  const element = h(
    "div",
    { class: multiline ? "tpl-editor tpl-multiline" : "tpl-editor tpl-single" },
    backdrop,
    control,
    listbox,
  );

  let options = [];
  let active = 0;
  let token = { start: 0, end: 0 };

  const paint = () => {
    backdrop.replaceChildren(...highlight(control.value));
    backdrop.scrollTop = control.scrollTop;
    backdrop.scrollLeft = control.scrollLeft;
  };

  const close = () => {
    options = [];
    listbox.hidden = true;
    listbox.replaceChildren();
    control.setAttribute("aria-expanded", "false");
    control.removeAttribute("aria-activedescendant");
  };

  const showActive = () => {
    for (const [index, option] of [...listbox.children].entries()) {
      option.setAttribute("aria-selected", String(index === active));
    }
    const option = listbox.children[active];
    control.setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  };

  const insert = (name) => {
    const text = control.value;
    control.value = text.slice(0, token.start) + name + text.slice(token.end);
    const caret = token.start + name.length;
    control.setSelectionRange(caret, caret);
    close();
    paint();
    props.onInput(control.value);
    control.focus();
  };

  // Opens the list for the name being typed at the caret: after "{{ " (everything), or while a name is
  // typed inside a tag (those that continue it, a dot after a known name included).
  const complete = () => {
    const caret = control.selectionStart;
    if (caret !== control.selectionEnd) return close();
    const before = control.value.slice(0, caret);
    if (mode === "template" && !insideTag(before)) return close();
    const typed = before.match(NAME_BEFORE_CARET)[0];
    const after = control.value.slice(caret).match(/^[\w.]*/)[0];
    if (typed === "" && mode === "template" && !/\{[{%]\s*$/.test(before)) return close();
    if (typed === "" && mode === "expression" && before.trim() !== "" && !/[\s(,[]$/.test(before)) return close();
    options = names.filter((name) => name.startsWith(typed) && name !== typed).slice(0, MAX_OPTIONS);
    if (options.length === 0) return close();
    token = { start: caret - typed.length, end: caret + after.length };
    active = 0;
    listbox.replaceChildren(
      ...options.map((name, index) => {
        const option = h("li", { role: "option", id: `${listId}-${index}`, "aria-selected": "false" }, name);
        // mousedown, not click: the textarea must keep its focus and caret.
        option.addEventListener("mousedown", (event) => {
          event.preventDefault();
          insert(name);
        });
        return option;
      }),
    );
    listbox.hidden = false;
    control.setAttribute("aria-expanded", "true");
    showActive();
  };

  control.addEventListener("input", (event) => {
    if (!multiline && control.value.includes("\n")) control.value = control.value.replace(/\n/g, " ");
    paint();
    props.onInput(control.value);
    if (event.inputType?.startsWith("delete") && listbox.hidden) return;
    complete();
  });
  control.addEventListener("scroll", paint);
  control.addEventListener("blur", close);
  control.addEventListener("keydown", (event) => {
    if (!listbox.hidden) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        active = (active + (event.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
        showActive();
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        event.preventDefault();
        insert(options[active]);
        return;
      }
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        close();
        return;
      }
    }
    if (event.key === " " && event.ctrlKey) {
      event.preventDefault();
      complete();
    } else if (event.key === "Enter" && !multiline) {
      event.preventDefault();
    }
  });
  paint();
  return { element, control };
}
