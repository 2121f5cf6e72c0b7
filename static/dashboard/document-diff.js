// /dashboard/documents/<id>/diff/?against=…: two versions of a node's document side by side, from
// GET documents/<id>/diff. The old side shows what was deleted (<del>), the new side what was
// inserted (<ins>): struck through and underlined as well as coloured, so colour is not the only cue.

import { api, apiList, h, setUpSwitcher, showError } from "./page.js";

const page = document.getElementById("diff-page");
const documentId = page.dataset.document;
const against = page.dataset.against;
const loadError = document.getElementById("load-error");

function side(spans, shown, tag) {
  return spans
    .filter((span) => span.op === "equal" || span.op === shown)
    .map((span) => (span.op === "equal" ? document.createTextNode(span.text) : h(tag, {}, span.text)));
}

function heading(version) {
  const created = new Date(version.created_at).toLocaleString();
  return `Version ${version.version} · run ${version.run.slice(0, 8)} · ${created}`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function render(diff) {
  document.getElementById("old-title").textContent = heading(diff.against);
  document.getElementById("new-title").textContent = heading(diff.document);
  document.getElementById("diff-old").replaceChildren(...side(diff.words, "delete", "del"));
  document.getElementById("diff-new").replaceChildren(...side(diff.words, "insert", "ins"));
  const { insertions, deletions, unchanged } = diff.stats;
  document.getElementById("diff-stats").textContent =
    insertions + deletions === 0
      ? `No changes from version ${diff.against.version} (${plural(unchanged, "word")}).`
      : `From version ${diff.against.version} to ${diff.document.version}: ${plural(insertions, "word")} inserted, ` +
        `${plural(deletions, "word")} deleted, ${unchanged} unchanged.`;
  document.getElementById("diff-sides").hidden = false;
  const unified = document.getElementById("unified-panel");
  unified.querySelector("pre").textContent = diff.unified;
  unified.hidden = diff.unified === "";
}

// The other versions of the node's document, newest first, as the choices of "Compare with".
async function fillChoices(currentAgainst) {
  const select = document.getElementById("against-choice");
  const versions = await apiList(`documents/${documentId}/versions`);
  const options = versions
    .filter((version) => version.id !== documentId)
    .map((version) => {
      const label = `Version ${version.version} (run ${version.run.slice(0, 8)})`;
      return new Option(label, version.id, false, version.id === currentAgainst);
    });
  if (options.length) select.replaceChildren(...options);
}

// Choices are filled even when the diff is refused (no version before this one), to pick another.
async function load() {
  let chosen = against;
  try {
    const diff = await api(`documents/${documentId}/diff?against=${encodeURIComponent(against)}`);
    render(diff);
    chosen = diff.against.id;
  } catch (error) {
    showError(loadError, error);
  }
  await fillChoices(chosen).catch((error) => console.error(error));
  page.dataset.loaded = "true";
}

setUpSwitcher().catch((error) => console.error(error));
load();
