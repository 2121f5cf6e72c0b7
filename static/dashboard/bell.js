// The bell in every dashboard page's header: the unread count (GET notifications/unread-count), kept
// up to date from /ws/notifications/, which also tells the inbox page what changed. The socket
// reconnects with a growing pause and re-reads the count then (what it missed while away).
// Other modules hear of inbox changes as window events:
//   "dwc:notification-created"  detail: {notification, unread}
//   "dwc:notification-read"     detail: {ids, all, unread}

import { api } from "./page.js";

const FIRST_PAUSE_MS = 500;
const LONGEST_PAUSE_MS = 10000;
const CLOSE_UNAUTHENTICATED = 4401;
const MAX_SHOWN = 99;

const bell = document.getElementById("bell");
const badge = document.getElementById("bell-count");

export function showUnread(count) {
  if (!bell) return;
  bell.dataset.unread = String(count);
  badge.textContent = count > MAX_SHOWN ? `${MAX_SHOWN}+` : String(count);
  badge.hidden = count === 0;
  bell.setAttribute("aria-label", count === 0 ? "Notifications" : `Notifications, ${count} unread`);
}

let liveUpdates = 0; // a count read from the API is stale if a live one came meanwhile

async function refresh() {
  const before = liveUpdates;
  try {
    const { count } = await api("notifications/unread-count");
    if (liveUpdates === before) showUnread(count);
  } catch (error) {
    console.warn("unread count:", error.message);
  }
}

let pause = FIRST_PAUSE_MS;

function connect() {
  const url = new URL("/ws/notifications/", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  socket.onmessage = (message) => receive(JSON.parse(message.data));
  socket.onclose = (event) => {
    if (event.code === CLOSE_UNAUTHENTICATED) return; // logged out: live.js says so in the header
    setTimeout(connect, pause);
    pause = Math.min(pause * 2, LONGEST_PAUSE_MS);
  };
}

function receive(message) {
  switch (message.type) {
    case "subscribed":
      pause = FIRST_PAUSE_MS;
      refresh(); // whatever happened before or while the socket was away
      window.dispatchEvent(new CustomEvent("dwc:notifications-subscribed"));
      return;
    case "notification.created":
      liveUpdates += 1;
      showUnread(message.unread);
      window.dispatchEvent(new CustomEvent("dwc:notification-created", { detail: message }));
      return;
    case "notification.read":
      liveUpdates += 1;
      showUnread(message.unread);
      window.dispatchEvent(new CustomEvent("dwc:notification-read", { detail: message }));
      return;
  }
}

if (bell) connect();
