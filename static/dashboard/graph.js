// A workflow graph as inline SVG. Nodes sit where the editor stored them (`position` {x, y}) when every
// node has one, else in layers by topological depth, top to bottom; edges carry their condition label.
// Each node is a <g data-key data-status>, so pages (and tests) colour and find them by status.

const SVG = "http://www.w3.org/2000/svg";
const NODE_WIDTH = 176;
const NODE_HEIGHT = 54;
const GAP_X = 28;
const GAP_Y = 56;
const PAD = 12;
const TITLE_CHARS = 22;

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function clip(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

// Longest path from a root, so that every edge points downwards.
function depths(nodes, edges) {
  const parents = new Map(nodes.map((node) => [node.key, []]));
  for (const edge of edges) parents.get(edge.target)?.push(edge.source);
  const depth = new Map();
  const visit = (key, trail) => {
    if (depth.has(key)) return depth.get(key);
    if (trail.has(key)) return 0; // a cycle cannot be saved; do not hang on one anyway
    trail.add(key);
    const known = parents.get(key).filter((parent) => parents.has(parent));
    const value = known.length ? Math.max(...known.map((parent) => visit(parent, trail))) + 1 : 0;
    depth.set(key, value);
    return value;
  };
  for (const node of nodes) visit(node.key, new Set());
  return depth;
}

function layout(nodes, edges) {
  const boxes = new Map();
  const stored = nodes.every((node) => Number.isFinite(node.position?.x) && Number.isFinite(node.position?.y));
  if (stored) {
    for (const node of nodes) boxes.set(node.key, { x: node.position.x, y: node.position.y });
  } else {
    const depth = depths(nodes, edges);
    const layers = [];
    for (const node of nodes) (layers[depth.get(node.key)] ??= []).push(node.key);
    const widest = Math.max(...layers.map((layer) => layer.length));
    layers.forEach((layer, row) => {
      const indent = ((widest - layer.length) * (NODE_WIDTH + GAP_X)) / 2;
      layer.forEach((key, column) => {
        boxes.set(key, { x: indent + column * (NODE_WIDTH + GAP_X), y: row * (NODE_HEIGHT + GAP_Y) });
      });
    });
  }
  const all = [...boxes.values()];
  const left = Math.min(...all.map((box) => box.x));
  const top = Math.min(...all.map((box) => box.y));
  for (const box of all) {
    box.x += PAD - left;
    box.y += PAD - top;
  }
  return {
    boxes,
    width: Math.max(...all.map((box) => box.x)) + NODE_WIDTH + PAD,
    height: Math.max(...all.map((box) => box.y)) + NODE_HEIGHT + PAD,
  };
}

// From the bottom of `a` to the top of `b` when b is below, else from side to side.
function edgePath(a, b) {
  if (b.y >= a.y + NODE_HEIGHT) {
    const [x1, y1, x2, y2] = [a.x + NODE_WIDTH / 2, a.y + NODE_HEIGHT, b.x + NODE_WIDTH / 2, b.y];
    const middle = (y1 + y2) / 2;
    return { d: `M${x1},${y1} C${x1},${middle} ${x2},${middle} ${x2},${y2}`, x: (x1 + x2) / 2, y: middle };
  }
  const rightwards = b.x >= a.x;
  const [x1, y1] = [rightwards ? a.x + NODE_WIDTH : a.x, a.y + NODE_HEIGHT / 2];
  const [x2, y2] = [rightwards ? b.x : b.x + NODE_WIDTH, b.y + NODE_HEIGHT / 2];
  const middle = (x1 + x2) / 2;
  return { d: `M${x1},${y1} C${middle},${y1} ${middle},${y2} ${x2},${y2}`, x: middle, y: (y1 + y2) / 2 };
}

function drawEdge(edge, boxes) {
  const path = edgePath(boxes.get(edge.source), boxes.get(edge.target));
  const group = svg("g", { class: "edge", "data-source": edge.source, "data-target": edge.target });
  group.append(svg("path", { d: path.d, "marker-end": "url(#graph-arrow)" }));
  if (edge.label) {
    const width = edge.label.length * 7 + 10;
    group.append(
      svg("rect", { class: "edge-label", x: path.x - width / 2, y: path.y - 9, width, height: 18, rx: 4 }),
      svg("text", { class: "edge-label", x: path.x, y: path.y + 4, "text-anchor": "middle" }, edge.label),
    );
  }
  return group;
}

function drawNode(node, box, link) {
  const group = svg("g", { class: "node", "data-key": node.key, "data-type": node.type, "data-status": "" });
  const title = node.title || node.key;
  group.append(
    svg("title", {}, `${title} (${node.key}, ${node.type})`),
    svg("rect", { x: box.x, y: box.y, width: NODE_WIDTH, height: NODE_HEIGHT, rx: 8 }),
    svg("text", { class: "node-title", x: box.x + 10, y: box.y + 22 }, clip(title, TITLE_CHARS)),
    svg("text", { class: "node-meta", x: box.x + 10, y: box.y + 42 }, node.type),
  );
  if (!link) return group;
  const anchor = svg("a", { href: link(node), "aria-label": `${title}: ${node.type}` });
  anchor.append(group);
  return anchor;
}

/**
 * Draws `nodes` ([{key, type, title, position}]) and `edges` ([{source, target, label}]) into `container`.
 * link(node) gives each node a link target. Returns setStatus(key, status), which colours a node.
 */
export function drawGraph(container, { nodes, edges }, { link, label } = {}) {
  if (!nodes.length) {
    container.replaceChildren("This workflow has no nodes.");
    return () => {};
  }
  const known = new Set(nodes.map((node) => node.key));
  const shown = edges.filter((edge) => known.has(edge.source) && known.has(edge.target));
  const { boxes, width, height } = layout(nodes, shown);
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "group",
    "aria-label": label || "Workflow graph",
  });
  const marker = svg("marker", {
    id: "graph-arrow",
    viewBox: "0 0 10 10",
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: "auto-start-reverse",
  });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }));
  const defs = svg("defs");
  defs.append(marker);
  root.append(defs, ...shown.map((edge) => drawEdge(edge, boxes)));
  root.append(...nodes.map((node) => drawNode(node, boxes.get(node.key), link)));
  container.replaceChildren(root);

  return (key, status) => {
    const group = root.querySelector(`g.node[data-key="${CSS.escape(key)}"]`);
    if (!group || group.dataset.status === status) return;
    group.dataset.status = status;
    group.querySelector(".node-meta").textContent = `${group.dataset.type} · ${status}`;
    group.closest("a")?.setAttribute("aria-label", `${group.querySelector("title").textContent}: ${status}`);
  };
}
