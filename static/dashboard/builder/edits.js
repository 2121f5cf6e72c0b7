// How the builder's forms report their edits: a choice at once, keystrokes once the typing pauses
// (one undo step per pause), and whatever is still waiting when the editor asks (`flush`: before a
// save, an undo, a run, or when the form closes).

import { showFieldErrors } from "./field-errors.js";

const TYPING_DELAY_MS = 300;

/** `report()` is called for each edit as above; `changed(typing)` says one was made. */
export function editReporter(report) {
  let timer = null;
  const now = () => {
    clearTimeout(timer);
    timer = null;
    report();
  };
  return {
    changed(typing) {
      if (!typing) return now();
      clearTimeout(timer);
      timer = setTimeout(now, TYPING_DELAY_MS);
    },
    flush() {
      if (timer !== null) now();
    },
  };
}

/** What a form in the side panel hands the editor: its errors shown on its fields, its pending edit
 * reported (`flush`), and closing it (which reports that edit first). */
export function panelHandle(panel, problems, edits) {
  return {
    setErrors(errorsByPath) {
      showFieldErrors(panel, problems, errorsByPath);
    },
    flush() {
      edits.flush();
    },
    close() {
      edits.flush();
      panel.remove();
    },
  };
}
