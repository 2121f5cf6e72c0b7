// The builder's workflow document: what a PUT sends, the undo/redo history of it, drafts kept in
// localStorage across reloads, the clipboard shared by every builder tab, and the server's errors
// sorted by node.

const NODE_FIELDS = [
  "key",
  "type",
  "title",
  "prompt",
  "content",
  "config",
  "priority",
  "tags",
  "position",
  "retry",
  "timeout",
  "trigger_rule",
  "depends_on",
];
const HISTORY_STEPS = 100;
const CLIPBOARD = "dwc-builder-clipboard";
const PASTE_OFFSET = 40;

// A node as PUT takes it: what the API answered, without its ids and timestamps.
export function nodeBody(node) {
  return Object.fromEntries(NODE_FIELDS.filter((field) => node[field] !== undefined).map((field) => [field, node[field]]));
}

// The editable part of a workflow, from the API's workflow, a version's snapshot or an export document
// (whose edges are listed apart from its nodes).
export function definition(source) {
  const nodes = (source.nodes ?? []).map((node) => ({ ...nodeBody(node), depends_on: node.depends_on ?? [] }));
  if (Array.isArray(source.edges) && !source.nodes?.some((node) => node.depends_on?.length)) {
    const byKey = new Map(nodes.map((node) => [node.key, node]));
    for (const edge of source.edges) {
      byKey.get(edge.target)?.depends_on.push(edge.label ? { node: edge.source, when: edge.label } : edge.source);
    }
  }
  return {
    name: source.name ?? "",
    description: source.description ?? "",
    settings: source.settings ?? {},
    input_schema: source.input_schema ?? {},
    nodes,
  };
}

export class History {
  constructor(initial) {
    this.reset(initial);
  }

  reset(state) {
    this.states = [JSON.stringify(state)];
    this.index = 0;
  }

  push(state) {
    const text = JSON.stringify(state);
    if (text === this.states[this.index]) return;
    this.states.splice(this.index + 1, Infinity, text);
    if (this.states.length > HISTORY_STEPS + 1) this.states.shift();
    this.index = this.states.length - 1;
  }

  get current() {
    return JSON.parse(this.states[this.index]);
  }

  get canUndo() {
    return this.index > 0;
  }

  get canRedo() {
    return this.index < this.states.length - 1;
  }

  undo() {
    if (this.canUndo) this.index -= 1;
    return this.current;
  }

  redo() {
    if (this.canRedo) this.index += 1;
    return this.current;
  }
}

// Unsaved changes of one workflow, made from one version of it.
export class Drafts {
  constructor(workflowId) {
    this.prefix = `dwc-builder-draft:${workflowId}:`;
  }

  key(version) {
    return `${this.prefix}${version}`;
  }

  load(version) {
    try {
      return JSON.parse(localStorage.getItem(this.key(version)));
    } catch {
      return null;
    }
  }

  save(version, state) {
    localStorage.setItem(this.key(version), JSON.stringify({ saved_at: new Date().toISOString(), state }));
  }

  // After a save or a discard: this workflow's drafts of every version go.
  clear() {
    for (const name of Object.keys(localStorage)) if (name.startsWith(this.prefix)) localStorage.removeItem(name);
  }
}

function dependencyKey(dependency) {
  return typeof dependency === "string" ? dependency : dependency.node;
}

// The chosen nodes, with only the edges between them.
export function copyNodes(nodes, keys) {
  const chosen = nodes.filter((node) => keys.includes(node.key));
  const copied = chosen.map((node) => ({
    ...structuredClone(node),
    depends_on: (node.depends_on ?? []).filter((dependency) => keys.includes(dependencyKey(dependency))),
  }));
  localStorage.setItem(CLIPBOARD, JSON.stringify(copied));
  return copied.length;
}

// The clipboard's nodes with keys free in `taken` (their edges follow the renames), moved a little.
export function pastedNodes(taken, uniqueKey) {
  let copied;
  try {
    copied = JSON.parse(localStorage.getItem(CLIPBOARD)) ?? [];
  } catch {
    return [];
  }
  const used = new Set(taken);
  const renamed = new Map();
  for (const node of copied) {
    const key = uniqueKey(node.key, used);
    used.add(key);
    renamed.set(node.key, key);
  }
  return copied.map((node) => ({
    ...node,
    key: renamed.get(node.key),
    position: { x: (node.position?.x ?? 0) + PASTE_OFFSET, y: (node.position?.y ?? 0) + PASTE_OFFSET },
    depends_on: node.depends_on.map((dependency) =>
      typeof dependency === "string"
        ? renamed.get(dependency)
        : { ...dependency, node: renamed.get(dependency.node) },
    ),
  }));
}

// {"nodes.fetch.config.url": [...], "name": [...]} → {byNode: Map key → {"config.url": [...]}, rest}.
export function errorsByNode(errors, keys) {
  const byNode = new Map();
  const rest = {};
  for (const [path, messages] of Object.entries(errors ?? {})) {
    const key = path.startsWith("nodes.") && [...keys].find((k) => path === `nodes.${k}` || path.startsWith(`nodes.${k}.`));
    if (!key) {
      rest[path] = messages;
      continue;
    }
    const field = path.slice(`nodes.${key}.`.length) || "node";
    byNode.set(key, { ...byNode.get(key), [field]: [].concat(messages) });
  }
  return { byNode, rest };
}
