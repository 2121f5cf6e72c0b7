"""A workspace's IP allow-list in a real browser (Debian's Chromium, Playwright) against the product as
`manage.py serve` runs it: the dashboard, which reads the API with its session, shows nothing of a
workspace whose list leaves out the browser's address (127.0.0.1)."""

from dataclasses import dataclass

import pytest

from accounts.access import personal_workspace
from accounts.ip_allow_lists import REFUSED
from accounts.models import Membership, User, Workspace
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.workflows.dashboard.test_browser import SCREENSHOTS, browser, needs_chromium, server  # noqa: F401 - fixtures
from workflows.services.workflows import workflow_create

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@dataclass
class Member:
    user: User
    locked: Workspace


@pytest.fixture
def member(transactional_db) -> Member:
    """Made before the browser starts (no ORM inside Playwright's event loop): a user whose personal
    workspace is open, and who edits a team workspace that only 10.0.0.0/8 may use."""
    user = UserFactory(email="allow-list-browser@example.com")
    workflow_create(actor=user, workspace=personal_workspace(user), data={"name": "Personal flow"})
    locked = Workspace.objects.create(name="Locked team")
    MembershipFactory(workspace=locked, user=user, role=Membership.Role.EDITOR)
    workflow_create(actor=user, workspace=locked, data={"name": "Locked flow"})
    Workspace.objects.filter(pk=locked.pk).update(allowed_ips=["10.0.0.0/8"])
    return Member(user=user, locked=locked)


def test_the_dashboard_shows_nothing_of_a_workspace_that_refuses_the_browsers_address(server, member, browser):  # noqa: F811
    page = browser.new_context().new_page()
    page.goto(f"{server}/dashboard/")
    page.get_by_label("Email").fill(member.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")

    # The personal workspace's workflows load (through the API, with the session)...
    page.locator("#workflows").get_by_role("link", name="Personal flow").wait_for()
    # ...and the switcher lists the locked workspace, as the list of workspaces does, so that the
    # member can find out why it refuses them.
    page.locator("#workspace-switcher option", has_text="Locked team").wait_for(state="attached")

    # What the page's scripts get from the API: nothing of the locked workspace.
    api = page.evaluate(
        """async (locked) => {
            const workflows = await (await fetch("/api/v3/workflows?page_size=200")).json();
            const refused = await fetch(`/api/v3/workspaces/${locked}/members`);
            const inside = await fetch(`/api/v3/workflows?workspace=${locked}`);
            return {
                names: workflows.results.map((workflow) => workflow.name),
                refused: {
                    status: refused.status,
                    type: refused.headers.get("content-type"),
                    body: await refused.json(),
                },
                inside: (await inside.json()).results.length,
            };
        }""",
        str(member.locked.pk),
    )
    assert api["names"] == ["Personal flow"]
    assert api["inside"] == 0
    assert api["refused"]["status"] == 403
    assert api["refused"]["type"] == "application/problem+json"
    assert (api["refused"]["body"]["rule"], api["refused"]["body"]["detail"]) == ("workspace", REFUSED["workspace"])

    # Switching to it answers with the refusal, and shows none of its workflows.
    page.locator("#workspace-switcher").select_option(str(member.locked.pk))
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Switch").click()
    assert navigation.value.status == 403
    assert page.get_by_role("alert").inner_text() == REFUSED["workspace"]
    assert "Locked flow" not in page.content()
    page.screenshot(path=SCREENSHOTS / "ip-allow-list-refused.png", full_page=True)
