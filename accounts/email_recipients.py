"""Whom a workspace's email nodes may write to, through the operator's mail server.

Registration is open by default, so a workspace's owner may be anyone: left free, its workflows could
mail anyone (spam, phishing) from the operator's address. Allowed are:
- the addresses of the workspace's members (they chose to be there);
- addresses in the domains of DWC_EMAIL_ALLOWED_DOMAINS, for every workspace (empty by default);
- addresses in the domains of the workspace's `email_allowed_domains`, which operators set in the
  admin, never the workspace's members.
A domain matches itself only, not its subdomains; "*" matches any.
"""

from django.conf import settings
from django.db.models.functions import Lower

from accounts.models import User, Workspace

RECIPIENT_NOT_ALLOWED = (
    "{address} may not be mailed from this workspace: email nodes write to the workspace's members and to "
    "domains an operator allows, for every workspace (DWC_EMAIL_ALLOWED_DOMAINS) or for this one (its email "
    "allowed domains, in the admin)."
)


def _domain(name: str) -> str:
    domain = name.strip().rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii")  # bücher.example and xn--bcher-kva.example are one domain
    except UnicodeError:
        return domain


def _allowed_by(domains: list[str], address: str) -> bool:
    return "*" in domains or _domain(address.rpartition("@")[2]) in {_domain(domain) for domain in domains}


def email_recipients_not_allowed(*, workspace_id, addresses: list[str]) -> list[str]:
    """Those of `addresses` (bare addr-specs) that the workspace may not mail, in their order.

    Reads the database only for addresses outside DWC_EMAIL_ALLOWED_DOMAINS.
    """
    left = [address for address in addresses if not _allowed_by(settings.DWC_EMAIL_ALLOWED_DOMAINS, address)]
    if not left:
        return []
    domains = Workspace.objects.filter(pk=workspace_id).values_list("email_allowed_domains", flat=True).first()
    left = [address for address in left if not _allowed_by(domains or [], address)]
    if not left:
        return []
    members = set(
        User.objects.annotate(address=Lower("email"))
        .filter(memberships__workspace_id=workspace_id, address__in=[address.lower() for address in left])
        .values_list("address", flat=True)
    )
    return [address for address in left if address.lower() not in members]
