"""The double-entry money ledger: every movement is a transaction whose entries sum to zero, and no
organisation account ever goes negative. Accounts are locked in id order to avoid deadlocks."""
from __future__ import annotations

from django.db import transaction

from marketplace.exceptions import InsufficientFunds
from marketplace.models import LedgerAccount, LedgerEntry, LedgerTransaction, Order, Organisation


def ledger_account(*, organisation: Organisation | None, kind: str) -> LedgerAccount:
    account, _ = LedgerAccount.objects.get_or_create(organisation=organisation, kind=kind)
    return account


@transaction.atomic
def ledger_post(
    *, memo: str, entries: list[tuple[LedgerAccount, int]], order: Order | None = None
) -> LedgerTransaction:
    """Apply a balanced set of entries atomically; refuses to take any account below zero."""
    if sum(amount for _, amount in entries) != 0:
        raise ValueError("ledger entries must sum to zero")
    ids = sorted({account.id for account, _ in entries})
    rows = LedgerAccount.objects.select_for_update().filter(id__in=ids).order_by("id")
    locked = {account.id: account for account in rows}
    record = LedgerTransaction.objects.create(memo=memo, order=order)
    for account, amount in entries:
        target = locked[account.id]
        target.balance += amount
        if target.balance < 0 and target.kind != LedgerAccount.Kind.EXTERNAL:
            raise InsufficientFunds(
                "Insufficient balance for this purchase.",
                {"needed": -amount, "available": target.balance - amount},
            )
        LedgerEntry.objects.create(transaction=record, account=target, amount=amount)
    for target in locked.values():
        target.save(update_fields=["balance"])
    return record


def balance_top_up(*, organisation: Organisation, amount: int) -> LedgerTransaction:
    """Credit an organisation's balance from outside (a stand-in for a payment provider)."""
    if amount <= 0:
        raise ValueError("a top-up must be positive")
    return ledger_post(
        memo="Top-up (payment provider stand-in)",
        entries=[
            (ledger_account(organisation=None, kind=LedgerAccount.Kind.EXTERNAL), -amount),
            (ledger_account(organisation=organisation, kind=LedgerAccount.Kind.BALANCE), amount),
        ],
    )
