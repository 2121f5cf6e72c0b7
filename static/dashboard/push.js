// Web Push for the dashboard: turn this browser's push notifications on and off. pushEnable() registers
// the service worker (/dashboard/notifications-sw.js, scope /dashboard/), asks for the permission,
// subscribes with the server's VAPID key (GET notifications/push-key) and stores the subscription
// (POST notifications/push-subscriptions); pushDisable() deletes it on the server and in the browser.

import { api, apiList } from "./page.js";

const WORKER = "/dashboard/notifications-sw.js";
const SCOPE = "/dashboard/";
export const PUSH_UNSUPPORTED = "This browser cannot receive push notifications (or the page is not served over HTTPS).";
export const PUSH_NOT_CONFIGURED = "This server does not send push notifications: no VAPID key is configured.";
export const PUSH_BLOCKED = "Notifications are blocked for this site; allow them in the browser's site settings.";

export function pushSupported() {
  return window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function base64urlBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

function sameKey(buffer, bytes) {
  if (!buffer) return false;
  const held = new Uint8Array(buffer);
  return held.length === bytes.length && held.every((byte, index) => byte === bytes[index]);
}

// Resolves to the stored subscription ({id, endpoint, user_agent, created_at, last_used_at});
// rejects with an Error saying why push cannot be turned on (or an ApiError from the server).
export async function pushEnable() {
  if (!pushSupported()) throw new Error(PUSH_UNSUPPORTED);
  const key = await api("notifications/push-key");
  if (!key.configured) throw new Error(PUSH_NOT_CONFIGURED);
  if ((await Notification.requestPermission()) !== "granted") throw new Error(PUSH_BLOCKED);
  await navigator.serviceWorker.register(WORKER, { scope: SCOPE, type: "classic" });
  const registration = await navigator.serviceWorker.ready;
  const serverKey = base64urlBytes(key.public_key);
  let subscription = await registration.pushManager.getSubscription();
  // One made with another server key (the keys were changed) cannot be sent to any more.
  if (subscription && !sameKey(subscription.options.applicationServerKey, serverKey)) {
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey });
  return api("notifications/push-subscriptions", { method: "POST", body: subscription.toJSON() });
}

// Resolves to true when this browser was subscribed and no longer is, false when it was not.
export async function pushDisable() {
  if (!pushSupported()) return false;
  const registration = await navigator.serviceWorker.getRegistration(SCOPE);
  const subscription = await registration?.pushManager.getSubscription();
  if (!subscription) return false;
  const stored = (await apiList("notifications/push-subscriptions")).find(
    (item) => item.endpoint === subscription.endpoint,
  );
  if (stored) await api(`notifications/push-subscriptions/${stored.id}`, { method: "DELETE" });
  await subscription.unsubscribe();
  return true;
}
