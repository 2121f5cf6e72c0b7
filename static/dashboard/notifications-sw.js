// The dashboard's service worker, served at /dashboard/notifications-sw.js so that its scope is
// /dashboard/ (workflows.dashboard.views.notifications_worker). It shows each Web Push message as a
// notification and opens its link when clicked. A message is notifications.channels.web_push's
// payload: {title, body, link, level, id}, where `id` is the delivery's, so a retry that reached this
// browser twice replaces the first notification instead of showing a second one.

const FALLBACK_TITLE = "Document Workflow Chain";
const HOME = "/dashboard/";

function readPayload(data) {
  if (!data) return {};
  try {
    return data.json();
  } catch {
    return { body: data.text() };
  }
}

// Only http(s) links are opened; anything else (or nothing) opens the dashboard.
function targetOf(link) {
  try {
    const url = new URL(link || HOME, self.location.origin);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : new URL(HOME, self.location.origin).href;
  } catch {
    return new URL(HOME, self.location.origin).href;
  }
}

self.addEventListener("push", (event) => {
  const payload = readPayload(event.data);
  const options = {
    body: payload.body || "",
    icon: "/static/dashboard/favicon.svg",
    data: { link: targetOf(payload.link) },
    requireInteraction: payload.level === "error",
  };
  if (payload.id) options.tag = payload.id;
  event.waitUntil(self.registration.showNotification(payload.title || FALLBACK_TITLE, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = event.notification.data?.link || targetOf(HOME);
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((client) => client.url === target && "focus" in client);
      return open ? open.focus() : self.clients.openWindow(target);
    })(),
  );
});
