"""Funds requests: a buyer asks for money to be added to its balance; the platform operator approves it
(a top-up through the payment-provider stand-in: `ledger_top_up`, no real payment behind it) or declines it
with a reason. Either decision is final.

Rules chosen here:
- One pending request per organisation at a time: a second one is refused (409) and names the pending
  one, so the operator never weighs two requests for one need. The organisation's row is locked while
  checking, so two members asking at the same moment cannot both pass.
- A decision is taken once. The request's row is locked (select_for_update) and its status read under the
  lock: approving twice (a double click, two operators at once) pays once and answers with the request as
  it stands; the top-up also carries the Idempotency-Key `funds-request:<id>`, a second guard at the ledger.
  Approving a declined request, or declining an approved one, is a 409.

Refusals that the API's handler records in the audit log (403, 404) are raised with `gettext_lazy`, so the
log keeps them in English whatever language the caller reads (see marketplace.exceptions).

Every step is audited (`funds.requested`, `funds.approved` beside the ledger's own `ledger.top_up`,
`funds.declined`); the operators are notified of a new request, the organisation's members of the decision.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.services import audit_record
from marketplace.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied
from marketplace.formatting import money
from marketplace.models import FundsRequest, Member, Organisation
from marketplace.services.ledger import TOP_UP_MAX, ledger_top_up
from marketplace.services.notifications import notify_operators, notify_organisation

FUNDS_TEXT_MAX = 500  # characters of a note or a reason (the model's columns)


def _actor(user: Any) -> str:
    return f"user:{user.get_username()}"


def _subject(funds: FundsRequest) -> str:
    return f"funds:{funds.pk}"


def funds_amount_check(amount: Any) -> int:
    """The amount as integer cents, or a 400 that names the field: a whole number from 1 to TOP_UP_MAX."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ApplicationError(_("The amount must be a whole number of cents."), {"field": "amount"})
    if not 0 < amount <= TOP_UP_MAX:
        raise ApplicationError(
            _("The amount must be between %(min)s and %(max)s.") % {"min": money(1), "max": money(TOP_UP_MAX)},
            {"field": "amount", "min": 1, "max": TOP_UP_MAX},
        )
    return amount


def _text_check(value: str | None, *, field: str) -> str:
    text = (value or "").strip()
    if len(text) > FUNDS_TEXT_MAX:
        raise ApplicationError(_("Keep it to %(max)s characters.") % {"max": FUNDS_TEXT_MAX},
                               {"field": field, "max": FUNDS_TEXT_MAX})
    return text


def is_operator_user(user: Any) -> bool:
    """The platform operator: an active member of an `is_operator` organisation, or an active staff user."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    member: Member | None = getattr(user, "member", None)
    return bool(user.is_staff or (member is not None and member.organisation.is_operator))


def operator_organisation_of(user: Any) -> Organisation:
    """The operator organisation a user acts for: their own when it is the operator's; for a staff user of
    another organisation (or of none), the platform's operator organisation. Anyone else: 403."""
    member: Member | None = getattr(user, "member", None) if user is not None and user.is_authenticated else None
    if member is not None and member.organisation.is_operator and user.is_active:
        return member.organisation
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        operator = Organisation.objects.filter(is_operator=True).order_by("id").first()
        if operator is None:
            raise ApplicationError(_("There is no operator organisation to record the top-up under."))
        return operator
    raise PermissionDenied(gettext_lazy("Only the platform operator may do this."))


@transaction.atomic
def funds_request_create(*, organisation: Organisation, user: User | AnonymousUser, amount: int,
                         note: str = "") -> FundsRequest:
    """A member asks for `amount` cents to be added to the organisation's balance; returns the pending request.

    Refused: by a user who is not an active member of the organisation (403), for an auditor organisation
    (403), with an amount that is not 1..TOP_UP_MAX whole cents or a note over 500 characters (400), and
    while the organisation already has a pending request (409, `extra.pending` is its id).
    """
    if organisation.is_auditor:
        raise PermissionDenied(gettext_lazy("Auditor accounts read audit data only."))
    if not (isinstance(user, User) and user.is_active
            and Member.objects.filter(user=user, organisation=organisation).exists()):
        raise PermissionDenied(gettext_lazy("Only a member of the organisation may ask to add funds to its balance."))
    funds_amount_check(amount)
    note = _text_check(note, field="note")
    Organisation.objects.select_for_update().filter(pk=organisation.pk).first()  # one request check at a time
    pending = FundsRequest.objects.filter(organisation=organisation, status=FundsRequest.Status.PENDING).first()
    if pending is not None:
        raise Conflict(
            _("Your organisation already has a pending request to add %(amount)s (number %(id)s). "
              "Wait for the operator's decision before asking again.") % {"amount": money(pending.amount),
                                                                          "id": pending.pk},
            {"pending": pending.pk},
        )
    funds = FundsRequest(organisation=organisation, requested_by=user, amount=amount, note=note)
    funds.full_clean()
    funds.save()
    audit_record(actor=_actor(user), action="funds.requested", subject=_subject(funds),
                 payload={"amount": amount, "organisation": organisation.slug}, parties=[organisation.slug])
    notify_operators(kind="funds_requested", subject=_subject(funds),
                     params={"organisation": organisation.name, "amount_cents": amount},
                     url=reverse("operator-top-ups"))
    return funds


