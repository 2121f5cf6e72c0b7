// What every dashboard page shares: REST calls with the session cookie and CSRF token, the signed-in
// user and their roles (GET auth/me), the workspace switcher, small DOM builders and time formats.

const WRITE_ROLES = new Set(["editor", "admin", "owner"]);
const MAX_PAGES = 20;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
  }

  // One line per message of an RFC 9457 validation problem ("input.topic: must be a string"), else the detail.
  get messages() {
    const errors = this.problem.errors;
    if (!errors || typeof errors !== "object") return [this.message];
    return Object.entries(errors).flatMap(([field, messages]) =>
      [].concat(messages).map((message) => (field === "non_field_errors" ? message : `${field}: ${message}`)),
    );
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// `path` is relative to /api/v3/, or an absolute URL the API handed out (a page's `next`). `headers`
// adds request headers (the builder's If-Match).
export async function api(path, { method = "GET", body, headers: extra = {} } = {}) {
  const url = /^https?:/.test(path) ? path : `/api/v3/${path}`;
  const headers = { Accept: "application/json", ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// The items of a paginated list, following `next` while `more(items)` wants more (at most MAX_PAGES).
export async function apiList(path, more = () => true) {
  const items = [];
  let next = path;
  for (let page = 0; next && page < MAX_PAGES; page += 1) {
    const data = await api(next);
    items.push(...data.results);
    next = more(items) ? data.next : null;
  }
  return items;
}

let currentUser;
export function me() {
  currentUser ??= api("auth/me");
  return currentUser;
}

// The role from auth/me; the page's own (rendered by the server) when auth/me does not list the
// workspace, as for a superuser looking at someone else's.
export async function canWrite(workspaceId) {
  const user = await me();
  const role = user.workspaces.find((workspace) => workspace.id === workspaceId)?.role ?? document.body.dataset.role;
  return WRITE_ROLES.has(role);
}

export async function setUpSwitcher() {
  const select = document.getElementById("workspace-switcher");
  if (!select) return;
  const current = document.body.dataset.workspace;
  const user = await me();
  const options = user.workspaces.map(
    (workspace) => new Option(`${workspace.name} (${workspace.role})`, workspace.id, false, workspace.id === current),
  );
  if (!user.workspaces.some((workspace) => workspace.id === current)) options.unshift(select.options[0]);
  select.replaceChildren(...options);
}

// h("a", {href: "/x", class: "link"}, "text", child): attributes, `dataset` and children in one call.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.filter((child) => child !== undefined && child !== null));
  return element;
}

export function badge(status) {
  return h("span", { class: "badge", dataset: { status } }, status);
}

export function setBadge(element, status) {
  element.dataset.status = status;
  element.textContent = status;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function timeElement(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso }, timeFormat.format(new Date(iso)));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

// Fills `element` (a role="alert" region) with the messages of an error, or empties and hides it.
export function showError(element, error) {
  if (!error) {
    element.replaceChildren();
    element.hidden = true;
    return;
  }
  const messages = error instanceof ApiError ? error.messages : [error.message || String(error)];
  element.replaceChildren(
    messages.length === 1 ? messages[0] : h("ul", {}, ...messages.map((message) => h("li", {}, message))),
  );
  element.hidden = false;
}

export const dashboardUrls = {
  workflow: (id) => `/dashboard/workflows/${id}/`,
  run: (id) => `/dashboard/runs/${id}/`,
};
