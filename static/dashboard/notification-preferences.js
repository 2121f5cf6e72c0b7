// /dashboard/notifications/preferences/: what the signed-in person mutes, their quiet hours and time
// zone (GET and PUT notifications/preferences; a 400's errors are shown next to the fields they
// name), and this browser's Web Push subscription through push.js, when that module is there and
// the browser supports it.

import { ApiError, api, h, showError } from "./page.js";

const EVENT_LABELS = {
  "run.failed": "A run failed",
  "run.succeeded": "A run succeeded",
  "run.cancelled": "A run was cancelled",
  "run.waiting": "A run waits for an approval",
  "run.timed_out": "A run timed out",
  "schedule.missed": "A schedule missed a run",
  "webhook.rejected": "An inbound webhook was rejected",
  "credential.expiring": "A credential is about to expire",
  "budget.threshold": "A budget threshold was reached",
  "budget.exceeded": "A budget refused a step",
};
const KIND_LABELS = {
  in_app: "In-app inbox",
  email: "Email",
  web_push: "Browser notifications",
  slack: "Slack",
  teams: "Microsoft Teams",
  discord: "Discord",
  webhook: "Webhook",
  sms_twilio: "SMS (Twilio)",
  sms_gateway: "SMS (gateway)",
};

const form = document.getElementById("preferences");
const quietEnabled = document.getElementById("quiet-enabled");
const quietStart = document.getElementById("quiet-start");
const quietEnd = document.getElementById("quiet-end");
const timezone = document.getElementById("timezone");
const saved = document.getElementById("saved");
const saveButton = document.getElementById("save");

function choices(name, values, labels, muted) {
  const container = form.querySelector(`[data-choices="${name}"]`);
  container.replaceChildren(
    ...values.map((value) => {
      const id = `mute-${name}-${value}`.replace(/[^a-z0-9_-]/gi, "-");
      const box = h("input", { type: "checkbox", id, value, checked: muted.includes(value) });
      return h("label", { class: "inline", for: id }, box, ` ${labels[value] ?? value} `, h("code", {}, value));
    }),
  );
}

function checked(name) {
  return [...form.querySelectorAll(`[data-choices="${name}"] input:checked`)].map((box) => box.value);
}

function timezones(current) {
  const names = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const all = [...new Set(["UTC", current, ...names])].sort((a, b) => (a === "UTC" ? -1 : b === "UTC" ? 1 : a.localeCompare(b)));
  timezone.replaceChildren(...all.map((name) => new Option(name, name, false, name === current)));
}

function showQuietHours() {
  quietStart.disabled = quietEnd.disabled = !quietEnabled.checked;
}

function fill(preferences) {
  choices("event_types", preferences.event_types, EVENT_LABELS, preferences.muted_events);
  choices("kinds", preferences.kinds, KIND_LABELS, preferences.muted_kinds);
  quietEnabled.checked = preferences.quiet_hours !== null;
  if (preferences.quiet_hours) {
    quietStart.value = preferences.quiet_hours.start;
    quietEnd.value = preferences.quiet_hours.end;
  }
  showQuietHours();
  timezones(preferences.timezone);
}

function clearErrors() {
  form.querySelectorAll("[data-errors-for]").forEach((element) => showError(element, null));
}

function showFieldErrors(error) {
  const fieldErrors = error instanceof ApiError ? error.problem.errors : null;
  if (!fieldErrors || typeof fieldErrors !== "object") {
    showError(form.querySelector('[data-errors-for="non_field_errors"]'), error);
    return;
  }
  for (const [field, messages] of Object.entries(fieldErrors)) {
    const element =
      form.querySelector(`[data-errors-for="${CSS.escape(field)}"]`) ??
      form.querySelector('[data-errors-for="non_field_errors"]');
    showError(element, new Error([].concat(messages).join(" ")));
  }
}

quietEnabled.addEventListener("change", showQuietHours);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  saved.textContent = "";
  saveButton.disabled = true;
  const body = {
    muted_events: checked("event_types"),
    muted_kinds: checked("kinds"),
    quiet_hours: quietEnabled.checked ? { start: quietStart.value, end: quietEnd.value } : null,
    timezone: timezone.value,
  };
  try {
    fill(await api("notifications/preferences", { method: "PUT", body }));
    saved.textContent = "Saved.";
  } catch (error) {
    showFieldErrors(error);
  } finally {
    saveButton.disabled = false;
  }
});

// --- this browser's push subscription (push.js, when present) ----------------------------------

const pushToggle = document.getElementById("push-toggle");
const pushState = document.getElementById("push-state");

async function subscribedHere() {
  try {
    const registration = await navigator.serviceWorker?.getRegistration();
    return Boolean(await registration?.pushManager?.getSubscription());
  } catch {
    return false;
  }
}

async function setUpPush() {
  let push;
  try {
    push = await import("./push.js");
  } catch {
    pushState.textContent = "Browser notifications are not available on this server.";
    return;
  }
  if (!(await push.pushSupported())) {
    pushState.textContent = "This browser cannot show notifications from the dashboard.";
    return;
  }
  try {
    if (!(await api("notifications/push-key")).configured) {
      pushState.textContent = "This server does not send browser notifications (no push key is configured).";
      return;
    }
  } catch (error) {
    pushState.textContent = `Browser notifications cannot be set up now: ${error.message}`;
    return;
  }
  pushToggle.checked = await subscribedHere();
  pushToggle.disabled = false;
  pushState.textContent = pushToggle.checked ? "On for this browser." : "Off for this browser.";
  pushToggle.addEventListener("change", async () => {
    const wanted = pushToggle.checked;
    pushToggle.disabled = true;
    try {
      await (wanted ? push.pushEnable() : push.pushDisable());
      pushState.textContent = wanted ? "On for this browser." : "Off for this browser.";
    } catch (error) {
      pushToggle.checked = !wanted;
      pushState.textContent = `Could not turn browser notifications ${wanted ? "on" : "off"}: ${error.message || error}`;
    } finally {
      pushToggle.disabled = false;
    }
  });
}

// Save stays disabled until the preferences are on the form: saving the empty form would unmute everything.
async function load() {
  try {
    fill(await api("notifications/preferences"));
    saveButton.disabled = false;
  } catch (error) {
    showFieldErrors(error);
  }
}

load();
setUpPush();
