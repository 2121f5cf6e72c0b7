// /dashboard/notifications/: the signed-in person's inbox, newest first (GET notifications), unread
// ones highlighted. Opening one marks it read (POST notifications/{id}/read) and follows its link;
// "Mark all read" is POST notifications/read-all. New and read notifications arrive live through
// bell.js's socket, so every open tab agrees.

import { api, apiList, h, showError, timeElement } from "./page.js";

const SHOWN = 200;

const list = document.getElementById("inbox");
const empty = document.getElementById("inbox-empty");
const summary = document.getElementById("inbox-summary");
const errors = document.getElementById("inbox-errors");
const readAllButton = document.getElementById("read-all");

// Only links of this site or http(s) ones: a notification's link must never run script.
function safeLink(link) {
  if (!link) return null;
  try {
    const url = new URL(link, location.href);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

function setUnread(item, unread) {
  item.classList.toggle("unread", unread);
  item.dataset.unread = String(unread);
  item.querySelector(".unread-mark").textContent = unread ? "Unread" : "";
  const button = item.querySelector(".mark-read");
  if (button) button.hidden = !unread;
}

function itemFor(notification) {
  const link = safeLink(notification.link);
  const title = link
    ? h("a", { href: link, class: "inbox-title" }, notification.title)
    : h("span", { class: "inbox-title" }, notification.title);
  const item = h(
    "li",
    { class: "inbox-item", dataset: { id: notification.id, level: notification.level } },
    h(
      "div",
      { class: "inbox-head" },
      h("span", { class: "badge", dataset: { status: notification.level } }, notification.level),
      title,
      h("span", { class: "unread-mark visually-hidden" }),
    ),
    notification.body ? h("p", { class: "inbox-body" }, notification.body) : null,
    h("div", { class: "inbox-meta" }, timeElement(notification.created_at)),
  );
  if (!link) {
    const button = h("button", { type: "button", class: "link-button mark-read" }, "Mark read");
    item.querySelector(".inbox-meta").append(button);
  }
  setUnread(item, notification.read_at === null);
  return item;
}

function update() {
  const items = list.querySelectorAll(".inbox-item");
  const unread = list.querySelectorAll(".inbox-item.unread").length;
  empty.hidden = items.length > 0;
  summary.textContent = items.length ? `${unread} unread of ${items.length} shown.` : "";
  readAllButton.disabled = unread === 0;
}

async function markRead(item) {
  if (item.dataset.unread !== "true") return;
  setUnread(item, false);
  update();
  try {
    await api(`notifications/${item.dataset.id}/read`, { method: "POST" });
  } catch (error) {
    setUnread(item, true);
    update();
    showError(errors, error);
  }
}

list.addEventListener("click", async (event) => {
  const item = event.target.closest(".inbox-item");
  if (!item) return;
  const anchor = event.target.closest("a");
  if (anchor && item.dataset.unread === "true") {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) {
      markRead(item); // opened elsewhere: this page stays to finish the request
      return;
    }
    // Mark read first, then follow: leaving the page could cut the request off.
    event.preventDefault();
    await markRead(item);
    location.assign(anchor.href);
    return;
  }
  if (event.target.closest(".mark-read")) await markRead(item);
});

readAllButton.addEventListener("click", async () => {
  showError(errors, null);
  readAllButton.disabled = true;
  try {
    await api("notifications/read-all", { method: "POST" });
    list.querySelectorAll(".inbox-item.unread").forEach((item) => setUnread(item, false));
  } catch (error) {
    showError(errors, error);
  }
  update();
});

window.addEventListener("dwc:notification-created", (event) => {
  const { notification } = event.detail;
  if (list.querySelector(`[data-id="${CSS.escape(notification.id)}"]`)) return;
  list.prepend(itemFor(notification));
  update();
});

window.addEventListener("dwc:notification-read", (event) => {
  const { ids, all } = event.detail;
  for (const item of list.querySelectorAll(".inbox-item.unread")) {
    if (all || ids.includes(item.dataset.id)) setUnread(item, false);
  }
  update();
});

async function load() {
  try {
    const notifications = await apiList("notifications", (items) => items.length < SHOWN);
    list.replaceChildren(...notifications.map(itemFor));
    showError(errors, null);
  } catch (error) {
    showError(errors, error);
  }
  update();
}

// Reconnected after a gap: read the list again rather than guess what was missed.
let subscribedBefore = false;
window.addEventListener("dwc:notifications-subscribed", () => {
  if (subscribedBefore) load();
  subscribedBefore = true;
});

load();
