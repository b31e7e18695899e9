"""Forms of the orders pages: the list's filters and a provider's revocation of its grant (with its reason)."""
from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from marketplace.models import Order
from marketplace.services.orders import REVOKE_REASON_MAX_LENGTH

ORDER_STATUS_LABELS: dict[str, Any] = {  # lazy texts by status
    Order.Status.PAID: pgettext_lazy("order status", "Paid"),
    Order.Status.GRANTED: pgettext_lazy("order status", "Granted"),
    Order.Status.FULFILLING: pgettext_lazy("order status", "Fulfilling"),
    Order.Status.FULFILLED: pgettext_lazy("order status", "Fulfilled"),
    Order.Status.FAILED: pgettext_lazy("order status", "Failed"),
    Order.Status.REFUNDED: pgettext_lazy("order status", "Refunded"),
    Order.Status.CANCELLED: pgettext_lazy("order status", "Cancelled"),
}

ORDER_ROLES = [
    ("", _("Bought and sold")),
    ("bought", _("Bought by you")),
    ("sold", _("Sold or contributed by you")),
]


class OrderFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any status")), *ORDER_STATUS_LABELS.items()])
    role = forms.ChoiceField(label=_("Side"), required=False, choices=ORDER_ROLES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "orders-%s")
        super().__init__(*args, **kwargs)


class GrantRevokeForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for the revocation"), max_length=REVOKE_REASON_MAX_LENGTH, strip=True,
        help_text=_("The buyer sees it on the order and in the audit log."),
        error_messages={"required": _("Say why you revoke the grant: the buyer reads it.")},
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "revoke-%s")
        super().__init__(*args, **kwargs)
