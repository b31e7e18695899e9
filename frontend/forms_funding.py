"""Forms of adding funds: the buyer's request on its statement, and the operator's direct top-up and decline.
Amounts are typed in the currency's main unit with at most two decimals and cleaned to integer cents; the
services decide what is allowed."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from frontend.forms import cents_of
from marketplace.selectors_operator import top_up_organisations
from marketplace.services.funding import FUNDS_TEXT_MAX
from marketplace.services.ledger import TOP_UP_MAX


class AmountField(forms.DecimalField):
    """An amount in the currency's main unit (e.g. 1500.00), at least 0.01, cleaned to integer cents."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", _("Amount"))
        super().__init__(min_value=Decimal("0.01"), max_value=Decimal(TOP_UP_MAX) / 100, max_digits=12,
                         decimal_places=2, **kwargs)
        self.widget.attrs.update({"inputmode": "decimal"})

    def clean(self, value: Any) -> int | None:  # type: ignore[override]
        amount = super().clean(value)
        return None if amount is None else cents_of(amount)


def _currency_label(form: forms.Form) -> None:
    """Name the currency on the amount's label, in the active language (at request time)."""
    form.fields["amount"].label = gettext("Amount (%(currency)s)") % {"currency": settings.MARKETPLACE_CURRENCY}


class FundsRequestForm(forms.Form):
    amount = AmountField(help_text=_("Up to two decimals, e.g. 1500.00."))
    note = forms.CharField(
        label=_("Note to the operator"), max_length=FUNDS_TEXT_MAX, required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Optional: what the funds are for, how you will pay them."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "funds-%s")
        super().__init__(*args, **kwargs)
        _currency_label(self)


class TopUpForm(forms.Form):
    organisation = forms.ModelChoiceField(
        label=_("Organisation"), queryset=top_up_organisations().none(), to_field_name="slug",
        empty_label=_("Choose an organisation"),
    )
    amount = AmountField(help_text=_("Money received outside the marketplace, up to two decimals."))
    # One key per form shown: sending the same form twice (a double click, a reload) adds the money once.
    idempotency_key = forms.CharField(max_length=200, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "top-up-%s")
        super().__init__(*args, **kwargs)
        organisation = self.fields["organisation"]
        assert isinstance(organisation, forms.ModelChoiceField)
        organisation.queryset = top_up_organisations()
        _currency_label(self)


class DeclineForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=FUNDS_TEXT_MAX,
                             help_text=_("The buyer reads it, e.g. payment not received."))