def _locked(request_id: Any) -> FundsRequest:
    try:
        key = int(request_id)
    except (TypeError, ValueError):
        key = None
    funds = (FundsRequest.objects.select_for_update(of=("self",)).select_related("organisation")
             .filter(pk=key).first() if key is not None else None)
    if funds is None:
        raise NotFound(gettext_lazy("Funds request not found."))
    return funds


@transaction.atomic
def funds_request_approve(*, request_id: Any, operator_user: User | AnonymousUser) -> FundsRequest:
    """Approve a pending request: credit its amount to the organisation's balance through the operator's
    top-up (the payment-provider stand-in) and tell the organisation's members. Idempotent: an approved
    request is returned as it is and nothing is paid again. A declined one is a 409; not the operator, 403."""
    operator = operator_organisation_of(operator_user)
    assert isinstance(operator_user, User)  # operator_organisation_of refused anyone not signed in
    funds = _locked(request_id)
    if funds.status == FundsRequest.Status.APPROVED:
        return funds
    if funds.status == FundsRequest.Status.DECLINED:
        raise Conflict(_("This request was declined; it cannot be approved. The buyer may send a new one."),
                       {"status": funds.status})
    record, _created = ledger_top_up(
        operator=operator, organisation_slug=funds.organisation.slug, amount=funds.amount,
        idempotency_key=f"funds-request:{funds.pk}", actor=_actor(operator_user),
    )
    funds.status = FundsRequest.Status.APPROVED
    funds.decided_by = operator_user
    funds.decided_at = timezone.now()
    funds.top_up = record
    funds.save(update_fields=["status", "decided_by", "decided_at", "top_up"])
    audit_record(actor=_actor(operator_user), action="funds.approved", subject=_subject(funds),
                 payload={"amount": funds.amount, "organisation": funds.organisation.slug, "transaction": record.pk},
                 parties=sorted({operator.slug, funds.organisation.slug}))
    notify_organisation(organisation=funds.organisation, kind="funds_decided", subject=_subject(funds),
                        params={"approved": True, "amount_cents": funds.amount, "reason": ""},
                        url=reverse("statement"))
    return funds


@transaction.atomic
def funds_request_decline(*, request_id: Any, operator_user: User | AnonymousUser, reason: str) -> FundsRequest:
    """Decline a pending request with a reason (required: the buyer reads it) and tell the organisation's
    members. Declining a declined request returns it unchanged (its first reason stays); an approved one is
    a 409; not the operator, 403."""
    operator = operator_organisation_of(operator_user)
    assert isinstance(operator_user, User)  # operator_organisation_of refused anyone not signed in
    reason = _text_check(reason, field="reason")
    if not reason:
        raise ApplicationError(_("Give a reason: the buyer reads it."), {"field": "reason"})
    funds = _locked(request_id)
    if funds.status == FundsRequest.Status.DECLINED:
        return funds
    if funds.status == FundsRequest.Status.APPROVED:
        raise Conflict(_("This request was approved and its funds added; it cannot be declined."),
                       {"status": funds.status})
    funds.status = FundsRequest.Status.DECLINED
    funds.decided_by = operator_user
    funds.decided_at = timezone.now()
    funds.reason = reason
    funds.save(update_fields=["status", "decided_by", "decided_at", "reason"])
    audit_record(actor=_actor(operator_user), action="funds.declined", subject=_subject(funds),
                 payload={"amount": funds.amount, "organisation": funds.organisation.slug, "reason": reason},
                 parties=sorted({operator.slug, funds.organisation.slug}))
    notify_organisation(organisation=funds.organisation, kind="funds_decided", subject=_subject(funds),
                        params={"approved": False, "amount_cents": funds.amount, "reason": reason},
                        url=reverse("statement"))
    return funds
