"""Who may call which API, one class per rule. Object-level scoping (whose dataset, whose order) is
the selectors' job; these classes decide by role only.

- IsOrganisationMember: a member of any organisation, auditors included (their own account and tokens).
- IsMarketplaceMember: a member of a provider or consumer organisation. Auditor organisations read
  audit data and nothing else, so their members get 403 on every marketplace operation.
- IsProviderMember / IsConsumerMember: the organisation trades as provider (lists, revokes grants)
  or as consumer (quotes, buys); an organisation registered as "both" passes both.
- IsOperator: the platform operator (an `is_operator` organisation's member, or a staff user).
- IsOrganisationOwner: an owner of their organisation: manages members, sees every member's tokens.
"""
from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from marketplace.models import Member

# Each refusal by its code: DRF answers in the caller's language, and the API's exception handler records
# the refusal in the audit log in English, found again by the code DRF keeps on the error.
REFUSALS = {
    "not_a_member": gettext_lazy("Your account does not belong to an organisation."),
    "not_trading": gettext_lazy("Only members of a provider or consumer organisation use the marketplace."),
    "auditor": gettext_lazy("Auditor accounts read audit data only."),
    "not_a_provider": gettext_lazy("Only provider organisations may do this."),
    "not_a_consumer": gettext_lazy("Only consumer organisations may do this."),
    "not_the_operator": gettext_lazy("Only the platform operator may do this."),
    "not_an_owner": gettext_lazy("Only an owner of the organisation may do this."),
}


def _member(request: Request) -> Any:
    user = request.user
    if not user or not user.is_authenticated:
        return None
    return getattr(user, "member", None)


class IsOrganisationMember(BasePermission):
    code = "not_a_member"
    message = REFUSALS[code]

    def has_permission(self, request: Request, view: Any) -> bool:
        return _member(request) is not None


class IsMarketplaceMember(BasePermission):
    code = "not_trading"
    message = REFUSALS[code]

    def has_permission(self, request: Request, view: Any) -> bool:
        member = _member(request)
        if member is None:
            return False
        if member.organisation.is_auditor:
            self._refuse("auditor")
            return False
        return True

    def _refuse(self, code: str) -> None:
        self.code, self.message = code, REFUSALS[code]


class IsProviderMember(IsMarketplaceMember):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if not _member(request).organisation.is_provider:
            self._refuse("not_a_provider")
            return False
        return True


class IsConsumerMember(IsMarketplaceMember):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if not _member(request).organisation.is_consumer:
            self._refuse("not_a_consumer")
            return False
        return True


class IsOperator(BasePermission):
    code = "not_the_operator"
    message = REFUSALS[code]

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user and user.is_authenticated and user.is_staff:
            return True
        member = _member(request)
        return member is not None and member.organisation.is_operator


class IsOrganisationOwner(BasePermission):
    code = "not_an_owner"
    message = REFUSALS[code]

    def has_permission(self, request: Request, view: Any) -> bool:
        member = _member(request)
        return member is not None and member.role == Member.Role.OWNER
