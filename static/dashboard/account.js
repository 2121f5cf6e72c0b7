// /dashboard/account/: the signed-in person's own security. Multi-factor authentication is turned on
// (POST auth/mfa/totp, then auth/mfa/totp/confirm with a code of the app) and off (DELETE auth/mfa);
// the login sessions (GET auth/sessions) end one by one or all but this browser's. The server renders
// the MFA state the page starts from; the rest comes from the API.

import { ApiError, api, h, showError, timeElement } from "./page.js";

const CODE_REJECTED = "/problems/mfa-code-rejected";
const NOT_AUTHENTICATED = "/problems/not-authenticated";
const SESSION_KINDS = { browser: "Browser", token: "API login" };

const mfa = document.getElementById("mfa");
const mfaState = document.getElementById("mfa-state");
const offPanel = document.getElementById("mfa-off");
const startButton = document.getElementById("mfa-start");
const startErrors = document.getElementById("mfa-start-errors");
const enrolForm = document.getElementById("mfa-enrol");
const codesPanel = document.getElementById("mfa-codes");
const codeList = document.getElementById("mfa-code-list");
const download = document.getElementById("mfa-codes-download");
const copied = document.getElementById("mfa-codes-copied");
const disableForm = document.getElementById("mfa-disable");
const sessionsTable = document.getElementById("sessions");
const sessionsErrors = document.getElementById("sessions-errors");
const sessionsStatus = document.getElementById("sessions-status");
const endOthersButton = document.getElementById("sessions-end-others");

// --- errors next to the fields they name ------------------------------------------------------

function showMessages(element, messages) {
  element.replaceChildren(
    messages.length === 1 ? messages[0] : h("ul", {}, ...messages.map((message) => h("li", {}, message))),
  );
  element.hidden = false;
}

function clearErrors(form) {
  form.querySelectorAll("[data-errors-for]").forEach((element) => showError(element, null));
  form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
}

// A session that ended (here or from another device) makes every call a 401: say so, with the way back.
function signedOut(error) {
  return error instanceof ApiError && error.status === 401 && error.problem.type === NOT_AUTHENTICATED;
}

function showSignedOut(element) {
  const login = h("a", { href: `/accounts/login/?next=${encodeURIComponent(location.pathname)}` }, "log in again");
  element.replaceChildren("Your session was ended — ", login);
  element.hidden = false;
}

// A validation problem's messages go next to the fields they name and a rejected code next to the
// code field; anything else (a lockout, a conflict) to the form's alert.
function showFormError(form, error) {
  clearErrors(form);
  const general = form.querySelector('[data-errors-for="non_field_errors"]');
  if (signedOut(error)) {
    showSignedOut(general);
    return;
  }
  let errors = { non_field_errors: [error.message || String(error)] };
  if (error instanceof ApiError && error.problem.errors) errors = error.problem.errors;
  else if (error instanceof ApiError && error.problem.type === CODE_REJECTED) errors = { code: [error.message] };

  const shown = new Map(); // element → messages
  for (const [field, messages] of Object.entries(errors)) {
    const target = form.querySelector(`[data-errors-for="${CSS.escape(field)}"]`);
    const lines = [].concat(messages).map((message) => (target ? message : `${field}: ${message}`));
    shown.set(target ?? general, [...(shown.get(target ?? general) ?? []), ...lines]);
    form.elements.namedItem(field)?.setAttribute("aria-invalid", "true");
  }
  shown.forEach((messages, element) => showMessages(element, messages));
  (form.querySelector('[aria-invalid="true"]') ?? form.querySelector("input"))?.focus();
}

// Disables the form's (or the button's) submit while `work` runs.
async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

// --- multi-factor authentication ---------------------------------------------------------------

function showMfaState(enabled, codesLeft) {
  mfa.dataset.enabled = String(enabled);
  mfa.dataset.recoveryCodesLeft = String(codesLeft);
  const badge = enabled
    ? h("span", { class: "badge", dataset: { status: "succeeded" } }, "On")
    : h("span", { class: "badge" }, "Off");
  mfaState.replaceChildren(
    badge,
    " ",
    enabled ? `${codesLeft} recovery code${codesLeft === 1 ? "" : "s"} left.` : "Logins need only the password.",
  );
}

