// The builder's canvas: the workflow's nodes drawn by Drawflow (static/vendor/drawflow, loaded as a
// classic script), their ports, edges, selection (shift+click adds to it) and Auto-layout by dagre.
// The page owns the workflow document; the canvas draws it (`render`) and tells the page what the
// person changed through `onChange(nodes)` with the whole, new list of node JSON.

import dagre from "../../vendor/dagre/dagre.esm.js";
import { h } from "../page.js";

const MODULE = "Home";
const LAYOUT_GAPS = { nodesep: 40, ranksep: 70, marginx: 20, marginy: 20 };
const STREAM_SHOWN = 120; // characters of a step's streamed text under its node

function domId(id) {
  return `node-${id}`;
}

// A key free in `taken`, made from `base` (the node type): "text", "text_2", "text_3"…
export function uniqueKey(base, taken) {
  const stem = String(base).replace(/[^a-z0-9_]/gi, "_").toLowerCase() || "node";
  if (!taken.has(stem)) return stem;
  for (let number = 2; ; number += 1) if (!taken.has(`${stem}_${number}`)) return `${stem}_${number}`;
}

function dependencyKey(dependency) {
  return typeof dependency === "string" ? dependency : dependency.node;
}

export class Canvas {
  /** container: the element to draw in; types: Map type → node type (its `branches`); callbacks. */
  constructor(container, { types, onChange, onSelect }) {
    Object.assign(this, { container, types, onChange, onSelect });
    this.editor = new window.Drawflow(container);
    this.editor.reroute = false;
    this.editor.start();
    this.nodes = [];
    this.ids = new Map(); // node key → Drawflow id
    this.keys = new Map(); // Drawflow id → node key
    this.selected = new Set(); // keys
    this.errorKeys = new Set(); // nodes the last save's errors name, kept across redraws
    this.statuses = new Map(); // key → {status, text} of the run followed, kept across redraws
    this.drawing = false;
    this.listen();
  }

  setReadOnly(readOnly) {
    this.readOnly = readOnly;
    this.editor.editor_mode = readOnly ? "view" : "edit";
    this.container.classList.toggle("read-only", readOnly);
  }

  branches(type) {
    return this.types.get(type)?.branches ?? [];
  }

  // --- drawing -----------------------------------------------------------------------------------

  render(nodes) {
    this.drawing = true;
    this.nodes = structuredClone(nodes);
    const keep = new Set(this.nodes.map((node) => node.key));
    this.editor.clear();
    this.ids.clear();
    this.keys.clear();
    this.nodes.forEach((node, index) => this.drawNode(node, index));
    for (const node of this.nodes) {
      for (const dependency of node.depends_on ?? []) this.drawEdge(dependency, node.key);
    }
    this.selected = new Set([...this.selected].filter((key) => keep.has(key)));
    this.showSelection();
    this.drawing = false;
  }

  drawNode(node, index) {
    const branches = this.branches(node.type);
    const x = node.position?.x ?? 40 + (index % 4) * 220;
    const y = node.position?.y ?? 40 + Math.floor(index / 4) * 120;
    const id = this.editor.addNode(node.type, 1, branches.length || 1, x, y, "dwc-node", { key: node.key }, "");
    this.ids.set(node.key, id);
    this.keys.set(String(id), node.key);
    const element = this.element(node.key);
    const shown = this.statuses.get(node.key) ?? {};
    Object.assign(element.dataset, { type: node.type, status: shown.status ?? "" });
    element
      .querySelector(".drawflow_content_node")
      .replaceChildren(
        h("span", { class: "node-title" }),
        h("span", { class: "node-meta" }),
        h("span", { class: "node-stream" }, (shown.text ?? "").slice(-STREAM_SHOWN)),
      );
    this.label(element, node);
    element.classList.toggle("has-errors", this.errorKeys.has(node.key));
    branches.forEach((branch, position) => {
      const port = element.querySelector(`.output.output_${position + 1}`);
      port.dataset.branch = branch;
      port.title = `${branch} branch`;
    });
  }

  label(element, node) {
    element.dataset.key = node.key;
    element.setAttribute("aria-label", `${node.title || node.key} (${node.type})`);
    element.querySelector(".node-title").textContent = node.title || node.key;
    element.querySelector(".node-meta").textContent = `${node.key} · ${node.type}`;
  }

  // The nodes changed outside the canvas (a node's form): take them, and relabel the drawn nodes in
  // place rather than redraw. A form reports its last edit when its node is unselected, which Drawflow
  // signals in the middle of the mousedown that selects the next node: a redraw there would replace
  // the element being clicked, and Drawflow would select an id that no longer exists.
  update(nodes) {
    const sameShape =
      nodes.length === this.nodes.length && nodes.every((node, index) => node.type === this.nodes[index].type);
    if (!sameShape) {
      this.render(nodes);
      return;
    }
    nodes.forEach((node, index) => {
      const before = this.nodes[index].key;
      if (before !== node.key) this.rename(before, node.key);
    });
    this.nodes = structuredClone(nodes);
    for (const node of this.nodes) this.label(this.element(node.key), node);
  }

