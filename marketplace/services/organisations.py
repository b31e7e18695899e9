"""Organisations and their members. Each organisation gets its own compute node.

Roles: an organisation is a provider, a consumer or both; the platform operator (`is_operator`) and
auditors (`is_auditor`: read audit data and nothing else) are organisations too. Inside an
organisation a member is an owner or a plain member; owners manage the members (add, disable,
enable) and may see and revoke every member's API tokens.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.services import audit_record
from compute.jobs.services import node_register
from compute.models import Node
from marketplace.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied
from marketplace.models import LedgerAccount, Member, Organisation
from marketplace.services.ledger import ledger_account
from marketplace.services.tokens import MAX_ID, IssuedToken, api_token_create

# What an organisation registers as, and the flags each kind sets.
ORGANISATION_KINDS = {
    "provider": {"is_provider": True, "is_consumer": False},
    "consumer": {"is_provider": False, "is_consumer": True},
    "both": {"is_provider": True, "is_consumer": True},
}
FIRST_TOKEN_NAME = "First token"  # noqa: S105 - a label, not a secret


class RegistrationRefused(ApplicationError):
    """Registration input that breaks a rule; `extra["fields"]` maps each field to its problem."""


@transaction.atomic
def organisation_create(
    *,
    slug: str,
    name: str,
    is_provider: bool,
    is_consumer: bool,
    is_operator: bool = False,
    is_auditor: bool = False,
) -> Organisation:
    """Create an organisation with its money accounts and register its node, which the organisation runs
    and enrols itself (see ``node_enrol_token_issue``): the marketplace never holds the node's keys."""
    node, _ = node_register(slug=slug, name=name)
    organisation = Organisation(
        slug=slug,
        name=name,
        is_provider=is_provider,
        is_consumer=is_consumer,
        is_operator=is_operator,
        is_auditor=is_auditor,
        node=node,
    )
    organisation.full_clean()
    organisation.save()
    for kind in (LedgerAccount.Kind.BALANCE, LedgerAccount.Kind.ESCROW):
        ledger_account(organisation=organisation, kind=kind)
    audit_record(
        actor="system",
        action="organisation.created",
        subject=f"organisation:{slug}",
        payload={"provider": is_provider, "consumer": is_consumer, "operator": is_operator, "auditor": is_auditor},
        parties=[slug],
    )
    return organisation


def member_problems(*, username: str, password: str) -> dict[str, str]:
    """What is wrong with a new member's username and password, by field (empty when nothing)."""
    problems: dict[str, str] = {}
    user_model = get_user_model()
    candidate = user_model(username=username)
    try:
        candidate.clean_fields(exclude=["password"])
    except ValidationError as error:
        if "username" in error.message_dict:
            problems["username"] = " ".join(error.message_dict["username"])
    if "username" not in problems and user_model.objects.filter(username__iexact=username).exists():
        problems["username"] = _("This username is taken.")
    try:
        validate_password(password, user=candidate)
    except ValidationError as error:
        problems["password"] = " ".join(error.messages)
    return problems


def _refuse_if(problems: dict[str, str]) -> None:
    if problems:
        summary = "; ".join(f"{field}: {message}" for field, message in problems.items())
        raise RegistrationRefused(summary, {"fields": problems, "field": next(iter(problems))})


@transaction.atomic
def member_create(
    *,
    organisation: Organisation,
    username: str,
    password: str,
    role: str = Member.Role.MEMBER,
    actor: str | None = None,
) -> tuple[Any, IssuedToken]:
    """Create a user in an organisation with a first API token (its secret is returned once).

    Refuses (RegistrationRefused, nothing written) a taken or malformed username or a weak password.
    """
    if role not in Member.Role.values:
        raise ApplicationError(_("Unknown role %(role)s.") % {"role": repr(role)}, {"field": "role"})
    _refuse_if(member_problems(username=username, password=password))
    user = get_user_model().objects.create_user(username=username, password=password)
    member = Member.objects.create(user=user, organisation=organisation, role=role)
    issued = api_token_create(member=member, name=FIRST_TOKEN_NAME, actor=actor or f"user:{username}")
    audit_record(
        actor=actor or f"user:{username}",
        action="member.created",
        subject=f"organisation:{organisation.slug}",
        payload={"username": username, "role": role},
        parties=[organisation.slug],
    )
    return user, issued


def registration_problems(*, slug: str, name: str, kind: str, username: str, password: str) -> dict[str, str]:
    """Everything wrong with a registration, by field, checked before anything is created."""
    problems: dict[str, str] = {}
    if not name.strip():
        problems["name"] = _("Give the organisation's name.")
    try:
        validate_slug(slug)
    except ValidationError:
        problems["slug"] = _("Use lowercase letters, digits, hyphens and underscores only.")
    else:
        if slug != slug.lower():
            problems["slug"] = _("Use lowercase letters, digits, hyphens and underscores only.")
        elif len(slug) > Organisation._meta.get_field("slug").max_length:  # type: ignore[operator]
            problems["slug"] = _("Use at most 50 characters.")
        elif Organisation.objects.filter(slug=slug).exists() or Node.objects.filter(slug=slug).exists():
            problems["slug"] = _("This slug is taken.")
    if kind not in ORGANISATION_KINDS:
        problems["kind"] = _("Choose provider, consumer or both.")
    problems.update(member_problems(username=username, password=password))
    return problems


@transaction.atomic
def organisation_register(
    *, slug: str, name: str, kind: str, username: str, password: str
) -> tuple[Organisation, Any, IssuedToken]:
    """Self-service sign-up: an organisation of `kind` (provider, consumer, both) with its node, and
    its first member as owner with a first API token.

    Every rule is checked before the node is set up (a node writes key files and funds a chain
    account), so a refused registration writes nothing at all.
    """
    _refuse_if(registration_problems(slug=slug, name=name, kind=kind, username=username, password=password))
    organisation = organisation_create(slug=slug, name=name.strip(), **ORGANISATION_KINDS[kind])
    user, issued = member_create(
        organisation=organisation, username=username, password=password, role=Member.Role.OWNER
    )
    return organisation, user, issued


@transaction.atomic
def member_set_active(*, member: Member, active: bool, by: Member) -> Member:
    """Disable or re-enable a member's account (an owner's act). A disabled account's tokens and
    session stop working at once; an owner cannot disable themselves, so an organisation keeps one."""
    if by.role != Member.Role.OWNER or by.organisation_id != member.organisation_id:
        raise PermissionDenied(gettext_lazy("Only an owner of the organisation manages its members."))
    if member.pk == by.pk and not active:
        raise Conflict(_("You cannot disable your own account."))
    user = member.user
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_record(
        actor=f"user:{by.user.get_username()}",
        action="member.enabled" if active else "member.disabled",
        subject=f"organisation:{member.organisation.slug}",
        payload={"username": user.get_username()},
        parties=[member.organisation.slug],
    )
    return member


# Reads, scoped to the caller's organisation.

def member_list(*, organisation: Organisation) -> QuerySet[Member]:
    return Member.objects.filter(organisation=organisation).select_related("user").order_by("user__username")


def member_get(*, organisation: Organisation, member_id: int) -> Member:
    """A member of `organisation`; a member of another organisation is answered as not found."""
    member = member_list(organisation=organisation).filter(pk=member_id).first() if 0 < member_id <= MAX_ID else None
    if member is None:
        raise NotFound(gettext_lazy("Member not found."))
    return member