function showEnrolment({ secret, otpauth_uri: uri, qr_svg: qrSvg }) {
  // The API's SVG document, parsed off-page (nothing in a parsed document runs) and moved in.
  const svg = new DOMParser().parseFromString(qrSvg, "text/html").querySelector("svg");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "QR code for your authenticator app");
  document.getElementById("mfa-qr").replaceChildren(document.adoptNode(svg));
  document.getElementById("mfa-secret").textContent = secret.match(/.{1,4}/g).join(" ");
  document.getElementById("mfa-uri").textContent = uri;
  enrolForm.reset();
  clearErrors(enrolForm);
  offPanel.hidden = true;
  enrolForm.hidden = false;
  enrolForm.elements.code.focus();
}

function showRecoveryCodes(codes) {
  codeList.replaceChildren(...codes.map((code) => h("li", {}, h("code", {}, code))));
  const account = document.querySelector(".who")?.textContent ?? "your account";
  const text = `Recovery codes of ${account} (each works once):\n${codes.join("\n")}\n`;
  download.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  copied.textContent = "";
  codesPanel.hidden = false;
  codesPanel.querySelector("h3").scrollIntoView({ block: "nearest" });
  document.getElementById("mfa-codes-copy").onclick = async () => {
    try {
      await navigator.clipboard.writeText(codes.join("\n"));
      copied.textContent = "Copied.";
    } catch {
      getSelection().selectAllChildren(codeList);
      copied.textContent = "The browser did not let the page copy: the codes are selected, copy them yourself.";
    }
  };
}

startButton.addEventListener("click", () =>
  busy(startButton, async () => {
    showError(startErrors, null);
    try {
      showEnrolment(await api("auth/mfa/totp", { method: "POST" }));
    } catch (error) {
      if (signedOut(error)) showSignedOut(startErrors);
      else showError(startErrors, error);
    }
  }),
);

enrolForm.querySelector("[data-cancel]").addEventListener("click", () => {
  enrolForm.hidden = true;
  offPanel.hidden = false;
  startButton.focus();
});

enrolForm.addEventListener("submit", (event) => {
  event.preventDefault();
  busy(event.submitter ?? enrolForm.querySelector("[type=submit]"), async () => {
    try {
      const code = enrolForm.elements.code.value.trim();
      const { recovery_codes: codes } = await api("auth/mfa/totp/confirm", { method: "POST", body: { code } });
      enrolForm.hidden = true;
      showMfaState(true, codes.length);
      showRecoveryCodes(codes);
    } catch (error) {
      showFormError(enrolForm, error);
    }
  });
});

// The codes are shown once: done with them, they leave the page.
document.getElementById("mfa-codes-done").addEventListener("click", () => {
  codesPanel.hidden = true;
  codeList.replaceChildren();
  URL.revokeObjectURL(download.href);
  download.href = "#";
  disableForm.hidden = false;
  mfaState.focus();
});

disableForm.addEventListener("submit", (event) => {
  event.preventDefault();
  busy(event.submitter ?? disableForm.querySelector("[type=submit]"), async () => {
    try {
      const body = { password: disableForm.elements.password.value, code: disableForm.elements.code.value.trim() };
      await api("auth/mfa", { method: "DELETE", body });
      disableForm.reset();
      clearErrors(disableForm);
      disableForm.hidden = true;
      offPanel.hidden = false;
      showMfaState(false, 0);
      startButton.focus();
    } catch (error) {
      showFormError(disableForm, error);
    }
  });
});
// Enabled only now: before this script ran, a click would have put the password in the page's address.
disableForm.querySelector("[type=submit]").disabled = false;

// --- sessions ------------------------------------------------------------------------------------

