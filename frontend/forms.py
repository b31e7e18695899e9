"""Forms of the web UI. They check the shape of the input; the services decide what is allowed."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from compute.protocols.ids import DEFAULT_ID_RULE, ID_RULES
from compute.protocols.registry import protocols_sold
from marketplace.exceptions import ApplicationError
from marketplace.filters import compute_type_choices
from marketplace.formatting import number
from marketplace.models import Dataset, Product
from marketplace.services.modelling import MODELLING, TRIAL


def form_error_from(form: forms.Form, error: ApplicationError) -> None:
    """Show a service's refusal on the form: on the field it names when the form has it, else on top."""
    field = error.extra.get("field")
    form.add_error(field if field in form.fields else None, error.message)


def cents_of(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


class DatasetImportForm(forms.Form):
    """The fields of the import form; the file itself never reaches the server in the clear: the page
    seals it in the browser to the node's key and posts it to the API (frontend/static/frontend)."""

    name = forms.CharField(label=_("Name"), max_length=200)
    id_column = forms.CharField(
        label=_("Id column"), max_length=100, initial="id",
        help_text=_("The column that holds the record ids."),
    )
    description = forms.CharField(label=_("Description"), widget=forms.Textarea(attrs={"rows": 2}),
                                  required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Two forms share the console page: distinct element ids keep their labels apart.
        kwargs.setdefault("auto_id", "import-%s")
        super().__init__(*args, **kwargs)


class DatasetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return _("%(name)s (%(rows)s rows)") % {"name": obj.name, "rows": number(obj.table.row_count)}


class DatasetsChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return _("%(name)s (%(rows)s rows)") % {"name": obj.name, "rows": number(obj.table.row_count)}


class TagsField(forms.CharField):
    """Comma-separated tags → a list of stripped, non-empty tags (the service checks their number and size)."""

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [tag.strip() for tag in text.split(",") if tag.strip()]


class ProductCreateForm(forms.Form):
    datasets = DatasetsChoiceField(
        label=_("Datasets"), queryset=Dataset.objects.none(), widget=forms.CheckboxSelectMultiple,
        help_text=_("One or more of your datasets; partners can add theirs while the product is a draft."),
    )
    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(label=_("Description"), widget=forms.Textarea(attrs={"rows": 3}),
                                  required=False)
    category = forms.ChoiceField(label=_("Category"), choices=Product.Category.choices,
                                 initial=Product.Category.OTHER)
    tags = TagsField(
        label=_("Tags"), max_length=500, required=False,
        help_text=_("Comma separated, e.g. retail, customers, north."),
    )
    purposes = forms.MultipleChoiceField(label=_("Purposes"), choices=Product.Purpose.choices,
                                         widget=forms.CheckboxSelectMultiple)
    # The amounts' labels name the marketplace's currency (set in __init__, in the reader's language).
    base_price = forms.DecimalField(min_value=Decimal("0"), max_digits=10, decimal_places=2, initial=Decimal("10.00"))
    price_per_match = forms.DecimalField(min_value=Decimal("0"), max_digits=10, decimal_places=2,
                                         initial=Decimal("0.05"))
    quota = forms.IntegerField(
        label=_("Quota"), min_value=1, max_value=10_000, initial=5,
        help_text=_("Jobs allowed per purchase."),
    )
    validity_days = forms.IntegerField(label=_("Validity days"), min_value=1, max_value=3650, initial=30)
    min_cohort = forms.IntegerField(
        label=_("Minimum cohort"), min_value=1, max_value=1_000_000, initial=3,
        help_text=_("Release rule: a smaller result is never released."),
    )
    compute_types = forms.MultipleChoiceField(
        label=_("Sold as"), choices=(), widget=forms.CheckboxSelectMultiple, required=False,
        help_text=_(
            "What a buyer may run on it. A private lookup returns your chosen columns for the ids a buyer asks "
            "about; cross-table statistics the count, sum and mean of one of your columns per group of the "
            "buyer's, never a row; a private set intersection only which of its ids you hold."),
    )
    id_rule = forms.ChoiceField(
        label=_("Id matching"), choices=list(ID_RULES.items()), initial=DEFAULT_ID_RULE, required=False,
        help_text=_("How ids are normalised on both sides before they are matched."),
    )
    privacy_epsilon = forms.DecimalField(
        label=_("Privacy budget for statistics (ε)"), min_value=Decimal("0.001"),
        max_value=Decimal(100_000), max_digits=9, decimal_places=3, required=False,
        help_text=_(
            "For cross-table statistics: the total ε each buyer may spend on noisy results over this product "
            "(e.g. 3). Leave empty to sell exact statistics, still gated by the minimum cohort."),
    )
    price_policy = forms.ChoiceField(
        label=_("Price policy"), initial="contribution", required=False, choices=[
            ("contribution", _(
                "By contribution: base price + each matched record × its dataset's quality")),
            ("posted", _("Posted: the base price, whatever it matches")),
            ("per_match", _("Per match: base price + each matched record × one blended quality")),
            ("tiered", _(
                "Tiered by volume: base price + a rate per matched record that falls with volume")),
            ("noisy", _(
                "By privacy loss (statistics with a budget): base price + a rate × ε^exponent")),
            ("utility", _(
                "By utility (joint modelling and its trial): the AUC uplift the buyer's trial measured × the "
                "providers' share × the buyer's value of an AUC point, within a floor and a ceiling")),
        ],
        help_text=_(
            "Every policy is arbitrage-free: splitting a purchase, or averaging noisier answers, never costs a "
            "buyer less. Co-providers split the price by their contribution."),
    )
    price_tiers = forms.CharField(
        required=False, max_length=300,
        help_text=_(
            "For tiered: 'up to ids: rate' bands, the last open, e.g. 1000: 0.05, 10000: 0.03, *: 0.01."),
    )
    price_epsilon_rate = forms.DecimalField(
        required=False, min_value=Decimal("0"), max_digits=12, decimal_places=2,
        help_text=_("For the privacy-loss policy."),
    )
    price_epsilon_exponent = forms.DecimalField(
        label=_("Exponent of ε"), required=False, min_value=Decimal("0.01"), max_value=Decimal("1"),
        max_digits=4, decimal_places=2, initial=Decimal("1"),
        help_text=_("From 0.01 to 1: the price grows with ε, never faster."),
    )
    price_floor = forms.DecimalField(
        required=False, min_value=Decimal("0"), max_digits=12, decimal_places=2,
        help_text=_("For the utility policy: the least a model costs; a trial costs the floor."))
    price_ceiling = forms.DecimalField(
        required=False, min_value=Decimal("0"), max_digits=12, decimal_places=2,
        help_text=_("For the utility policy: the most a model costs, whatever uplift was measured."))
    publish = forms.BooleanField(
        label=_("Publish now"), required=False, initial=True,
        help_text=_("Leave unticked to keep a draft that partner providers can contribute datasets to."),
    )
    # Labels that name the currency: {field: msgid with %(currency)s}.
    CURRENCY_LABELS = {
        "base_price": _("Base price (%(currency)s)"),
        "price_per_match": _("Price per matched record (%(currency)s)"),
        "price_tiers": _("Tiers (%(currency)s per matched record)"),
        "price_epsilon_rate": _("Price per unit of ε (%(currency)s)"),
        "price_floor": _("Floor (%(currency)s)"),
        "price_ceiling": _("Ceiling (%(currency)s)"),
    }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("price_policy") or "contribution"
        base, per_match = data.get("base_price"), data.get("price_per_match")
        if base is None or per_match is None:
            return data
        record: dict[str, Any] = {}
        if kind == "posted":
            record = {"kind": "posted", "amount": cents_of(base)}
        elif kind == "per_match":
            record = {"kind": "per_match", "base": cents_of(base), "per_id": str(per_match * 100)}
        elif kind == "tiered":
            record = {"kind": "tiered", "base": cents_of(base), "tiers": self._tiers(data.get("price_tiers") or "")}
        elif kind == "noisy":
            rate, exponent = data.get("price_epsilon_rate"), data.get("price_epsilon_exponent") or Decimal(1)
            if rate is None:
                self.add_error("price_epsilon_rate", gettext("Give the price per unit of ε for this policy."))
                return data
            record = {"kind": "noisy", "base": cents_of(base), "rate": str(rate * 100), "exponent": str(exponent)}
        elif kind == "utility":
            floor, ceiling = data.get("price_floor"), data.get("price_ceiling")
            if floor is None or ceiling is None:
                self.add_error("price_floor" if floor is None else "price_ceiling",
                               gettext("Give the floor and the ceiling of a price by utility."))
                return data
            record = {"kind": "utility", "floor": cents_of(floor), "ceiling": cents_of(ceiling)}
        data["price_policy_record"] = record
        return data

    def _tiers(self, text: str) -> list[list[Any]]:
        tiers: list[list[Any]] = []
        for band in filter(None, (part.strip() for part in text.split(","))):
            bound, _, rate = band.partition(":")
            try:
                dollars = Decimal(rate.strip())
                tiers.append([None if bound.strip() == "*" else int(bound.strip()), str(dollars * 100)])
            except (ValueError, ArithmeticError):
                self.add_error("price_tiers", gettext("Not a band 'up to ids: rate' (or '*: rate'): %(band)s.") % {
                    "band": repr(band)})
                return []
        if not tiers:
            self.add_error("price_tiers", gettext("Give the tiers, e.g. 1000: 0.05, *: 0.01."))
        return tiers

    def __init__(self, *args: Any, datasets: QuerySet[Dataset], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "product-%s")
        super().__init__(*args, **kwargs)
        for name, label in self.CURRENCY_LABELS.items():
            self.fields[name].label = label % {"currency": settings.MARKETPLACE_CURRENCY}
        self.fields["datasets"].queryset = datasets  # type: ignore[attr-defined]
        self.fields["compute_types"].choices = compute_type_choices()  # type: ignore[attr-defined]
        self.fields["compute_types"].initial = [spec.name for spec in protocols_sold() if spec.default_offer]


class ProductContributeForm(forms.Form):
    dataset = DatasetChoiceField(queryset=Dataset.objects.none(), label=_("Your dataset"), empty_label=None)

    def __init__(self, *args: Any, datasets: QuerySet[Dataset], **kwargs: Any) -> None:
        # One form per open draft on the console: the prefix keeps their element ids apart.
        kwargs.setdefault("auto_id", "contribute-%s")
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets  # type: ignore[attr-defined]


class ProductTransitionForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=Product.Status.choices)


STATISTICS = ("cross_stats", "joint_stats", "joint_cross_stats")  # the protocols these fields parameterise


class QuoteRequestForm(forms.Form):
    dataset = DatasetChoiceField(
        queryset=Dataset.objects.none(), label=_("Your ids"), help_text=_("One of your own datasets.")
    )
    purpose = forms.ChoiceField(label=_("Purpose"), choices=())
    compute_type = forms.ChoiceField(label=_("Computation"), choices=(), required=False)
    columns = forms.MultipleChoiceField(
        label=_("Columns to return"), choices=(), widget=forms.CheckboxSelectMultiple, required=False,
        help_text=_("For a private lookup: the provider's columns you receive for your ids it holds (all if none)."),
    )
    value_column = forms.ChoiceField(
        label=_("Provider's column"), choices=(), required=False,
        help_text=_("For statistics: the provider's numeric column counted, summed and averaged over your ids."))
    group_column = forms.CharField(
        label=_("Group by"), max_length=200, required=False,
        help_text=_("For statistics: a column of your dataset (cross-table) or of the providers' data (across "
                    "providers), e.g. segment or region; empty for one total."))
    groups = forms.CharField(
        label=_("Groups"), max_length=20_000, required=False,
        help_text=_("Across providers: the values of the providers' group column to report, comma-separated."))
    bins = forms.CharField(
        label=_("Histogram edges"), max_length=2000, required=False,
        help_text=_("Across providers, optional: increasing edges, comma-separated, e.g. 0, 1000, 5000, 10000."))
    bound_low = forms.DecimalField(label=_("Values from"), required=False, max_digits=18, decimal_places=6,
                                   help_text=_("For statistics: each value is clamped into [from, to]."))
    bound_high = forms.DecimalField(label=_("Values to"), required=False, max_digits=18, decimal_places=6)
    decimals = forms.IntegerField(label=_("Decimals"), min_value=0, max_value=6, initial=0, required=False)
    epsilon = forms.DecimalField(
        label=_("Privacy loss ε"), min_value=Decimal("0.001"), max_digits=9, decimal_places=3, required=False,
        help_text=_("For statistics: the noise's ε (smaller is more private and noisier); charged to your "
                    "statistics budget on this product for each run."))

    label = forms.CharField(
        label=_("Label column"), max_length=200, required=False,
        help_text=_("For joint modelling: your column of 0/1 outcomes the model learns to predict (your other "
                    "numeric columns are your features)."))
    max_epochs = forms.IntegerField(
        label=_("Epochs, at most"), min_value=1, max_value=200, initial=30, required=False,
        help_text=_("For joint modelling: each epoch is a job that uses one unit of each grant; training stops "
                    "earlier when the validation loss stops improving."))
    sample = forms.IntegerField(
        label=_("Trial sample (rows)"), min_value=100, max_value=20_000, initial=5_000, required=False,
        help_text=_("For a trial: how many of the aligned ids it trains and validates on."))
    value_per_auc_point = forms.DecimalField(
        label=_("Value of one AUC point"), min_value=Decimal("0"), max_digits=12, decimal_places=2, required=False,
        help_text=_("For a model priced by utility: what 0.01 of AUC is worth to you, in the marketplace's "
                    "currency; the price is your trial's uplift × the providers' share × this value, within the "
                    "product's floor and ceiling."))

    STATISTICS_FIELDS = ("value_column", "group_column", "bound_low", "bound_high", "decimals", "epsilon")
    MODELLING_FIELDS = ("label", "max_epochs", "sample", "value_per_auc_point")
    ACROSS_FIELDS = ("groups", "bins")

    def __init__(self, *args: Any, datasets: QuerySet[Dataset], purposes: list[str], compute_types: list[str],
                 columns: list[str], value_columns: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets  # type: ignore[attr-defined]
        labels = dict(Product.Purpose.choices)
        self.fields["purpose"].choices = [(p, labels.get(p, p)) for p in purposes]  # type: ignore[attr-defined]
        kinds = dict(compute_type_choices())
        self.fields["compute_type"].choices = [(c, kinds.get(c, c)) for c in compute_types]  # type: ignore[attr-defined]
        if len(compute_types) < 2:
            self.fields["compute_type"].widget = forms.HiddenInput()
        self.fields["columns"].choices = [(c, c) for c in columns]  # type: ignore[attr-defined]
        if not columns:
            del self.fields["columns"]
        self._statistics = [kind for kind in compute_types if kind in STATISTICS]
        if self._statistics:
            self.fields["value_column"].choices = [(c, c) for c in value_columns or []]  # type: ignore[attr-defined]
        else:
            for name in self.STATISTICS_FIELDS:
                del self.fields[name]
        if "joint_stats" not in compute_types:
            for name in self.ACROSS_FIELDS:
                del self.fields[name]
        self._modelling = [kind for kind in compute_types if kind in MODELLING]
        if not self._modelling:
            for name in self.MODELLING_FIELDS:
                del self.fields[name]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in self.ACROSS_FIELDS:
            text = (data.get(name) or "").strip()
            if name not in self.fields or not text:
                data[name] = None
                continue
            items = [item.strip() for item in text.split(",")]
            if name == "bins":
                try:
                    data[name] = [float(item) for item in items]
                except ValueError:
                    self.add_error(name, _("Write the edges as numbers separated by commas."))
            else:
                data[name] = items
        return data

    def params(self) -> dict[str, Any]:
        """The chosen protocol's parameters (the protocol checks them)."""
        data = self.cleaned_data
        kind = data.get("compute_type") or (self._statistics[0] if self._statistics else "") or (
            self._modelling[0] if self._modelling else "")
        if kind in self._modelling:
            modelling: dict[str, Any] = {"label": (data.get("label") or "").strip()}
            if data.get("max_epochs"):
                modelling["max_epochs"] = data["max_epochs"]
            if kind == TRIAL and data.get("sample"):
                modelling["sample"] = data["sample"]
            return modelling
        if kind in self._statistics:
            params: dict[str, Any] = {"value_column": data.get("value_column") or ""}
            if data.get("group_column"):
                params["group_column"] = data["group_column"].strip()
            if data.get("bound_low") is not None and data.get("bound_high") is not None:
                params["bounds"] = [float(data["bound_low"]), float(data["bound_high"])]
            params["decimals"] = data.get("decimals") or 0
            if data.get("epsilon") is not None:
                params["epsilon"] = float(data["epsilon"])
            if kind == "joint_stats":
                params.update({name: data[name] for name in self.ACROSS_FIELDS if data.get(name)})
            return params
        columns = data.get("columns")
        return {"columns": list(columns)} if columns else {}

    def declared_value(self) -> int | None:
        """The buyer's value of an AUC point, in cents (a utility-priced model's quote), or None."""
        value = self.cleaned_data.get("value_per_auc_point")
        return None if value is None else int(value * 100)


class BuyForm(forms.Form):
    idempotency_key = forms.CharField(max_length=200, widget=forms.HiddenInput)


class AuditFilterForm(forms.Form):
    """The audit explorer's search; the same filters as GET /api/audit/entries/ (audit_entry_search)."""

    DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    subject = forms.CharField(label=_("Subject"), max_length=200, required=False,
                              help_text=_("Exactly, e.g. organisation:acme"))
    action = forms.CharField(label=_("Action"), max_length=100, required=False,
                             help_text=_("Exactly, e.g. order.placed"))
    product = forms.UUIDField(label=_("Product"), required=False, help_text=_("A product's id"))
    order = forms.UUIDField(label=_("Order"), required=False, help_text=_("An order's id"))
    organisation = forms.SlugField(label=_("Organisation"), max_length=50, required=False,
                                   help_text=_("An organisation's slug"))
    since = forms.DateTimeField(required=False, label=_("From"), widget=DATETIME_INPUT, help_text=_("UTC"))
    until = forms.DateTimeField(required=False, label=_("To"), widget=DATETIME_INPUT, help_text=_("UTC, not included"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("product") and cleaned.get("order"):
            self.add_error("order", gettext("Filter by a product or by an order, not both."))
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            self.add_error("until", gettext("The end of the range must come after its start."))
        return cleaned

    def search(self) -> dict[str, Any]:
        """The valid filters, as audit_entry_search takes them (empty when the form is not valid)."""
        if not self.is_valid():
            return {}
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}