  rename(before, after) {
    const id = this.ids.get(before);
    this.ids.delete(before);
    this.ids.set(after, id);
    this.keys.set(String(id), after);
    for (const keys of [this.selected, this.errorKeys]) if (keys.delete(before)) keys.add(after);
    if (this.statuses.has(before)) this.statuses.set(after, this.statuses.get(before));
    this.statuses.delete(before);
    for (const edge of this.container.querySelectorAll(".connection")) {
      if (edge.dataset.source === before) edge.dataset.source = after;
      if (edge.dataset.target === before) edge.dataset.target = after;
    }
  }

  drawEdge(dependency, target) {
    const source = dependencyKey(dependency);
    if (!this.ids.has(source) || !this.ids.has(target)) return;
    const branches = this.branches(this.node(source)?.type);
    const port = typeof dependency === "string" ? 0 : Math.max(branches.indexOf(dependency.when), 0);
    this.editor.addConnection(this.ids.get(source), this.ids.get(target), `output_${port + 1}`, "input_1");
    this.markEdge(source, target, typeof dependency === "string" ? "" : dependency.when);
  }

  markEdge(source, target, label) {
    const selector = `.connection.node_in_${domId(this.ids.get(target))}.node_out_${domId(this.ids.get(source))}`;
    for (const edge of this.container.querySelectorAll(selector)) {
      Object.assign(edge.dataset, { source, target, when: label });
    }
  }

  element(key) {
    return this.container.querySelector(`#${domId(this.ids.get(key))}`);
  }

  node(key) {
    return this.nodes.find((node) => node.key === key);
  }

  // --- what the person does -------------------------------------------------------------------------

  listen() {
    const editor = this.editor;
    editor.on("nodeSelected", (id) => {
      const key = this.keys.get(String(id));
      if (!this.shiftDown && !this.selected.has(key)) this.selected.clear();
      this.selected.add(key);
      this.showSelection();
    });
    editor.on("nodeUnselected", () => {
      if (this.shiftDown) return;
      this.selected.clear();
      this.showSelection();
    });
    editor.on("mouseMove", () => this.dragTogether());
    editor.on("nodeMoved", () => this.positionsChanged());
    editor.on("connectionCreated", (connection) => this.connected(connection));
    editor.on("connectionRemoved", (connection) => this.disconnected(connection));
    editor.on("nodeRemoved", (id) => {
      const key = this.keys.get(String(id));
      this.removed(this.selected.has(key) ? [...this.selected, key] : [key]);
    });
    // Shift+click adds a node to the selection instead of replacing it; a drag then moves them all.
    this.container.addEventListener(
      "mousedown",
      (event) => {
        this.shiftDown = event.shiftKey;
        const element = event.target.closest(".drawflow-node");
        this.dragStart = new Map();
        if (!element) return;
        const key = element.dataset.key;
        if (this.readOnly) {
          this.select([key]); // Drawflow's view mode selects nothing; a viewer still reads a node's form
          return;
        }
        if (!event.shiftKey && !this.selected.has(key)) this.selected.clear();
        for (const selected of new Set([...this.selected, key])) this.dragStart.set(selected, this.position(selected));
      },
      true,
    );
  }

  // From the element: during a drag Drawflow's data runs one mouse move ahead of what it drew.
  position(key) {
    const element = this.element(key);
    return { x: Math.round(element.offsetLeft), y: Math.round(element.offsetTop) };
  }

  moveTo(key, { x, y }) {
    const id = this.ids.get(key);
    const element = this.element(key);
    element.style.left = `${x}px`;
    element.style.top = `${y}px`;
    const data = this.editor.drawflow.drawflow[MODULE].data[id];
    Object.assign(data, { pos_x: x, pos_y: y });
    this.editor.updateConnectionNodes(domId(id));
  }

  dragTogether() {
    const dragged = this.editor.drag && this.editor.ele_selected?.dataset.key;
    if (!dragged || !this.dragStart?.has(dragged) || this.dragStart.size < 2) return;
    const start = this.dragStart.get(dragged);
    const now = this.position(dragged);
    for (const [key, from] of this.dragStart) {
      if (key !== dragged) this.moveTo(key, { x: from.x + now.x - start.x, y: from.y + now.y - start.y });
    }
  }

  positionsChanged() {
    for (const node of this.nodes) node.position = this.position(node.key);
    this.changed();
  }