const BROWSERS = [
  [/Edg(?:e|A|iOS)?\/(\d+)/, "Edge"],
  [/(?:Firefox|FxiOS)\/(\d+)/, "Firefox"],
  [/(?:Chrome|CriOS)\/(\d+)/, "Chrome"],
  [/Version\/(\d+).*Safari\//, "Safari"],
];
const SYSTEMS = [
  [/Android/, "Android"],
  [/iPhone|iPad|iPod/, "iOS"],
  [/Windows/, "Windows"],
  [/Macintosh|Mac OS X/, "macOS"],
  [/CrOS/, "ChromeOS"],
  [/Linux/, "Linux"],
];

// "Firefox 125 on Windows" from a browser's user agent; another client's (curl/8.5.0, an SDK) as it
// is, cut at 40 characters.
function deviceName(userAgent) {
  if (!userAgent) return "Unknown";
  const system = SYSTEMS.find(([pattern]) => pattern.test(userAgent))?.[1];
  for (const [pattern, browser] of BROWSERS) {
    const match = userAgent.match(pattern);
    if (match) return `${browser} ${match[1]}${system ? ` on ${system}` : ""}`;
  }
  return userAgent.length > 40 ? `${userAgent.slice(0, 39)}…` : userAgent;
}

function endButton(session, device) {
  const name = h("span", { class: "visually-hidden" }, ` the session of ${device}`);
  const button = h("button", { type: "button", class: "danger" }, "End", name);
  button.addEventListener("click", () =>
    busy(button, async () => {
      try {
        await api(`auth/sessions/${session.id}`, { method: "DELETE" });
        sessionsStatus.textContent = `Ended the session of ${device}.`;
      } catch (error) {
        // A 404: it ended already (from another tab or device); the list is reloaded either way.
        if (!(error instanceof ApiError && error.status === 404)) {
          showSessionsError(error);
          return;
        }
      }
      await loadSessions();
    }),
  );
  return button;
}

function sessionRow(session) {
  const device = deviceName(session.user_agent);
  return h(
    "tr",
    { dataset: session.current ? { session: session.id, current: "true" } : { session: session.id } },
    h("td", { dataset: { label: "Kind" } }, SESSION_KINDS[session.kind] ?? session.kind),
    h("td", { dataset: { label: "Device" }, title: session.user_agent || undefined }, device),
    h("td", { dataset: { label: "Address" } }, session.address || h("span", { class: "muted" }, "—")),
    h("td", { dataset: { label: "Created" } }, timeElement(session.created_at)),
    h("td", { dataset: { label: "Last used" } }, timeElement(session.last_used_at)),
    h("td", { class: "row-actions" }, session.current ? h("strong", {}, "This browser") : endButton(session, device)),
  );
}

function showSessionsError(error) {
  if (signedOut(error)) showSignedOut(sessionsErrors);
  else showError(sessionsErrors, error);
}

async function loadSessions() {
  let sessions;
  try {
    sessions = await api("auth/sessions");
  } catch (error) {
    showSessionsError(error);
    return;
  }
  showError(sessionsErrors, null);
  // This browser first, then the most recently used.
  sessions.sort((a, b) => b.current - a.current || (b.last_used_at ?? "").localeCompare(a.last_used_at ?? ""));
  const body = sessionsTable.tBodies[0];
  body.replaceChildren(...sessions.map(sessionRow));
  if (sessions.length === 0) body.append(h("tr", { class: "empty" }, h("td", { colspan: 6 }, "No sessions.")));
  endOthersButton.hidden = !sessions.some((session) => !session.current);
}

endOthersButton.addEventListener("click", () =>
  busy(endOthersButton, async () => {
    try {
      const { revoked } = await api("auth/sessions/revoke-all", { method: "POST" });
      sessionsStatus.textContent = `Ended ${revoked} other session${revoked === 1 ? "" : "s"}.`;
    } catch (error) {
      showSessionsError(error);
      return;
    }
    await loadSessions();
  }),
);

// Back on the page after a while (another tab, another device): the list may have changed.
document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && loadSessions());

loadSessions();
