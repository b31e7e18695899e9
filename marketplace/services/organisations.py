"""Organisations and their members. Each organisation gets its own compute node."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token

from audit.services import audit_record
from compute.services import node_create
from marketplace.models import LedgerAccount, Member, Organisation
from marketplace.services.ledger import ledger_account


@transaction.atomic
def organisation_create(
    *, slug: str, name: str, is_provider: bool, is_consumer: bool, is_operator: bool = False
) -> Organisation:
    """Create an organisation with its node (vault, keys, chain account) and its money accounts."""
    node = node_create(slug=slug, name=name)
    organisation = Organisation(
        slug=slug,
        name=name,
        is_provider=is_provider,
        is_consumer=is_consumer,
        is_operator=is_operator,
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
        payload={"provider": is_provider, "consumer": is_consumer},
        parties=[slug],
    )
    return organisation


@transaction.atomic
def member_create(
    *, organisation: Organisation, username: str, password: str, role: str = Member.Role.MEMBER
) -> tuple[AbstractBaseUser, Token]:
    """Create a user in an organisation, with an API token."""
    user = get_user_model().objects.create_user(username=username, password=password)
    Member.objects.create(user=user, organisation=organisation, role=role)
    token = Token.objects.create(user=user)
    audit_record(
        actor=f"user:{username}",
        action="member.created",
        subject=f"organisation:{organisation.slug}",
        payload={"username": username, "role": role},
        parties=[organisation.slug],
    )
    return user, token