  connected({ output_id, input_id, output_class }) {
    if (this.drawing) return;
    const source = this.keys.get(String(output_id));
    const target = this.node(this.keys.get(String(input_id)));
    const branches = this.branches(this.node(source).type);
    const when = branches[Number(output_class.replace("output_", "")) - 1];
    const exists = (target.depends_on ?? []).some((dependency) => dependencyKey(dependency) === source);
    if (source === target.key || exists) {
      this.render(this.nodes); // Drawflow drew it already: undraw it
      return;
    }
    target.depends_on = [...(target.depends_on ?? []), when ? { node: source, when } : source];
    this.markEdge(source, target.key, when ?? "");
    this.changed();
  }

  disconnected({ output_id, input_id }) {
    if (this.drawing) return;
    const source = this.keys.get(String(output_id));
    const target = this.node(this.keys.get(String(input_id)));
    if (!target) return;
    target.depends_on = (target.depends_on ?? []).filter((dependency) => dependencyKey(dependency) !== source);
    this.changed();
  }

  removed(keys) {
    if (this.drawing) return;
    const gone = new Set(keys);
    this.nodes = this.nodes.filter((node) => !gone.has(node.key));
    for (const node of this.nodes) {
      node.depends_on = (node.depends_on ?? []).filter((dependency) => !gone.has(dependencyKey(dependency)));
    }
    for (const key of gone) this.selected.delete(key);
    this.render(this.nodes);
    this.changed();
  }

  // Delete: the selected nodes, else the selected edge.
  deleteSelection() {
    if (this.readOnly) return;
    if (this.selected.size) {
      this.removed([...this.selected]);
      return;
    }
    if (this.editor.connection_selected) this.editor.removeConnection();
  }

  changed() {
    this.showSelection();
    this.onChange(structuredClone(this.nodes));
  }

  showSelection() {
    for (const element of this.container.querySelectorAll(".drawflow-node")) {
      element.classList.toggle("multi-selected", this.selected.has(element.dataset.key));
    }
    this.onSelect?.(this.selected.size === 1 ? [...this.selected][0] : null, [...this.selected]);
  }

  select(keys) {
    this.selected = new Set(keys);
    this.showSelection();
  }

  // --- adding, layout, view --------------------------------------------------------------------------

  // Canvas coordinates of a point on screen (Drawflow's own formula, zoom and pan included).
  pointAt(clientX, clientY) {
    const canvas = this.editor.precanvas;
    const scale = canvas.clientWidth / (canvas.clientWidth * this.editor.zoom);
    const box = canvas.getBoundingClientRect();
    return { x: Math.round((clientX - box.x) * scale), y: Math.round((clientY - box.y) * scale) };
  }

  centre() {
    const box = this.container.getBoundingClientRect();
    const point = this.pointAt(box.x + box.width / 2, box.y + box.height / 3);
    const offset = (this.nodes.length % 5) * 24; // several clicks do not stack nodes exactly
    return { x: point.x - 80 + offset, y: point.y + offset };
  }

  autoLayout() {
    const graph = new dagre.graphlib.Graph();
    graph.setGraph({ rankdir: "TB", ...LAYOUT_GAPS });
    graph.setDefaultEdgeLabel(() => ({}));
    for (const node of this.nodes) {
      const element = this.element(node.key);
      graph.setNode(node.key, { width: element.offsetWidth, height: element.offsetHeight });
    }
    for (const node of this.nodes) {
      for (const dependency of node.depends_on ?? []) {
        if (graph.hasNode(dependencyKey(dependency))) graph.setEdge(dependencyKey(dependency), node.key);
      }
    }
    dagre.layout(graph);
    for (const node of this.nodes) {
      const { x, y, width, height } = graph.node(node.key);
      node.position = { x: Math.round(x - width / 2), y: Math.round(y - height / 2) };
    }
    this.render(this.nodes);
    this.changed();
  }

  zoom(direction) {
    if (direction > 0) this.editor.zoom_in();
    else if (direction < 0) this.editor.zoom_out();
    else this.editor.zoom_reset();
  }

  // --- what the server said ----------------------------------------------------------------------

  setErrors(keys) {
    this.errorKeys = new Set(keys);
    for (const element of this.container.querySelectorAll(".drawflow-node")) {
      element.classList.toggle("has-errors", keys.has(element.dataset.key));
    }
  }

  setStatus(key, status, text) {
    const shown = { ...this.statuses.get(key) };
    if (status !== undefined) shown.status = status;
    if (text !== undefined) shown.text = text;
    this.statuses.set(key, shown);
    const element = this.ids.has(key) && this.element(key);
    if (!element) return;
    if (status !== undefined) element.dataset.status = status;
    if (text !== undefined) element.querySelector(".node-stream").textContent = text.slice(-STREAM_SHOWN);
  }

  clearStatuses() {
    this.statuses.clear();
    for (const element of this.container.querySelectorAll(".drawflow-node")) {
      element.dataset.status = "";
      element.querySelector(".node-stream").textContent = "";
    }
  }
}
