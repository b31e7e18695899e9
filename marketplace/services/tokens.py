"""API tokens of members: issue (the secret is returned once), revoke, and check a presented secret.

The secret is 40 random hex characters (160 bits); the database keeps its SHA-256 digest, looked up by
an index, and its first characters so a person can tell their tokens apart. Who may see or revoke
which token: every member their own; an organisation's owners every token of their organisation's
members. A token outside what the caller may manage is answered like one that does not exist.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.services import audit_record
from marketplace.exceptions import ApplicationError, Conflict, NotFound
from marketplace.models import ApiToken, Member

TOKEN_DEFAULT_DAYS = 90
TOKEN_MAX_DAYS = 365
TOKEN_PREFIX_CHARS = 8
# last_used_at is a hint for people, not an audit record: write it at most once a minute per token so
# that reads stay reads under load.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_ID = 2**63 - 1  # ids are 64-bit; a longer number in a path is simply not found


class TokenRejected(ApplicationError):
    """A presented secret does not authenticate: unknown, expired, revoked, or its account is disabled."""

    status = 401


@dataclass(frozen=True)
class IssuedToken:
    """A new token and its secret; the secret exists only here and is never stored."""

    token: ApiToken
    secret: str


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_token_create(
    *, member: Member, name: str, expires_in_days: int = TOKEN_DEFAULT_DAYS, actor: str
) -> IssuedToken:
    """Issue a token for `member`, valid for `expires_in_days` (1 to 365) days."""
    name = name.strip()
    if not name:
        raise ApplicationError(_("Give the token a name."), {"field": "name"})
    if not 1 <= expires_in_days <= TOKEN_MAX_DAYS:
        raise ApplicationError(
            _("A token is valid for 1 to %(days)s days.") % {"days": TOKEN_MAX_DAYS}, {"field": "expires_in_days"}
        )
    secret = secrets.token_hex(20)
    token = ApiToken(
        member=member,
        name=name,
        prefix=secret[:TOKEN_PREFIX_CHARS],
        digest=token_digest(secret),
        expires_at=timezone.now() + timedelta(days=expires_in_days),
    )
    token.full_clean()
    token.save()
    audit_record(
        actor=actor,
        action="token.created",
        subject=f"token:{token.pk}",
        payload={"member": member.user.get_username(), "name": name, "prefix": token.prefix,
                 "expires_at": token.expires_at.isoformat()},
        parties=[member.organisation.slug],
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: str) -> ApiToken:
    """Revoke a token: the next request that presents it gets 401."""
    locked = ApiToken.objects.select_for_update(of=("self",)).select_related("member__organisation").get(pk=token.pk)
    if locked.revoked_at is not None:
        raise Conflict(_("This token is already revoked."), {"revoked_at": locked.revoked_at.isoformat()})
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="token.revoked",
        subject=f"token:{locked.pk}",
        payload={"name": locked.name, "prefix": locked.prefix},
        parties=[locked.member.organisation.slug],
    )
    return locked


def api_token_authenticate(*, secret: str) -> ApiToken:
    """The token a presented secret belongs to, if it may be used now; else TokenRejected."""
    token = (
        ApiToken.objects.select_related("member__user", "member__organisation")
        .filter(digest=token_digest(secret))
        .first()
    )
    if token is None:
        raise TokenRejected(_("Invalid token."))
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRejected(_("This token was revoked; create a new one on the API tokens page."))
    if token.expires_at <= now:
        raise TokenRejected(_("This token expired on %(expired)s UTC; create a new one.") % {
            "expired": f"{token.expires_at:%Y-%m-%d %H:%M}"})
    if not token.member.user.is_active:
        raise TokenRejected(_("This account is disabled."))
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# Reads, scoped to what the caller may manage.

def api_token_list(*, member: Member) -> QuerySet[ApiToken]:
    """The member's own tokens, newest first."""
    return ApiToken.objects.filter(member=member).select_related("member__user")


def api_token_list_of_organisation(*, member: Member) -> QuerySet[ApiToken]:
    """Every token of the member's organisation; only owners may call this (the API checks the role)."""
    return ApiToken.objects.filter(member__organisation_id=member.organisation_id).select_related("member__user")


def api_token_get_manageable(*, member: Member, token_id: int) -> ApiToken:
    """A token `member` may revoke: their own, or any of their organisation's when they are an owner."""
    if not 0 < token_id <= MAX_ID:
        raise NotFound(gettext_lazy("Token not found."))
    tokens = (
        api_token_list_of_organisation(member=member) if member.role == Member.Role.OWNER
        else api_token_list(member=member)
    )
    token = tokens.filter(pk=token_id).first()
    if token is None:
        raise NotFound(gettext_lazy("Token not found."))
    return token
