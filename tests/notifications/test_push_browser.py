"""The dashboard's Web Push code in a real browser (Debian's Chromium, driven by Playwright) against the
real product: push.js says whether push can be turned on, and the service worker, served under
/dashboard/, shows a pushed message as a notification tagged with its delivery's id.

No push service can be reached from here, so the message is handed to the worker through the DevTools
protocol (ServiceWorker.deliverPushMessage), the way a push service's would be once decrypted."""

import json

import pytest

from tests.factories import PASSWORD
from tests.workflows.dashboard.test_browser import browser, needs_chromium, server, user

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]
__all__ = ["browser", "server", "user"]  # the fixtures, shared with the dashboard's browser tests

REGISTER = """async () => {
    const worker = "/dashboard/notifications-sw.js";
    const registration = await navigator.serviceWorker.register(worker, {scope: "/dashboard/"});
    await navigator.serviceWorker.ready;
    return registration.scope;
}"""
NOTIFICATIONS = """async () => {
    const registration = await navigator.serviceWorker.getRegistration("/dashboard/");
    const shown = await registration.getNotifications();
    return shown.map((n) => ({title: n.title, body: n.body, tag: n.tag, link: n.data.link}));
}"""


def test_push_js_and_the_service_worker_in_chromium(server, user, browser):
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=server)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/dashboard/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")

    # The server has no VAPID key: pushEnable() says so rather than subscribing.
    outcome = page.evaluate(
        """async () => {
            const push = await import("/static/dashboard/push.js");
            try { await push.pushEnable(); return "enabled"; }
            catch (error) { return [push.pushSupported(), error.message === push.PUSH_NOT_CONFIGURED]; }
        }"""
    )
    assert outcome == [True, True]

    assert page.evaluate(REGISTER) == f"{server}/dashboard/"
    cdp = context.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    page.wait_for_timeout(500)
    [registration] = [r for r in registrations if r["scopeURL"] == f"{server}/dashboard/" and not r["isDeleted"]]
    payload = {
        "title": "Run failed",
        "body": "Step x failed",
        "link": "/dashboard/runs/",
        "level": "error",
        "id": "d-1",
    }
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": server, "registrationId": registration["registrationId"], "data": json.dumps(payload)},
    )
    page.wait_for_function(f"async () => ({NOTIFICATIONS})().then((shown) => shown.length === 1)")

    assert page.evaluate(NOTIFICATIONS) == [
        {"title": "Run failed", "body": "Step x failed", "tag": "d-1", "link": f"{server}/dashboard/runs/"}
    ]
    assert errors == []
    context.close()
