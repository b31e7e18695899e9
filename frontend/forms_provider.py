"""Forms of the provider's pages beside the product form (frontend/forms.py): the example purchase that the
product editor's live preview prices."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from marketplace.formatting import number


class PriceExampleForm(forms.Form):
    """An example purchase for the preview: how many ids a buyer sends and how many of them match, and for
    the policies that need them, the ε of a noisy answer or a trial's uplift and the buyer's value of it."""

    example_ids = forms.IntegerField(
        label=_("Buyer's ids"), min_value=1, max_value=100_000_000, initial=10_000,
        help_text=_("How many ids the example buyer sends."))
    example_matched = forms.IntegerField(
        label=_("Of them matched"), min_value=0, max_value=100_000_000, initial=2_500,
        help_text=_("How many of them your data holds."))
    example_epsilon = forms.DecimalField(
        label=_("Privacy loss ε of the answer"), min_value=Decimal("0.001"), max_value=Decimal(100_000),
        max_digits=9, decimal_places=3, initial=Decimal("1"), required=False,
        help_text=_("For a price by privacy loss."))
    example_uplift = forms.DecimalField(
        label=_("AUC uplift (points)"), min_value=Decimal(0), max_value=Decimal(100), max_digits=6,
        decimal_places=2, initial=Decimal("2"), required=False,
        help_text=_("For a price by utility: what the buyer's trial measured, in points of AUC (0.01 each)."))
    example_value = forms.DecimalField(
        min_value=Decimal(0), max_digits=12, decimal_places=2, initial=Decimal("50"), required=False,
        help_text=_("For a price by utility: what one AUC point is worth to the buyer."))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "example-%s")
        super().__init__(*args, **kwargs)
        self.fields["example_value"].label = _("Value of one AUC point (%(currency)s)") % {
            "currency": settings.MARKETPLACE_CURRENCY}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        ids, matched = data.get("example_ids"), data.get("example_matched")
        if ids is not None and matched is not None and matched > ids:
            self.add_error("example_matched", gettext("At most the buyer's %(count)s ids can match.") % {
                "count": number(ids)})
        return data

    def utility(self) -> dict[str, Any]:
        """The example's utility inputs as a quote records them: one provider takes the whole uplift."""
        data = self.cleaned_data
        uplift = data.get("example_uplift")
        value = data.get("example_value")
        return {"auc_uplift": (uplift if uplift is not None else Decimal(2)) / 100, "provider_share": Decimal(1),
                "value_per_auc_point": int((value if value is not None else Decimal(50)) * 100)}
