"""The double-entry money ledger: every movement is a transaction whose entries sum to zero, and no
organisation account ever goes negative (checked here and by a database constraint). Accounts are
locked in id order, so two movements over the same accounts cannot deadlock.

Accounts: each organisation's BALANCE (spendable) and ESCROW (held for its open orders), the
platform's FEES income, and the EXTERNAL account — the world outside the ledger, which goes negative
by exactly the money that came in through top-ups.
"""
from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.services import audit_record
from marketplace.exceptions import (
    ApplicationError,
    Conflict,
    InsufficientFunds,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from marketplace.models import LedgerAccount, LedgerEntry, LedgerTransaction, Order, Organisation

# Not a payment integration: the operator records money received through a payment provider by hand.
TOP_UP_MEMO = "Top-up (payment provider stand-in)"
TOP_UP_MAX = 10**11  # cents per top-up: one billion in the currency; larger is a typo, not a payment


def ledger_account(*, organisation: Organisation | None, kind: str) -> LedgerAccount:
    """The organisation's account of that kind (the platform's when `organisation` is None), created once."""
    account, _ = LedgerAccount.objects.get_or_create(organisation=organisation, kind=kind)
    return account


@transaction.atomic
def ledger_post(
    *,
    memo: str,
    entries: list[tuple[LedgerAccount, int]],
    order: Order | None = None,
    initiator: Organisation | None = None,
    idempotency_key: str = "",
    request_digest: str = "",
) -> LedgerTransaction:
    """Apply a balanced set of entries atomically; refuses to take any account but EXTERNAL below zero.

    Entries of zero are dropped (they move nothing; a free order's transaction has none). Raises
    InsufficientFunds (nothing written) when an account would go negative, ValueError when the entries
    do not sum to zero.
    """
    if sum(amount for _, amount in entries) != 0:
        raise ValueError("ledger entries must sum to zero")
    moving = [(account, amount) for account, amount in entries if amount != 0]
    net: dict[int, int] = {}
    for account, amount in moving:
        net[account.id] = net.get(account.id, 0) + amount
    locked = {account.id: account for account in
              LedgerAccount.objects.select_for_update().filter(id__in=sorted(net)).order_by("id")}
    for account_id, change in net.items():
        target = locked[account_id]
        if target.kind != LedgerAccount.Kind.EXTERNAL and target.balance + change < 0:
            raise InsufficientFunds(
                _("Insufficient balance for this purchase.") if target.kind == LedgerAccount.Kind.BALANCE
                else _("The %(account)s account cannot go below zero.") % {"account": target.kind},
                {"needed": -change, "available": target.balance, "account": target.kind},
            )
    record = LedgerTransaction.objects.create(
        memo=memo[:200], order=order, initiator=initiator, idempotency_key=idempotency_key,
        request_digest=request_digest,
    )
    LedgerEntry.objects.bulk_create(
        LedgerEntry(transaction=record, account=locked[account.id], amount=amount) for account, amount in moving
    )
    for account_id, change in net.items():
        target = locked[account_id]
        target.balance += change
        target.save(update_fields=["balance"])
    return record


def _top_up_entries(organisation: Organisation, amount: int) -> list[tuple[LedgerAccount, int]]:
    return [
        (ledger_account(organisation=None, kind=LedgerAccount.Kind.EXTERNAL), -amount),
        (ledger_account(organisation=organisation, kind=LedgerAccount.Kind.BALANCE), amount),
    ]


def balance_top_up(*, organisation: Organisation, amount: int) -> LedgerTransaction:
    """Credit an organisation's balance from outside, with no requester or key: for seeding demo data and
    tests. Money sent through the API goes through `ledger_top_up`."""
    if amount <= 0:
        raise ValueError("a top-up must be positive")
    return ledger_post(memo=TOP_UP_MEMO, entries=_top_up_entries(organisation, amount))


def _top_up_digest(organisation_slug: str, amount: int) -> str:
    return hashlib.sha256(json.dumps({"organisation": organisation_slug, "amount": amount}).encode()).hexdigest()


def ledger_require_operator(*, organisation: Organisation) -> None:
    """Refuse (403) unless the organisation is the platform operator."""
    if not organisation.is_operator:
        raise PermissionDenied(gettext_lazy("Only the platform operator can top up balances."))


def ledger_top_up(
    *, operator: Organisation, organisation_slug: str, amount: int, idempotency_key: str, actor: str
) -> tuple[LedgerTransaction, bool]:
    """Top-up (payment provider stand-in): the platform operator credits an organisation's balance with
    money it received outside the marketplace. Returns (transaction, created).

    There is no payment provider behind it: the operator's word is the payment. The same
    Idempotency-Key with the same body returns the first transaction; with another body it is a 422;
    while the first request with that key is still in flight, a second one gets a 409.
    """
    ledger_require_operator(organisation=operator)
    if not idempotency_key or len(idempotency_key) > 200:
        raise ApplicationError(_("An Idempotency-Key header (1-200 characters) is required."))
    if not 0 < amount <= TOP_UP_MAX:
        raise ApplicationError(_("The amount must be between 1 and %(max)s cents.") % {"max": TOP_UP_MAX},
                               {"field": "amount", "max": TOP_UP_MAX})
    digest = _top_up_digest(organisation_slug, amount)
    existing = LedgerTransaction.objects.filter(initiator=operator, idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.request_digest != digest:
            raise Unprocessable(_("This Idempotency-Key was used with a different request."))
        return existing, False
    organisation = Organisation.objects.filter(slug=organisation_slug).first()
    if organisation is None:
        raise NotFound(gettext_lazy("Organisation not found."), {"field": "organisation"})
    try:
        with transaction.atomic():
            record = ledger_post(
                memo=TOP_UP_MEMO, entries=_top_up_entries(organisation, amount), initiator=operator,
                idempotency_key=idempotency_key, request_digest=digest,
            )
            audit_record(
                actor=actor, action="ledger.top_up", subject=f"organisation:{organisation.slug}",
                payload={"amount": amount, "transaction": record.id, "stand_in": "payment provider"},
                parties=sorted({operator.slug, organisation.slug}),
            )
            return record, True
    except IntegrityError as exc:
        raise Conflict(_("A request with this Idempotency-Key is already being processed.")) from exc
